"""Every refnet Kafka client is made here, so TLS and SASL are configured in one place.

Two libraries, each where it serves: confluent-kafka (librdkafka) for producers, the admin client and
the synchronous consumers of tools and ops; aiokafka for the asyncio consumers (workers, shelter-api's
bed feed). A third (kafka-python) used to sit beside them with its own TLS mapping; one client that
skipped that mapping (the bed feed) never connected to a TLS-only broker. Now no client is built
anywhere else, and a test connects every kind to a broker that speaks mutual TLS only.

Security comes from the environment (one shape for every process):
KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
KAFKA_SSL_CAFILE          the CA that signed the brokers' certificates (PEM)
KAFKA_SSL_CERTFILE        this process's client certificate (PEM), for mutual TLS
KAFKA_SSL_KEYFILE         its private key (PEM)
KAFKA_SASL_MECHANISM      PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL_ protocol)
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL")
    cafile: Path | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")
    certfile: Path | None = Field(None, validation_alias="KAFKA_SSL_CERTFILE")
    keyfile: Path | None = Field(None, validation_alias="KAFKA_SSL_KEYFILE")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM")
    sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    sasl_password: SecretStr | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both or neither")
        if self.sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs KAFKA_SASL_USERNAME and "
                             "KAFKA_SASL_PASSWORD")
        return self

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


def kafka_security() -> KafkaSecurity:
    """The process's Kafka security, read from the environment each time a client is made (rarely)."""
    return KafkaSecurity()


def librdkafka_config(bootstrap: str, client_id: str, security: KafkaSecurity | None = None,
                      **options: Any) -> dict[str, Any]:
    """A confluent-kafka configuration: the bootstrap servers, the client id, the security settings."""
    s = security or kafka_security()
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": client_id,
                              "security.protocol": s.protocol}
    if s.tls:
        for key, path in (("ssl.ca.location", s.cafile), ("ssl.certificate.location", s.certfile),
                          ("ssl.key.location", s.keyfile)):
            if path:
                config[key] = str(path)
    if s.sasl:
        assert s.sasl_password is not None
        config.update({"sasl.mechanism": s.sasl_mechanism, "sasl.username": s.sasl_username,
                       "sasl.password": s.sasl_password.get_secret_value()})
    return {**config, **options}


def aiokafka_options(bootstrap: str, client_id: str, security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Keyword arguments for aiokafka's consumer and producer: the same settings in aiokafka's names."""
    s = security or kafka_security()
    options: dict[str, Any] = {"bootstrap_servers": bootstrap, "client_id": client_id,
                               "security_protocol": s.protocol}
    if s.tls:
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=str(s.cafile) if s.cafile else None,
                                                    certfile=str(s.certfile) if s.certfile else None,
                                                    keyfile=str(s.keyfile) if s.keyfile else None)
    if s.sasl:
        assert s.sasl_password is not None
        options.update({"sasl_mechanism": s.sasl_mechanism, "sasl_plain_username": s.sasl_username,
                        "sasl_plain_password": s.sasl_password.get_secret_value()})
    return options


SEND_TIMEOUT_S = 30
# How long the broker holds an empty fetch. A record arriving meanwhile for a partition in the fetch returns it at
# once (aiokafka's default 500 ms added up to half a second per hop). Lower costs the broker and every worker CPU
# when idle.
FETCH_MAX_WAIT_MS = 100
# How long aiokafka holds back the next fetch from a broker while records it buffered are not yet taken by the
# worker (its default: 100 ms). Past it the next fetch goes without those partitions, and the broker holds it
# until data comes for the others, up to FETCH_MAX_WAIT_MS: a record arriving meanwhile for a left-out partition
# waits for that. Too long a hold back: an emergency waits behind a buffered normal backlog (100 ms per hop with
# aiokafka's default). None at all: the next fetch goes before a worker waiting for records has taken them, so
# it leaves out the very partitions that are busy (at 50 cases/s each hop's median was 30 ms, the notice's 89).
# A few ms: an idle worker has taken them, and the urgent lane waits at most this long behind a busy one.
PREFETCH_BACKOFF_S = 0.005


def producer(bootstrap: str, client_id: str, security: KafkaSecurity | None = None, **options: Any) -> Producer:
    """librdkafka's idempotent producer (acks=all, ordered retries, no batching delay)."""
    from confluent_kafka import Producer

    return Producer(librdkafka_config(bootstrap, client_id, security, **{
        "enable.idempotence": True, "acks": "all", "linger.ms": 0,
        "message.timeout.ms": SEND_TIMEOUT_S * 1000, **options}))


def admin(bootstrap: str, client_id: str, security: KafkaSecurity | None = None, **options: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(librdkafka_config(bootstrap, client_id, security, **options))


def consumer(bootstrap: str, client_id: str, group_id: str | None = None, security: KafkaSecurity | None = None,
             **options: Any) -> Consumer:
    """A synchronous consumer. Without a group it only reads the partitions it is assigned (no commits)."""
    from confluent_kafka import Consumer

    # librdkafka wants a group id even for assign(); one no broker ever sees while nothing is committed.
    return Consumer(librdkafka_config(bootstrap, client_id, security, **{
        "group.id": group_id or f"{client_id}-unused", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "earliest", **options}))


def aio_consumer(*topics: str, bootstrap: str, client_id: str, security: KafkaSecurity | None = None,
                 **options: Any) -> AIOKafkaConsumer:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **aiokafka_options(bootstrap, client_id, security), **options)


async def started_worker_consumer(*topics: str, bootstrap: str, group_id: str) -> AIOKafkaConsumer:
    """A worker's consumer, started: in a group, offsets committed by the worker after its database commit,
    only committed records (read_committed), and fetching as FETCH_MAX_WAIT_MS and PREFETCH_BACKOFF_S say."""
    consumer = aio_consumer(*topics, bootstrap=bootstrap, client_id=group_id, group_id=group_id,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            fetch_max_wait_ms=FETCH_MAX_WAIT_MS, isolation_level="read_committed")
    await consumer.start()
    fetcher = consumer._fetcher  # aiokafka takes no option for its prefetch backoff
    assert fetcher is not None, "the consumer is started"
    fetcher._prefetch_backoff = PREFETCH_BACKOFF_S
    return consumer


def aio_producer(bootstrap: str, client_id: str, security: KafkaSecurity | None = None,
                 **options: Any) -> AIOKafkaProducer:
    """aiokafka's idempotent producer (acks=all): the worker's dead letters go out from its event loop."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**aiokafka_options(bootstrap, client_id, security),
                            **{"acks": "all", "enable_idempotence": True, **options})
