"""A real single-node Apache Kafka broker (KRaft combined mode) from the Maven jars, no Docker.

Plain text by default; given the development PKI (`KafkaBroker(tls=DevPki(...))`) its only client listener
speaks TLS and requires a client certificate, as a Strimzi cluster's does; given users and passwords too
(`sasl_users=`), it speaks SASL (PLAIN) over TLS instead and asks for no certificate."""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from refnet_dev.certs import DevPki
from refnet_dev.util import free_port, port_open, repo_root, tail
from refnet_platform import kafka_clients
from refnet_platform.kafka_clients import KafkaSecurity

KAFKA_VERSION = "4.1.1"
JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
# The broker's own chatter goes to a file; WARN and up only.
LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
"""


def libs_dir() -> Path:
    return repo_root() / ".cache" / "kafka" / "libs"


def ensure_jars() -> Path:
    """Copy the broker jars from Maven into .cache/kafka/libs once; later calls reuse them."""
    libs = libs_dir()
    marker = libs / f".kafka-{KAFKA_VERSION}"
    if marker.exists():
        return libs
    print(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central...", file=sys.stderr, flush=True)
    if libs.exists():  # a partial or older copy: start clean so no stale jar lands on the classpath
        shutil.rmtree(libs)
    pom = repo_root() / "tools" / "kafka" / "pom.xml"
    goal = ["dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    done = subprocess.run(["mvn", "-q", "-B", "-f", str(pom), *goal], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mvn could not fetch the Kafka jars:\n{done.stdout}{done.stderr}")
    marker.touch()
    return libs


def _cluster_id() -> str:
    # What `kafka-storage random-uuid` prints (base64url, no padding), without paying for a JVM.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return cid


class KafkaBroker:
    """Start with `with KafkaBroker() as broker:` and connect to `broker.bootstrap`."""

    def __init__(
        self,
        port: int | None = None,
        controller_port: int | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 60.0,
        tls: DevPki | None = None,
        sasl_users: dict[str, str] | None = None,
    ) -> None:
        if sasl_users and tls is None:
            raise ValueError("sasl_users: SASL here runs over TLS only; pass tls= too")
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self._own_workdir = workdir is None
        # A temp dir is made by start() and removed by stop(); a given one (with its data) is kept.
        self.workdir = Path(workdir or Path(tempfile.gettempdir()) / f"refnet-kafka-{uuid.uuid4().hex[:12]}")
        self.startup_timeout = startup_timeout
        self.tls = tls.ensure() if tls else None
        # The broker's own user for its inter-broker listener, beside the clients'.
        self.sasl_users = {"broker": uuid.uuid4().hex, **sasl_users} if sasl_users else None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_env(self, subject_id: str = "refnet-dev") -> dict[str, str]:
        """The environment a client process needs for this broker (KAFKA_SECURITY_PROTOCOL and the rest); with
        SASL, `subject_id` is the user (one of sasl_users, or the broker's own for the harness's probe)."""
        if self.tls is None:
            return {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
        if self.sasl_users:
            return {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SSL_CAFILE": str(self.tls.ca),
                    "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": subject_id,
                    "KAFKA_SASL_PASSWORD": self.sasl_users.get(subject_id, "")}
        cert, key = self.tls.client(subject_id, "service")
        return {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(self.tls.ca),
                "KAFKA_SSL_CERTFILE": str(cert), "KAFKA_SSL_KEYFILE": str(key)}

    def client_security(self, subject_id: str = "refnet-dev") -> KafkaSecurity:
        """The same, for a client made in this process."""
        return KafkaSecurity(**self.client_env(subject_id))  # type: ignore[arg-type]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "kafka.log"

    def start(self) -> KafkaBroker:
        libs = ensure_jars()
        started = time.monotonic()
        atexit.register(self.stop)  # an interrupted run must not leave a JVM behind
        try:
            self.workdir.mkdir(parents=True, exist_ok=not self._own_workdir)
            self._write_config()
            if not (self.workdir / "data" / "meta.properties").exists():
                self._format(libs)
            self._launch(libs, started, "start")
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """Stop gracefully and start again on the same ports and data (for chaos tests)."""
        started = time.monotonic()
        self._forget_offsets_admins()  # one kept across the restart goes on asking with the old leader epochs
        self._terminate()
        self._launch(libs_dir(), started, "restart")

    def stop(self) -> None:
        """Idempotent: SIGTERM, then SIGKILL after 15 s; removes the work dir if it made one."""
        # First the offsets admin clients for this broker, while it still answers: one left behind would log a
        # failed connection when the broker is gone.
        self._forget_offsets_admins()
        self._terminate()
        atexit.unregister(self.stop)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _forget_offsets_admins(self) -> None:
        for key in [key for key in _offset_admins if key[0] == self.bootstrap]:
            del _offset_admins[key]

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if "JAVA_HOME" in os.environ else "java"
        log4j = f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"
        return [java, *JVM_OPTS, log4j, "-cp", f"{libs}/*", main, *args]

    def _write_config(self) -> None:
        (self.workdir / "log4j2.properties").write_text(LOG4J2.format(log=self.log_file))
        listener = "SASL_SSL" if self.sasl_users else "SSL" if self.tls else "PLAINTEXT"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"{listener}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"{listener}://127.0.0.1:{self.port}",
            "listener.security.protocol.map": f"{listener}:{listener},CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            "log.dirs": str(self.workdir / "data"),
            # Topics come from the registry only (refnet-topics), never from a typo.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # One node: no point waiting for more group members, or creating 50 partitions per internal topic.
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.num.partitions": "8",
            # Smaller buffers and pools than a production broker: it shares a laptop with the services.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.tls:
            settings.update(self._tls_settings(self.tls))
        if self.sasl_users:
            users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users.items())
            settings.update({
                "ssl.client.auth": "none",  # the password is the client's proof here
                "sasl.enabled.mechanisms": "PLAIN", "sasl.mechanism.inter.broker.protocol": "PLAIN",
                "listener.name.sasl_ssl.plain.sasl.jaas.config":
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="broker" password="{self.sasl_users["broker"]}" {users};'})
        text = "".join(f"{k}={v}\n" for k, v in settings.items())
        (self.workdir / "server.properties").write_text(text)

    def _tls_settings(self, pki: DevPki) -> dict[str, str]:
        """PEM stores (Kafka reads them since 2.7): the broker's key and certificate from the dev PKI, the dev
        CA as the only trusted issuer, and a client certificate required of every client."""
        keystore = self.workdir / "broker-keystore.pem"
        server = pki.server_dir
        keystore.write_bytes((server / "server.key").read_bytes() + (server / "server.pem").read_bytes())
        keystore.chmod(0o600)
        return {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
                "ssl.truststore.type": "PEM", "ssl.truststore.location": str(pki.ca),
                "ssl.client.auth": "required"}

    def _format(self, libs: Path) -> None:
        # With a static controller.quorum.voters, format takes no --standalone/--initial-controllers flag.
        args = ("format", "-t", _cluster_id(), "-c", str(self.workdir / "server.properties"))
        done = subprocess.run(
            self._java(libs, "kafka.tools.StorageTool", *args), capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{done.stdout}{done.stderr}")

    def _launch(self, libs: Path, started: float, what: str) -> None:
        out = self.workdir / "kafka.out"
        with out.open("ab") as sink:
            # Own session: a Ctrl-C in the terminal reaches us, and we stop the broker in order.
            self._proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(self.workdir / "server.properties")),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready(started + self.startup_timeout)
        except BaseException:
            self._terminate()
            raise
        self.startup_seconds = time.monotonic() - started
        print(
            f"kafka: broker ready at {self.bootstrap}, {what} took {self.startup_seconds:.1f}s",
            file=sys.stderr,
        )

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"kafka broker exited with {self._proc.returncode}:\n"
                    f"{tail(self.workdir / 'kafka.out')}\n{tail(self.log_file)}"
                )
            # Probe the socket first so the client does not log a refused connection per attempt.
            if port_open(self.port) and self._answers():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka broker not ready after {self.startup_timeout:.0f}s:\n{tail(self.log_file)}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        probe = "broker" if self.sasl_users else "refnet-dev-probe"
        admin = kafka_clients.admin(self.bootstrap, "refnet-dev-probe", self.client_security(probe),
                                    **{"log_level": 0})
        try:
            return bool(admin.describe_cluster(request_timeout=5).result(timeout=6).nodes)
        except Exception:
            return False

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- Small synchronous helpers for tests, bench and chaos: made by the platform's factory like every client --

@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def create_topics(bootstrap: str, *names: str, partitions: int = 1, security: KafkaSecurity | None = None) -> None:
    """Scratch topics (not in the registry), created and with a leader for every partition."""
    from refnet_platform.topic_admin import ensure_topics
    from refnet_platform.topics import Topic

    ensure_topics(bootstrap, [Topic(name, "none", partitions, "test", (), ()) for name in names], security=security)


def send(producer: Producer, topic: str, value: bytes | None, key: bytes | None = None, partition: int | None = None,
         headers: list[tuple[str, bytes]] | None = None) -> Record:
    """Produces one record and waits for the broker's acknowledgement; returns where it landed."""
    delivered: list[tuple[Any, Any]] = []
    extra = {"partition": partition} if partition is not None else {}
    producer.produce(topic, value=value, key=key, headers=headers or [],
                     on_delivery=lambda error, message: delivered.append((error, message)), **extra)
    producer.flush(30)
    if not delivered:
        raise TimeoutError(f"no acknowledgement for a record to {topic}")
    error, message = delivered[0]
    if error is not None:
        raise KafkaException(error)
    return Record(topic, message.partition(), message.offset(), key, value)


def read_records(bootstrap: str, topic: str, start: dict[int, int] | None = None, at_least: int = 0,
                 timeout_s: float = 15.0, security: KafkaSecurity | None = None) -> list[Record]:
    """The topic's records from `start` (partition -> offset; default: every partition from the beginning) up
    to its end when called, waiting up to `timeout_s` until there are `at_least` of them."""
    consumer = kafka_clients.consumer(bootstrap, f"refnet-dev-reader-{uuid.uuid4().hex[:8]}", security=security,
                                      **{"fetch.message.max.bytes": 8 * 1024**2})
    try:
        listed = consumer.list_topics(topic, timeout=10).topics[topic]
        if listed.error is not None:
            raise KafkaException(listed.error)
        starts = start if start is not None else dict.fromkeys(listed.partitions, 0)
        consumer.assign([TopicPartition(topic, p, max(o, 0)) for p, o in starts.items()])
        deadline = time.monotonic() + timeout_s
        records: list[Record] = []
        while True:
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in starts}
            reached = {p: o for p, o in starts.items()}
            for r in records:
                reached[r.partition] = r.offset + 1
            if len(records) >= at_least and all(reached[p] >= ends[p] for p in starts):
                return records
            if time.monotonic() > deadline:
                return records
            for message in consumer.consume(500, timeout=0.5):
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(message.error())
                records.append(Record(message.topic(), message.partition(), message.offset(), message.key(),
                                      message.value(), tuple(message.headers() or ())))
    finally:
        consumer.close()


_offset_admins: dict[tuple[str, str], AdminClient] = {}


def _offsets_admin(bootstrap: str, security: KafkaSecurity | None) -> AdminClient:
    """One admin client per broker and settings: a backlog is read many times a second (bench, chaos), and each
    client librdkafka makes and drops costs threads, a connection and a log line."""
    key = (bootstrap, security.model_dump_json() if security else "")
    if key not in _offset_admins:
        _offset_admins[key] = kafka_clients.admin(bootstrap, "refnet-dev-offsets", security)
    return _offset_admins[key]


def committed_offsets(bootstrap: str, group: str, security: KafkaSecurity | None = None) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the group's committed offset (only partitions it committed)."""
    admin = _offsets_admin(bootstrap, security)
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=10)
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or () if tp.offset >= 0}


def commit_offsets(bootstrap: str, group: str, offsets: dict[tuple[str, int], int],
                   security: KafkaSecurity | None = None) -> None:
    admin = _offsets_admin(bootstrap, security)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=10)


def end_offsets(bootstrap: str, partitions: list[tuple[str, int]],
                security: KafkaSecurity | None = None) -> dict[tuple[str, int], int]:
    if not partitions:
        return {}
    admin = _offsets_admin(bootstrap, security)
    found = admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions})
    return {(tp.topic, tp.partition): int(f.result(timeout=10).offset) for tp, f in found.items()}
