"""A real single-node Apache Kafka broker (KRaft combined mode) from the Maven jars, no Docker."""

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
from pathlib import Path
from types import TracebackType

from kafka import KafkaAdminClient

from refnet_dev.util import free_port, port_open, repo_root, tail

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
    ) -> None:
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self._own_workdir = workdir is None
        # A temp dir is made by start() and removed by stop(); a given one (with its data) is kept.
        self.workdir = Path(workdir or Path(tempfile.gettempdir()) / f"refnet-kafka-{uuid.uuid4().hex[:12]}")
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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
        self._terminate()
        self._launch(libs_dir(), started, "restart")

    def stop(self) -> None:
        """Idempotent: SIGTERM, then SIGKILL after 15 s; removes the work dir if it made one."""
        self._terminate()
        atexit.unregister(self.stop)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

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
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
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
        text = "".join(f"{k}={v}\n" for k, v in settings.items())
        (self.workdir / "server.properties").write_text(text)

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
            # Probe the socket first so kafka-python does not log a refused connection per attempt.
            if port_open(self.port) and self._answers():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka broker not ready after {self.startup_timeout:.0f}s:\n{tail(self.log_file)}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=3000, request_timeout_ms=5000
            )
        except Exception:
            return False
        try:
            return bool(admin.describe_cluster()["brokers"])
        except Exception:
            return False
        finally:
            admin.close()

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
