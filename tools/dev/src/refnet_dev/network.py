"""Starts and stops refnet's own processes (api, worker, relay of each service) on this machine."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import make_url

from refnet_dev.certs import DevPki
from refnet_dev.keycloak import Keycloak
from refnet_dev.util import free_port, pid_alive, repo_root, tail, wait_gone
from refnet_platform.caller import MACHINE_ROLES, Role
from refnet_platform.db_roles import service_role
from refnet_platform.identity import bearer, channel_credentials

SERVICES = ("intake", "referral", "shelter", "notifications")
# The front door the harness and `make demo` call through when they act as a signed-in person.
DEV_GATEWAY = "refnet-dev"
ROLES = ("api", "worker", "relay")
# Network(cohost=...): which roles of each service share one process (refnet-cohost, refnet_platform.runtime),
# as the processes are started: the apis first (they migrate and load the directory). A co-hosted process is
# named for its roles ("intake-worker+relay"), so its CPU, logs and metrics port stay its own.
COHOST = {None: (("api",), ("worker",), ("relay",)),
          "worker+relay": (("api",), ("worker", "relay")),
          "all": (("api", "worker", "relay"),)}
DEFAULT_PORTS = {"intake": 50051, "referral": 50052, "shelter": 50053, "notifications": 50054,
                 "ops-console": 8480, "ops-otlp": 4317, "web": 8580, "notifications-sms": 8680}
# The operations processes (services/ops), started when Network(ops=True): the OTLP trace receiver first, so
# every other process's spans have somewhere to go, then the worker and the console.
OPS_FIRST, OPS_LAST = ("ops-collector",), ("ops-worker", "ops-console")
# The web front door (services/web), started last when Network(web=True): it calls the apis as the signed-in
# person with its gateway certificate. Like the console, it serves /healthz, /readyz, /metrics on its own port.
WEB = "web"
WEB_GATEWAY = "refnet-web"
# The first process of each service to start: with database_roles, the one that migrates (as the schema's owner).
MIGRATING = frozenset({*(f"{s}-api" for s in SERVICES), *OPS_FIRST, WEB})
# The SMS door (notifications-sms), started after the apis when Network(sms=True): the gateway POSTs texts to
# sms_url + "/sms/inbound". It serves /healthz, /readyz, /metrics on that port too.
SMS_DOOR = "notifications-sms"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Network:
    kafka_bootstrap: str
    data_dir: Path
    database_url: str | None = None
    otlp_endpoint: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    directory_file: Path = field(default_factory=lambda: repo_root() / "demo" / "directory.json")
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    ops: bool = False
    web: bool = False
    sms: bool = False
    # The identity provider people sign in to; without one, only machines can call.
    keycloak: Keycloak | None = None
    # PostgreSQL as on Kubernetes: database_url's user owns the schemas and migrates (only the first process of
    # each service is given it, as MIGRATION_DATABASE_URL); every process runs as its service's own role
    # (refnet_platform.db_roles, made beforehand with create_roles).
    database_roles: bool = False
    # None: a process per role (as on Kubernetes); "worker+relay" or "all" (see COHOST). REFNET_COHOST sets it
    # for networks started by tools that do not pass it (bench, chaos).
    cohost: str | None = field(default_factory=lambda: os.environ.get("REFNET_COHOST") or None)

    def __post_init__(self) -> None:
        if self.cohost not in COHOST:
            raise ValueError(f"cohost: one of {', '.join(str(k) for k in COHOST if k)} (or None), not {self.cohost!r}")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "REFNET_DATA_DIR": str(self.data_dir),
            "INTAKE_MASTER_KEY_FILE": str(self.dev_master_key()),
            "REFERRAL_DIRECTORY_FILE": str(self.directory_file),
            "SHELTER_DIRECTORY_FILE": str(self.directory_file),
            # Export spans quickly so a trace can be looked up moments after a case flows.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            # A relay killed here (chaos, a test) is restarted at once: its lease need not outlast a GC pause.
            "REFNET_RELAY_LEASE_S": "5",
            "PYTHONUNBUFFERED": "1",
        })
        for service in SERVICES:
            env[f"{service.upper()}_GRPC_PORT"] = str(self.port(service))
            env[f"{service.upper()}_TLS_CERT_DIR"] = str(self.pki.server_dir)
        # Referral reads a survivor's contact details from intake's internal API as refnet service "referral".
        referral_cert, referral_key = self.pki.client("referral", "service")
        env.update({"REFERRAL_INTAKE_ADDRESS": self.address("intake"),
                    "REFERRAL_INTAKE_CLIENT_CERT": str(referral_cert), "REFERRAL_INTAKE_CLIENT_KEY": str(referral_key)})
        # Notifications: who is told where (the directory's duty contacts), and a survivor's safe contact read
        # from intake as refnet service "notifications". Its SMTP / SMS gateway / webhook settings
        # (NOTIFICATIONS_SMTP_HOST, _SMS_GATEWAY_URL, _WEBHOOK_SECRET, ...) come from extra_env; unset, only
        # the in-app feed is on.
        notifications_cert, notifications_key = self.pki.client("notifications", "service")
        env.update({"NOTIFICATIONS_DIRECTORY_FILE": str(self.directory_file),
                    "NOTIFICATIONS_INTAKE_ADDRESS": self.address("intake"),
                    "NOTIFICATIONS_INTAKE_CLIENT_CERT": str(notifications_cert),
                    "NOTIFICATIONS_INTAKE_CLIENT_KEY": str(notifications_key)})
        # The SMS door asks shelter, referral and intake who a number is (as refnet service "notifications");
        # its secret and gateway come from extra_env (NOTIFICATIONS_SMS_INBOUND_SECRET, _SMS_GATEWAY_URL).
        env.update({"NOTIFICATIONS_SHELTER_ADDRESS": self.address("shelter"),
                    "NOTIFICATIONS_REFERRAL_ADDRESS": self.address("referral"),
                    "NOTIFICATIONS_SMS_DOOR_PORT": str(self.port(SMS_DOOR))})
        # Every process's /metrics, /healthz and /readyz on a port of its own.
        for name in self.process_names():
            if name not in ("ops-console", WEB, SMS_DOOR):  # the console and the web app serve them on their own port
                env[f"{name.replace('-', '_').replace('+', '_').upper()}_METRICS_PORT"] = \
                    str(self.port(f"{name}-metrics"))
        if self.keycloak:
            env.update(self.keycloak.env())
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.otlp_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_endpoint
        elif self.ops:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{self.port('ops-otlp')}"
        if self.ops:
            env["OPS_CONSOLE_PORT"] = str(self.port("ops-console"))
            env["OPS_OTLP_PORT"] = str(self.port("ops-otlp"))
            env["OPS_TARGETS"] = ",".join(f"{name}={self.metrics_url(name)}" for name in self.process_names())
            env["OPS_CONSOLE_OIDC_CLIENT_SECRET"] = "refnet-console-dev-secret"  # the dev realm's (deploy/keycloak)
        if self.web:
            web_cert, web_key = self.pki.client(WEB_GATEWAY, Role.GATEWAY)
            env.update({"WEB_PORT": str(self.port(WEB)), "WEB_TLS_CA": str(self.pki.ca),
                        "WEB_TLS_CERT": str(web_cert), "WEB_TLS_KEY": str(web_key),
                        "WEB_OIDC_CLIENT_SECRET": "refnet-web-dev-secret"})  # the dev realm's (deploy/keycloak)
            for service in SERVICES:
                env[f"WEB_{service.upper()}_ADDRESS"] = self.address(service)
            # Every notice links to the partner portal's referral and the operator's case: both in the web app.
            env["NOTIFICATIONS_PARTNER_PORTAL_URL"] = self.web_url
            env["NOTIFICATIONS_OPERATOR_CONSOLE_URL"] = self.web_url
        env.update(self.extra_env)
        return env

    @property
    def pki(self) -> DevPki:
        return DevPki(self.data_dir / "certs").ensure()

    def channel(self, service: str, subject_id: str, role: str) -> grpc.Channel:
        """A mutual-TLS channel to a service's api as the given caller: a machine by its own
        certificate; a person (operators, supervisors, ops) as the realm user `subject_id`."""
        return grpc.secure_channel(self.address(service), self.credentials(subject_id, role))

    def person_channel(self, service: str, username: str) -> grpc.Channel:
        """A channel through the development front door as the realm user `username` (any role)."""
        return grpc.secure_channel(self.address(service), self.person_credentials(username))

    def credentials(self, subject_id: str, role: str) -> grpc.ChannelCredentials:
        if Role(role) not in MACHINE_ROLES:
            return self.person_credentials(subject_id)
        cert, key = self.pki.client(subject_id, role)
        return channel_credentials(self.pki.ca, cert, key)

    def person_credentials(self, username: str) -> grpc.ChannelCredentials:
        """The development front door's certificate, every call carrying `username`'s access token
        from the identity provider (fetched and renewed as it nears expiry)."""
        if self.keycloak is None:
            raise RuntimeError(f"{username} is a person: this network has no identity provider to sign in to")
        keycloak = self.keycloak
        cert, key = self.pki.client(DEV_GATEWAY, Role.GATEWAY)

        def add_token(context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
            try:
                callback(bearer(keycloak.token(username)), None)
            except Exception as exc:  # handed to gRPC, which fails the call with it
                callback((), exc)

        return grpc.composite_channel_credentials(channel_credentials(self.pki.ca, cert, key),
                                                  grpc.metadata_call_credentials(add_token))

    def port(self, service: str) -> int:
        if service not in self.ports:
            self.ports[service] = free_port()
        return self.ports[service]

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.port(service)}"

    def stages(self) -> list[list[str]]:
        """refnet's own processes, in the order they start: each service's api (or its process that hosts it)
        first, then the rest."""
        return [[f"{service}-{'+'.join(roles)}" for service in SERVICES] for roles in COHOST[self.cohost]]

    def host_of(self, service: str, role: str) -> str:
        """The process that runs a service's role: "intake-relay", or co-hosted "intake-worker+relay"."""
        return next(f"{service}-{'+'.join(roles)}" for roles in COHOST[self.cohost] if role in roles)

    def process_names(self) -> list[str]:
        names = [name for stage in self.stages() for name in stage]
        names = [*OPS_FIRST, *names, *OPS_LAST] if self.ops else names
        names = [*names, SMS_DOOR] if self.sms else names
        return [*names, WEB] if self.web else names

    def metrics_url(self, name: str) -> str:
        """Where a process serves /metrics, /healthz and /readyz."""
        port = self.port(name) if name in ("ops-console", WEB, SMS_DOOR) else self.port(f"{name}-metrics")
        return f"http://127.0.0.1:{port}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.port('ops-console')}"

    @property
    def sms_url(self) -> str:
        """The SMS door the gateway posts texts to (POST /sms/inbound)."""
        return f"http://127.0.0.1:{self.port(SMS_DOOR)}"

    @property
    def web_url(self) -> str:
        """The web front door (operator workspace, partner portal, shelter page)."""
        return f"http://127.0.0.1:{self.port(WEB)}"

    def dev_master_key(self) -> Path:
        """A development master key, made once per data dir. Production mounts a real one."""
        path = self.data_dir / "dev-master.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(base64.b64encode(os.urandom(32)).decode())
            path.chmod(0o600)
        return path

    def start(self, timeout: float = 90) -> Network:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        bin_dir = Path(sys.executable).parent
        for name in OPS_FIRST if self.ops else ():
            self.start_process(name, env, bin_dir)
        # Each service's api first: it applies migrations and loads the demo directory.
        for i, stage in enumerate(self.stages()):
            for name in stage:
                self.start_process(name, env, bin_dir)
            if i == 0:
                self.wait_healthy(timeout)
        if self.ops:
            for name in OPS_LAST:
                self.start_process(name, env, bin_dir)
            self.wait_ready("ops-console", timeout)
        if self.sms:
            self.start_process(SMS_DOOR, env, bin_dir)
            self.wait_ready(SMS_DOOR, timeout)
        if self.web:
            self.start_process(WEB, env, bin_dir)
            self.wait_ready(WEB, timeout)
        return self

    def wait_ready(self, name: str, timeout: float) -> None:
        """Until the process's /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.metrics_url(name)}/readyz", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become ready:\n{self.log_tail(name)}")
            time.sleep(0.2)

    def start_process(self, name: str, env: dict[str, str] | None = None, bin_dir: Path | None = None) -> Process:
        log = self.data_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        bin_dir = bin_dir or Path(sys.executable).parent
        service, _, roles = name.partition("-")
        command = [str(bin_dir / "refnet-cohost"), service, roles] if "+" in roles else [str(bin_dir / name)]
        env = env or self.env()
        if name.split("+")[0] != "intake-api":  # as on Kubernetes: only intake-api holds the master key
            env = {k: v for k, v in env.items() if not k.startswith("INTAKE_MASTER_KEY")}
        if self.database_roles and self.database_url:
            env = {**env, **self.role_env(name)}
        with open(log, "ab") as out:
            # A session of its own: Linux's autogroup scheduler shares the CPU equally between sessions, whatever
            # their threads' nice, so a worker's normal lane (nice +10) yields to its own process's urgent lane
            # and loop only. Across processes that priority measured worse (README, "Priorities").
            popen = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        process = Process(name, popen, log)
        self.processes = [p for p in self.processes if p.name != name] + [process]
        return process

    def role_env(self, name: str) -> dict[str, str]:
        """DATABASE_URL as the process's service role, and MIGRATION_DATABASE_URL for its service's first process."""
        assert self.database_url
        service = name.split("-")[0]
        env = {"DATABASE_URL": make_url(self.database_url).set(username=service_role(service))
               .render_as_string(hide_password=False)}
        if name.split("+")[0] in MIGRATING:
            env["MIGRATION_DATABASE_URL"] = self.database_url
        return env

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for service in SERVICES:
            while not self.healthy(service):
                self.check_alive()
                if time.monotonic() > deadline:
                    api = self.host_of(service, "api")
                    raise TimeoutError(f"{api} did not become healthy:\n{self.log_tail(api)}")
                time.sleep(0.2)

    def healthy(self, service: str) -> bool:
        try:
            with self.channel(service, DEV_GATEWAY, Role.SERVICE) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.RpcError:
            return False

    def check_alive(self) -> None:
        for p in self.processes:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{tail(p.log)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        return tail(self.data_dir / "logs" / f"{name}.log", lines)

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        for p in self.processes:
            if p.name == name:
                _stop(p, sig, timeout)

    def stop(self, timeout: float = 15) -> None:
        for p in self.processes:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.processes:
            _stop(p, signal.SIGTERM, max(deadline - time.monotonic(), 0.1))
        self.processes = []

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop(p: Process, sig: int, timeout: float) -> None:
    if p.popen.poll() is None:
        p.popen.send_signal(sig)
        if not wait_gone(p.popen.pid, timeout) and pid_alive(p.popen.pid):
            p.popen.kill()
    p.popen.wait(timeout=10)
