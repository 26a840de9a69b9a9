#!/bin/sh
# Writes a single-node KRaft config, formats the log dir once and runs the broker.
#   KAFKA_ADVERTISED_HOST  name clients connect to (default: the pod's IP), e.g. the Service name
#   KAFKA_NUM_PARTITIONS   default partitions of auto-created topics (default 1)
#   KAFKA_HEAP             JVM heap (default 512m)
set -eu
data=${KAFKA_DATA_DIR:-/var/lib/kafka}
host=${KAFKA_ADVERTISED_HOST:-$(hostname -i | cut -d' ' -f1)}
conf=$data/server.properties
cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$host:9092,CONTROLLER://127.0.0.1:9093
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
num.partitions=${KAFKA_NUM_PARTITIONS:-1}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=${KAFKA_GROUP_SESSION_MS:-10000}
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000
PROPS
cp="/opt/kafka/libs/*"
log="-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties"
if [ ! -f "$data/logs/meta.properties" ]; then
  id=$(java $log -cp "$cp" kafka.tools.StorageTool random-uuid)
  java $log -cp "$cp" kafka.tools.StorageTool format --standalone -t "$id" -c "$conf" --ignore-formatted
fi
exec java -Xmx"${KAFKA_HEAP:-512m}" -Xms"${KAFKA_HEAP:-512m}" $log -cp "$cp" kafka.Kafka "$conf"
