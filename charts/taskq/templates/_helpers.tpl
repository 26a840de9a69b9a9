{{/* The chart name, overridable; 63 characters is the limit of a DNS label. */}}
{{- define "taskq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, or release-chart when they differ; truncated to 63. */}}
{{- define "taskq.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "taskq.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "taskq.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The API's objects are <fullname>-api; the prefix leaves room for the suffix within 63 characters. */}}
{{- define "taskq.apiName" -}}
{{- printf "%s-api" (include "taskq.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}

{{/*
The worker Deployment is <release>-worker so `kubectl scale deployment <release>-worker` works;
fullnameOverride replaces the release name here as it does for every other object.
*/}}
{{- define "taskq.workerName" -}}
{{- printf "%s-worker" (default .Release.Name .Values.fullnameOverride | trunc 56 | trimSuffix "-") }}
{{- end }}

{{/* Chart label value: name-version. */}}
{{- define "taskq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "taskq.labels" -}}
helm.sh/chart: {{ include "taskq.chart" . }}
{{ include "taskq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select this release's pods (add app.kubernetes.io/component per component). */}}
{{- define "taskq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The image of a component: [<registry>/]<repository>-<component>(:<tag>|@<digest>). The registry is
the component's, else image.registry, else global.imageRegistry (set once by a parent chart); a
digest pins the image and wins over the tag.
*/}}
{{- define "taskq.image" -}}
{{- $v := .root.Values }}
{{- $c := index $v .component "image" }}
{{- $registry := $c.registry | default $v.image.registry | default (dig "imageRegistry" "" ($v.global | default dict)) }}
{{- $ref := printf "%s-%s" $v.image.repository .component }}
{{- with $registry }}{{ $ref = printf "%s/%s" (trimSuffix "/" .) $ref }}{{ end }}
{{- if $c.digest }}
{{- printf "%s@%s" $ref $c.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion $v.image.tag) }}
{{- end }}
{{- end }}

{{/*
A component's container securityContext: the top-level securityContext with the component's keys
laid over it key by key, so `worker.securityContext: {readOnlyRootFilesystem: false}` relaxes one
setting and keeps the rest (a plain merge cannot turn a default `true` into `false`).
*/}}
{{- define "taskq.containerSecurityContext" -}}
{{- $sc := deepCopy (.root.Values.securityContext | default dict) }}
{{- range $k, $v := index .root.Values .component "securityContext" }}
{{- $_ := set $sc $k $v }}
{{- end }}
{{- toYaml $sc }}
{{- end }}

{{/* Labels of a component's pods: podLabels first, so they can never replace a selector label. */}}
{{- define "taskq.podLabels" -}}
{{- $extra := omit (index .root.Values .component "podLabels") "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" }}
{{- with $extra }}{{ toYaml . }}{{ "\n" }}{{ end }}
{{- include "taskq.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
A component's topologySpreadConstraints; a constraint without a labelSelector gets the component's
selector labels, because a constraint that selects no pods spreads nothing.
*/}}
{{- define "taskq.topologySpreadConstraints" -}}
{{- $root := .root }}
{{- $out := list }}
{{- range index .root.Values .component "topologySpreadConstraints" }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $labels := include "taskq.selectorLabels" $root | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/component" $.component }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $labels) }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "taskq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Strimzi cluster name. */}}
{{- define "taskq.kafkaName" -}}
{{- printf "%s-kafka" (include "taskq.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Redis CR name (the operator's Service has the same name). */}}
{{- define "taskq.redisName" -}}
{{- printf "%s-redis" (include "taskq.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kafka bootstrap servers: Strimzi's bootstrap service or the given servers. */}}
{{- define "taskq.kafkaBootstrap" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- printf "%s-kafka-bootstrap:%s" (include "taskq.kafkaName" .) (ternary "9093" "9092" .Values.kafka.strimzi.tls) }}
{{- else }}
{{- required "kafka.bootstrapServers is required when kafka.strimzi.enabled is false" .Values.kafka.bootstrapServers }}
{{- end }}
{{- end }}

{{/* Kafka bootstrap servers as KEDA's operator sees them: it resolves names from its own
namespace, so a bare Service name of this namespace gets `.<namespace>.svc`; names with a dot,
IP addresses and localhost stay as given. */}}
{{- define "taskq.kedaBootstrap" -}}
{{- $servers := list }}
{{- range splitList "," (include "taskq.kafkaBootstrap" .) }}
{{- $server := trim . }}
{{- $host := regexReplaceAll ":[0-9]+$" $server "" }}
{{- if and (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $host) (ne $host "localhost") }}
{{- $server = printf "%s.%s.svc%s" $host $.Release.Namespace (trimPrefix $host $server) }}
{{- end }}
{{- $servers = append $servers $server }}
{{- end }}
{{- join "," $servers }}
{{- end }}

{{/* Redis URL: the operator's Service or the given URL. */}}
{{- define "taskq.redisUrl" -}}
{{- if .Values.redis.operator.enabled }}
{{- printf "%s://%s:6379/0" (ternary "rediss" "redis" (not (empty .Values.redis.operator.tlsSecret))) (include "taskq.redisName" .) }}
{{- else }}
{{- required "redis.url is required when redis.operator.enabled is false" .Values.redis.url }}
{{- end }}
{{- end }}

{{/* Secret whose `ca.crt` signed Redis' certificate: the chart's Redis' own, or an existing Redis' CA; empty: none. */}}
{{- define "taskq.redisCaSecret" -}}
{{- if .Values.redis.operator.enabled }}{{ .Values.redis.operator.tlsSecret }}{{ else }}{{ .Values.redis.caSecret }}{{ end }}
{{- end }}

{{/* Secret with the Redis password (key `password`). */}}
{{- define "taskq.redisSecret" -}}
{{- default (printf "%s-redis-auth" (include "taskq.fullname" .)) .Values.redis.passwordSecret }}
{{- end }}

{{/* Secret with the API token (key `token`). */}}
{{- define "taskq.tokenSecret" -}}
{{- default (printf "%s-api-token" (include "taskq.fullname" .)) .Values.api.auth.existingSecret }}
{{- end }}

{{/*
Environment shared by API and workers; secrets come from Secrets, never from the ConfigMap. Called
with (dict "root" . "component" "api"|"worker"): on the chart's Strimzi Kafka each component signs
in as its own KafkaUser, whose ACLs allow what that component does and nothing else.
*/}}
{{- define "taskq.env" -}}
{{- $root := .root }}
- name: TASKQ_KAFKA_BOOTSTRAP
  value: {{ include "taskq.kafkaBootstrap" $root | quote }}
- name: TASKQ_REDIS_URL
  value: {{ include "taskq.redisUrl" $root | quote }}
{{- if or $root.Values.redis.operator.enabled $root.Values.redis.passwordSecret }}
- name: TASKQ_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "taskq.redisSecret" $root }}, key: password}
{{- end }}
{{- if include "taskq.redisCaSecret" $root }}
- name: TASKQ_REDIS_SSL_CAFILE
  value: /etc/taskq/redis-ca/ca.crt
{{- end }}
{{- if and $root.Values.kafka.strimzi.enabled $root.Values.kafka.strimzi.tls }}
- name: TASKQ_KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: TASKQ_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: TASKQ_KAFKA_SASL_USERNAME
  value: {{ include "taskq.kafkaUser" . }}
- name: TASKQ_KAFKA_SASL_PASSWORD
  valueFrom:
    # Strimzi's User Operator writes the password into a Secret named after the KafkaUser.
    secretKeyRef: {name: {{ include "taskq.kafkaUser" . }}, key: password}
- name: TASKQ_KAFKA_SSL_CAFILE
  value: /etc/taskq/kafka-ca/ca.crt
{{- else if not $root.Values.kafka.strimzi.enabled }}
- name: TASKQ_KAFKA_SECURITY_PROTOCOL
  value: {{ $root.Values.kafka.securityProtocol | quote }}
{{- if $root.Values.kafka.saslMechanism }}
- name: TASKQ_KAFKA_SASL_MECHANISM
  value: {{ $root.Values.kafka.saslMechanism | quote }}
- name: TASKQ_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ required "kafka.saslSecret is required with kafka.saslMechanism" $root.Values.kafka.saslSecret }}, key: username}
- name: TASKQ_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.kafka.saslSecret }}, key: password}
{{- end }}
{{- end }}
{{- end }}

{{/* The KafkaUser (and its Secret) of a component on the chart's Strimzi Kafka: <fullname>-api | -worker. */}}
{{- define "taskq.kafkaUser" -}}
{{- printf "%s-%s" (include "taskq.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Volumes every taskq pod mounts: a writable /tmp (the root filesystem is read-only), the Kafka CA. */}}
{{- define "taskq.volumes" -}}
- name: tmp
  emptyDir: {}
{{- with include "taskq.redisCaSecret" . }}
- name: redis-ca
  secret:
    secretName: {{ . }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}
{{- if and .Values.kafka.strimzi.enabled .Values.kafka.strimzi.tls }}
- name: kafka-ca
  secret:
    secretName: {{ include "taskq.kafkaName" . }}-cluster-ca-cert
{{- end }}
{{- end }}

{{- define "taskq.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "taskq.redisCaSecret" . }}
- name: redis-ca
  mountPath: /etc/taskq/redis-ca
  readOnly: true
{{- end }}
{{- if and .Values.kafka.strimzi.enabled .Values.kafka.strimzi.tls }}
- name: kafka-ca
  mountPath: /etc/taskq/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{/*
Egress of taskq pods when networkPolicy.egress is on: DNS anywhere (cluster DNS may run on the
node), Kafka and Redis ports on pods of the release namespace (Strimzi brokers, the operator's
Redis), then the user's rules for anything outside it.
*/}}
{{- define "taskq.egressRules" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
- to:
    - podSelector: {}
  ports:
    - {port: 9092, protocol: TCP}
    - {port: 9093, protocol: TCP}
    - {port: 6379, protocol: TCP}
{{- with .Values.networkPolicy.egress.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Annotations of a component's pods: the config checksum (a changed ConfigMap rolls the pods), the
`prometheus.io/*` scrape hints that Prometheus' kubernetes_sd (pod role) reads with the usual
relabelling, and the component's podAnnotations, which win on a clash (e.g. scrape: "false").
*/}}
{{- define "taskq.podAnnotations" -}}
{{- $a := dict "checksum/config" (include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum) }}
{{- if .root.Values.metrics.podAnnotations }}
{{- $_ := merge $a (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString .port) "prometheus.io/path" "/metrics") }}
{{- end }}
{{- toYaml (merge (deepCopy (index .root.Values .component "podAnnotations")) $a) }}
{{- end }}
