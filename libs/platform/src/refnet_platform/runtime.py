"""Process start-up shared by every service's api, worker and relay: logs, tracing, database, run.

`refnet-cohost SERVICE ROLES` (cohost below) runs several roles of one service in one process, e.g.
`refnet-cohost intake worker+relay`: each role's own entry point on a thread of its own, unchanged (its own
engine, loop, lease, metrics), the host process taking the signals and serving one /metrics, /healthz, /readyz.
It saves an interpreter, its polling and heartbeats per role on a small machine (`refnet-dev run --cohost`);
Kubernetes keeps one role per Deployment (each scales, restarts and is probed on its own)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

import grpc
import uvloop
from google.protobuf.message import Message
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import Engine

from refnet_platform import kafka_clients
from refnet_platform.bus import MessageBus
from refnet_platform.consumer import EventConsumer, dispatching
from refnet_platform.engine import is_postgres, make_engine
from refnet_platform.envelope import TypeRegistry
from refnet_platform.grpc_server import freeze_startup_objects, serve
from refnet_platform.health_http import Check, HealthServer, database_check, kafka_check, metrics_port
from refnet_platform.identity import Authenticator, OidcConfig, TokenVerifier, server_credentials
from refnet_platform.metrics import watch_outbox
from refnet_platform.migrations import migrate
from refnet_platform.outbox import Relay
from refnet_platform.relay_lease import RelayLease
from refnet_platform.settings import ServiceSettings
from refnet_platform.stopping import Stopping
from refnet_platform.telemetry import setup_logging, setup_tracing
from refnet_platform.timers import Tick
from refnet_platform.unit_of_work import BatchTransaction

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)


ROLES = ("api", "worker", "relay")
# Co-hosted roles migrate one after the other: each still migrates (as separate processes do) but alembic's
# context is process-global.
_migrating = threading.Lock()


def open_database(settings: ServiceSettings, migrations: Path) -> Engine:
    """The service's engine (as its own role), its schema migrated first (as the owner, when one is given)."""
    with _migrating:
        return _open_database(settings, migrations)


def _open_database(settings: ServiceSettings, migrations: Path) -> Engine:
    url, schema = settings.database
    engine = make_engine(url, schema, settings.db_pool_size)
    if settings.migration_database_url and is_postgres(engine):
        owner = make_engine(settings.migration_database_url, schema, pool_size=1)
        try:
            migrate(owner, migrations, schema, service_role=engine.url.username)
        finally:
            owner.dispose()
    else:
        migrate(engine, migrations, schema)
    if settings.otlp_endpoint:  # a span per statement costs a third of a write: only when they go somewhere
        SQLAlchemyInstrumentor().instrument(engine=engine, enable_commenter=False)
    return engine


def run_loop(main: Coroutine[object, object, None]) -> None:
    """Every refnet asyncio loop runs on uvloop (libuv): less CPU per wake-up than the standard loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _start(settings: ServiceSettings, role: str) -> Callable[[], None]:
    if _cohost is not None:
        return _cohost.start(settings)
    setup_logging(f"{settings.service_name}-{role}", settings.log_level)
    provider = setup_tracing(settings.service_name, settings.otlp_endpoint)
    return provider.shutdown


# Workers and relays go round their loop at least every few seconds; a minute of silence is a hang.
STALL_S = 60.0


def _checks(settings: ServiceSettings, engine: Engine, uses_kafka: bool) -> dict[str, Check]:
    checks = {"database": database_check(engine)}
    if uses_kafka:
        checks["kafka"] = kafka_check(settings.kafka_bootstrap_servers)
    return checks


def _health_host(settings: ServiceSettings) -> str:
    return os.environ.get(f"{settings.service_name.upper()}_METRICS_HOST", settings.grpc_host)


def serve_health(settings: ServiceSettings, role: str, engine: Engine, uses_kafka: bool) -> HealthServer:
    """/metrics, /healthz and /readyz on <SVC>_<ROLE>_METRICS_PORT (see health_http)."""
    return HealthServer(_health_host(settings), metrics_port(settings.service_name, role),
                        _checks(settings, engine, uses_kafka), stall_s=STALL_S if uses_kafka else None).start()


def _serve_role_health(settings: ServiceSettings, role: str, engine: Engine, uses_kafka: bool) -> Callable[[], None]:
    """The role's side door (its own, or its part of a co-hosted process's); returns its stop."""
    if _cohost is not None:
        _cohost.add_health(settings, role, _checks(settings, engine, uses_kafka), uses_kafka)
        return lambda: None
    return serve_health(settings, role, engine, uses_kafka).stop


def migrate_only_requested(description: str) -> bool:
    """The command line of a process that also applies the migrations for Kubernetes' migration Job:
    `--migrate-only` applies them and exits."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--migrate-only", action="store_true", help="apply database migrations and exit")
    return bool(parser.parse_args().migrate_only)


def run_api(settings: ServiceSettings, migrations: Path,
            register: Callable[[Engine, grpc.aio.Server], Sequence[str]]) -> None:
    migrate_only = _cohost is None and migrate_only_requested(f"refnet {settings.service_name} gRPC API")
    shutdown = _start(settings, "api")
    try:
        engine = open_database(settings, migrations)
        if migrate_only:
            log.info("migrations applied")
            return
        stop_health = _serve_role_health(settings, "api", engine, uses_kafka=False)

        async def main() -> None:
            stopping = None
            if _cohost is not None:  # the host takes the signals and sets it
                stopping = asyncio.Event()
                _cohost.on_stop("api", partial(asyncio.get_running_loop().call_soon_threadsafe, stopping.set))
            await serve(settings.grpc_address, partial(register, engine), credentials=_credentials(settings),
                        authenticator=authenticator(settings), stopping=stopping)

        try:
            run_loop(main())
        finally:
            stop_health()
    finally:
        shutdown()


def authenticator(settings: ServiceSettings) -> Authenticator:
    if not settings.oidc_issuer:
        log.warning("no OIDC_ISSUER: people cannot sign in; only machines (mutual TLS) can call")
        return Authenticator(None)
    return Authenticator(TokenVerifier(OidcConfig(settings.oidc_issuer, settings.oidc_audience,
                                                  settings.oidc_jwks_url, settings.oidc_leeway_s)))


def _credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_dir:
        return server_credentials(settings.tls_cert_dir)
    if settings.allow_plaintext:
        log.warning("serving plain text: for local development only")
        return None
    prefix = settings.service_name.upper()
    raise SystemExit(f"{settings.service_name}-api: set {prefix}_TLS_CERT_DIR (mutual TLS), or "
                     f"{prefix}_ALLOW_PLAINTEXT=true for local development")


def run_worker(settings: S, migrations: Path, topics: list[str], types: TypeRegistry,
               command_for: Callable[[Message], object | None],
               bootstrap: Callable[[S, Engine], MessageBus],
               ticks: Callable[[MessageBus], tuple[Tick, ...]] = lambda bus: ()) -> None:
    """Consumes `topics`, turning each payload into a command for the service's bus; runs its timers."""
    shutdown = _start(settings, "worker")
    try:
        engine = open_database(settings, migrations)
        bus = bootstrap(settings, engine)
        stop_health = _serve_role_health(settings, "worker", engine, uses_kafka=True)

        async def main() -> None:
            worker = EventConsumer(settings.service_name, settings.kafka_bootstrap_servers, topics, types,
                                   dispatching(bus, command_for), max_attempts=settings.max_attempts,
                                   retry_backoff_s=settings.retry_backoff_s, ticks=ticks(bus),
                                   batch=partial(BatchTransaction, engine))
            if _cohost is not None:
                _cohost.on_stop("worker", partial(asyncio.get_running_loop().call_soon_threadsafe, worker.stop))
            else:
                worker.stop_on_signals()
            freeze_startup_objects()
            await worker.run()

        try:
            run_loop(main())
        finally:
            stop_health()
    finally:
        shutdown()


def run_relay(settings: ServiceSettings, migrations: Path) -> None:
    shutdown = _start(settings, "relay")
    try:
        engine = open_database(settings, migrations)
        watch_outbox(engine)
        stop_health = _serve_role_health(settings, "relay", engine, uses_kafka=True)
        producer = kafka_clients.producer(settings.kafka_bootstrap_servers, f"{settings.service_name}-relay")
        lease = RelayLease(engine, f"{settings.service_name}-relay", ttl_s=settings.relay_lease_s)
        relay = Relay(engine, producer, schema=settings.database[1], lease=lease)
        if _cohost is not None:
            _cohost.on_stop("relay", relay.stopping.set)
        else:
            relay.stop_on_signals()
        freeze_startup_objects()
        try:
            relay.run()
        finally:
            stop_health()
    finally:
        shutdown()


# Bounds a co-hosted process's stop: its roles stop as fast as separate ones (the api's grace, the relay's flush).
COHOST_STOP_S = 12.0
_cohost: _Cohost | None = None


@dataclass
class _Cohost:
    """The roles of one service this process runs (refnet-cohost), each on a thread named <service>-<role>."""
    service: str
    roles: list[str]
    stopping: Stopping = field(default_factory=Stopping)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stops: list[Callable[[], object]] = field(default_factory=list)
    _shutdown: Callable[[], None] | None = None
    _checks: dict[str, Check] = field(default_factory=dict)
    _health_roles: list[str] = field(default_factory=list)
    _loops: list[str] = field(default_factory=list)
    _health: HealthServer | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{'+'.join(self.roles)}"

    def start(self, settings: ServiceSettings) -> Callable[[], None]:
        """Logs and tracing once for the process, named for all its roles (intake-worker+relay)."""
        with self._lock:
            if self._shutdown is None:
                setup_logging(self.name, settings.log_level)
                self._shutdown = setup_tracing(settings.service_name, settings.otlp_endpoint).shutdown
        return lambda: None  # the host shuts tracing down once every role has stopped

    def add_health(self, settings: ServiceSettings, role: str, checks: dict[str, Check], loops: bool) -> None:
        """One side door for the process: ready when every role is up and its dependencies answer; alive
        while every worker and relay loop goes round (each on its own thread's heartbeat)."""
        with self._lock:
            self._checks.update(checks)
            self._health_roles.append(role)
            if loops:
                self._loops.append(threading.current_thread().name)
            if len(self._health_roles) == len(self.roles):  # it listens once all are up: not ready before
                self._health = HealthServer(_health_host(settings), metrics_port(self.service, "+".join(self.roles)),
                                            self._checks, stall_s=STALL_S if self._loops else None,
                                            loops=self._loops).start()

    def on_stop(self, role: str, stop: Callable[[], object]) -> None:
        """`stop` ends the role's loop (thread-safe); called at once if the process is already stopping."""
        with self._lock:
            self._stops.append(stop)
        if self.stopping.is_set():
            stop()

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            stops = list(self._stops)
        for stop in stops:
            stop()

    def close(self) -> None:
        if self._health is not None:
            self._health.stop()
        if self._shutdown is not None:
            self._shutdown()


def _role_main(service: str, role: str) -> Callable[[], None]:
    """The role's own console script's function (e.g. intake-worker -> intake.entrypoints.worker:main)."""
    found = entry_points(group="console_scripts", name=f"{service}-{role}")
    if not found:
        raise SystemExit(f"refnet-cohost: no {service}-{role} installed")
    main: Callable[[], None] = next(iter(found)).load()
    return main


def cohost() -> None:
    """refnet-cohost SERVICE ROLES: the service's roles (e.g. worker+relay, api+worker+relay) in one process.
    SIGTERM/SIGINT stop every role within COHOST_STOP_S; a role that ends or fails ends the process (exit 1),
    so its supervisor restarts all of them as it would a single role; a crash point (REFNET_CRASH_AT) kills it."""
    global _cohost
    parser = argparse.ArgumentParser(description="run several roles of one refnet service in one process")
    parser.add_argument("service")
    parser.add_argument("roles", help="roles joined by '+', e.g. worker+relay or api+worker+relay")
    args = parser.parse_args()
    roles = args.roles.split("+")
    if len(set(roles)) != len(roles) or not set(roles) <= set(ROLES):
        parser.error(f"roles: some of {', '.join(ROLES)} joined by '+'")
    roles = [role for role in ROLES if role in roles]  # the api first, as separate processes start
    mains = {role: _role_main(args.service, role) for role in roles}
    sys.argv = sys.argv[:1]  # each role's own command line (the api's --migrate-only) is not this one
    host = _cohost = _Cohost(args.service, roles)
    host.stopping.on_signals()
    failed: list[str] = []

    def run(role: str, main: Callable[[], None]) -> None:
        try:
            main()
            if not host.stopping.is_set():
                failed.append(role)
                log.error("role ended on its own; stopping the others", extra={"fields": {"role": role}})
        except BaseException:
            failed.append(role)
            log.exception("role failed; stopping the others", extra={"fields": {"role": role}})
        finally:
            host.stopping.set()

    threads = [threading.Thread(target=run, args=(role, main), name=f"{args.service}-{role}")
               for role, main in mains.items()]
    for thread in threads:
        thread.start()
    host.stopping.wait()
    # Stopping is bounded below; a repeated SIGTERM (a supervisor's second ask) must not kill the process
    # midway through its roles' clean stop, nor in its exit once Python has restored the default handlers.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    host.stop()
    deadline = time.monotonic() + COHOST_STOP_S
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    if hung := [thread.name for thread in threads if thread.is_alive()]:
        log.error("roles did not stop in time; exiting", extra={"fields": {"roles": hung}})
        logging.shutdown()
        os._exit(1)
    host.close()
    sys.exit(1 if failed else 0)
