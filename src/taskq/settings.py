"""The one settings object. Built at an entry point (CLI, API factory, tests) and passed in."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import limits


def default_worker_id() -> str:
    # In a pod the hostname is the pod name; locally several workers share a host.
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """All of taskq's configuration, read from ``TASKQ_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TASKQ_", extra="ignore", frozen=True)

    # --- Kafka -----------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    kafka_client: Literal["kafka-python", "confluent"] = Field(
        "confluent", description="Kafka client library: confluent (librdkafka, KIP-848 groups: the default), or "
                                 "kafka-python (pure Python, classic groups).",
    )
    group_protocol: Literal["classic", "consumer"] | None = Field(
        None, description="Consumer group protocol: classic, or consumer (KIP-848, confluent client only). "
                          "Unset: the best one for the client.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # Topic names: the task stream and the dead-letter topic (messages that can never run).
    tasks_topic: str = "taskq.tasks"
    dead_topic: str = "taskq.dead"
    # 12 partitions: the ceiling on parallel consumers, divisible by 2, 3, 4 and 6 worker counts.
    partitions: int = Field(12, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1)
    group_id: str = "taskq-workers"
    # Priority lanes: high and low tasks travel in their own topics (<tasks_topic>.high / .low),
    # which every worker consumes beside the normal one and starts from first (docs/architecture.md).
    priority_lanes: bool = Field(False, description="Consume and accept the high and low priority lanes.")
    # Well under Kafka's 45 s default so a killed worker's partitions move quickly.
    session_timeout: float = Field(6.0, ge=1.0, le=300.0)
    submit_timeout: float = Field(10.0, gt=0, description="Seconds to wait for Kafka to acknowledge a submission.")

    # --- Redis -----------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: SecretStr | None = None
    redis_ssl_cafile: str | None = Field(
        None, description="CA file that signed Redis' certificate, for a rediss:// TASKQ_REDIS_URL (the system's "
                          "trust store when unset).",
    )
    # Every key lives under this prefix so several deployments can share one Redis.
    prefix: str = "taskq:"
    result_ttl: float = Field(7 * 24 * 3600, gt=0, description="Seconds a finished task's record is kept.")
    result_ttl_success: float | None = Field(
        None, gt=0, description="Seconds a successful task's record is kept; unset: result_ttl. Failed, dead and "
                                "cancelled records keep result_ttl (they are the ones people come back to).")
    events_maxlen: int = Field(10_000, ge=100, description="Approximate length cap of the live event stream.")

    # --- Worker ----------------------------------------------------------
    concurrency: int = Field(4, ge=1, le=1024)
    shutdown_grace: float = Field(25.0, ge=0, description="Seconds to finish in-flight tasks on SIGTERM.")
    # Liveness of a worker is its heartbeat key; the TTL is below session_timeout so that, when
    # Kafka hands a dead worker's partitions over, its heartbeat has already expired.
    heartbeat_interval: float = Field(1.0, gt=0)
    heartbeat_ttl: float = Field(3.0, gt=0)
    tasks_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra modules with @task functions (comma separated)."
    )
    fetch_max_wait_ms: int = Field(
        25, ge=1, le=1000,
        description="Longest a worker's Kafka fetch waits for data. Lower: shorter tail latency, more idle CPU.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Worker/API log level. INFO logs one line per task event; WARNING keeps only problems."
    )
    # Payloads are often personal data: a task's args and result reach the logs only when asked for.
    log_args: bool = Field(
        False, description="Write task args and results into the worker's per-task log lines (taskq dev does); "
                           "off, the lines carry the task's name and id and how many args it had.",
    )
    kafka_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "ERROR", description="Log level of the Kafka client library inside workers (DEBUG to diagnose group joins)."
    )
    # Off by default: tracing costs nothing until asked for (docs/settings.md, Tracing).
    tracing: str = Field(
        "none", description="Span exporter the worker and the API install: none, console, otlp (needs taskq[otlp]) "
                            "or jsonl:<path> (one JSON object per finished span).",
    )
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Worker /metrics port; off when unset.")
    metrics_host: str = Field(
        "0.0.0.0",  # noqa: S104 - in a pod Prometheus scrapes the pod IP
        description="Address the worker's /metrics server binds (taskq dev uses 127.0.0.1).",
    )
    default_max_retries: int = Field(0, ge=0, le=1000, description="For tasks that set no max_retries.")
    retry_backoff: float = Field(1.0, ge=0, description="Base of the exponential retry delay, seconds.")
    retry_backoff_max: float = Field(3600.0, ge=0, description="Cap of one retry delay, seconds.")
    max_result_bytes: int = Field(1024 * 1024, ge=16, description="Larger results fail the task.")
    task_memory_limit: int | None = Field(
        None, description="Memory (heap) a task run in a child process may take, e.g. 512MiB: past it the task fails "
                          "with MemoryError instead of the worker being OOM-killed. @task(memory_limit=...) sets "
                          "it per task and makes that task run in a child process.",
    )
    max_lost_runs: int = Field(
        2, ge=0, le=1000,
        description="How often a task is run again after its worker was lost while running it (killed, "
                    "OOM, crash); the next loss ends it dead. @task(max_lost_runs=...) overrides it.",
    )
    idempotency_ttl: float = Field(24 * 3600, gt=0, description="Seconds an idempotency key is remembered.")

    # --- API -------------------------------------------------------------
    api_token: SecretStr | None = Field(None, description="Every /api call needs it (a bearer token or a UI sign-in).")
    api_read_token: SecretStr | None = Field(
        None, description="A second token that can read everything and change nothing (403 on every action).",
    )
    api_auth: Literal["token", "none"] = Field(
        "token",
        description="token: beyond loopback the API starts only with TASKQ_API_TOKEN set; none: it serves every "
                    "caller without a token wherever it listens (a warning is logged at start).",
    )
    api_session_ttl: float = Field(
        12 * 3600, ge=60, le=30 * 24 * 3600, description="Seconds a UI sign-in (POST /api/login's cookie) lasts.",
    )
    # Behind a proxy that ends TLS the API sees plain http: true marks the cookie Secure anyway.
    api_cookie_secure: bool | None = Field(
        None, description="Mark the session cookie Secure: true, false, or unset (when the request came over HTTPS).",
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    api_max_inflight: int = Field(
        1000, ge=1, le=1_000_000,
        description="Submissions one API process holds waiting for Kafka at once; past it, 503 with Retry-After.",
    )
    api_metrics_port: int | None = Field(
        None, ge=1, le=65535,
        description="Serve the API's /metrics on this port (same address) and nowhere else, so an Ingress that "
                    "routes the API's port never exposes it; unset: /metrics on the API's own port.",
    )
    api_login_attempts: int = Field(
        10, ge=1, le=10_000,
        description="Failed sign-ins (POST /api/login) one client address may make per minute, across every API "
                    "replica; past it, 429 with Retry-After.",
    )
    api_trusted_proxies: str = Field(
        "127.0.0.1",
        description="Addresses (comma-separated IPs or CIDRs, or *) whose X-Forwarded-Proto and X-Forwarded-For "
                    "the API believes: the ingress controller's, so a request that came over TLS gets a Secure "
                    "cookie and sign-in limits count the real client.",
    )
    audit_maxlen: int = Field(
        10_000, ge=100, le=10_000_000,
        description="Approximate number of audit entries kept (who retried, cancelled, purged, paused... what).",
    )
    api_max_streams: int = Field(
        200, ge=1, le=100_000,
        description="Event streams (/api/events) one API process serves at once, all fed by one Redis "
                    "connection; past it, 503 with Retry-After.",
    )
    bulk_max: int = Field(
        100_000, ge=1, le=10_000_000,
        description="Tasks one bulk retry, cancel or purge acts on at most; past it the call says so (call it again).",
    )

    @field_validator("prefix")
    @classmethod
    def _prefix_ends_with_colon(cls, v: str) -> str:
        if not v:
            raise ValueError("prefix must not be empty")
        return v if v.endswith(":") else v + ":"

    @field_validator("task_memory_limit", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int | None:
        return limits.parse_bytes(value or None, "TASKQ_TASK_MEMORY_LIMIT")

    @field_validator("tasks_modules", mode="before")
    @classmethod
    def _split_modules(cls, v: object) -> object:
        if isinstance(v, str):
            return [m.strip() for m in v.split(",") if m.strip()]
        return v

    @field_validator("tracing")
    @classmethod
    def _known_exporter(cls, v: str) -> str:
        if v in ("none", "console", "otlp") or (v.startswith("jsonl:") and v != "jsonl:"):
            return v
        raise ValueError(f"tracing {v!r} is unknown: use none, console, otlp or jsonl:<path>")

    @field_validator("api_token", "api_read_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, v: object) -> object:
        # TASKQ_API_TOKEN= (set but empty, or blanks) is unset rather than a token anyone can send (and
        # a public key for the session cookie's HMAC); a token is compared without surrounding blanks.
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v

    def lane_topic(self, priority: str) -> str:
        """The topic of a priority lane: the tasks topic for normal, ``<tasks_topic>.<priority>`` otherwise."""
        return self.tasks_topic if priority == "normal" else f"{self.tasks_topic}.{priority}"

    def lane_topics(self) -> list[str]:
        """Every lane's topic a worker consumes (only the tasks topic while the lanes are off)."""
        return [self.lane_topic(p) for p in (("high", "normal", "low") if self.priority_lanes else ("normal",))]

    def for_lane(self, priority: str) -> Settings:
        """These settings as a lane's consumer sees them: its topic and its own consumer group."""
        if priority == "normal":
            return self
        return self.model_copy(update={"tasks_topic": self.lane_topic(priority),
                                       "group_id": f"{self.group_id}.{priority}", "priority_lanes": False})

    @model_validator(mode="after")
    def _check_tokens(self) -> Settings:
        if self.api_auth == "none" and self.api_token is not None:
            raise ValueError("api_auth=none (TASKQ_API_AUTH) with api_token (TASKQ_API_TOKEN) set: choose one, "
                             "a token or no authentication")
        if self.api_read_token is None:
            return self
        if self.api_token is None:
            raise ValueError("api_read_token (TASKQ_API_READ_TOKEN) needs api_token (TASKQ_API_TOKEN): without it "
                             "every caller may change everything anyway")
        if self.api_read_token.get_secret_value() == self.api_token.get_secret_value():
            raise ValueError("api_read_token must differ from api_token: one token cannot be both read-only and not")
        return self

    @model_validator(mode="after")
    def _check_timings(self) -> Settings:
        if self.heartbeat_ttl <= self.heartbeat_interval:
            raise ValueError(
                f"heartbeat_ttl ({self.heartbeat_ttl}) must exceed heartbeat_interval "
                f"({self.heartbeat_interval}), or live workers would look lost"
            )
        return self

    @model_validator(mode="after")
    def _check_group_protocol(self) -> Settings:
        if self.group_protocol == "consumer" and self.kafka_client != "confluent":
            raise ValueError("group_protocol 'consumer' (KIP-848) needs kafka_client 'confluent': "
                             "kafka-python speaks only the classic protocol")
        return self

    @property
    def consumer_group_protocol(self) -> Literal["classic", "consumer"]:
        """The protocol in effect: the setting, else KIP-848 for librdkafka and classic for kafka-python.

        KIP-848 won the churn benchmark by far (README, Performance); kafka-python cannot speak it."""
        if self.group_protocol is not None:
            return self.group_protocol
        return "consumer" if self.kafka_client == "confluent" else "classic"

    def redis_options(self) -> dict[str, Any]:
        """Connection options every Redis client takes besides the URL: the password, and for
        rediss:// the CA that must have signed the server's certificate (which is always checked)."""
        opts: dict[str, Any] = {
            "password": self.redis_password.get_secret_value() if self.redis_password else None,
        }
        if self.redis_url.startswith("rediss://"):
            opts["ssl_cert_reqs"] = "required"
            if self.redis_ssl_cafile:
                opts["ssl_ca_certs"] = self.redis_ssl_cafile
        return opts

    @property
    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]

    def kafka_common(self) -> dict[str, object]:
        """Connection options shared by producer, consumer and admin client."""
        opts: dict[str, object] = {
            "bootstrap_servers": self.kafka_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism
            opts["sasl_plain_username"] = self.kafka_sasl_username
            opts["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_ssl_cafile:
            opts["ssl_cafile"] = self.kafka_ssl_cafile
        return opts
