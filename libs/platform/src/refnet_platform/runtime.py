"""Process start-up shared by every service's api, worker and relay: logs, tracing, database, run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import Engine

from refnet_platform import kafka_clients
from refnet_platform.bus import MessageBus
from refnet_platform.consumer import EventConsumer, Tick, dispatching
from refnet_platform.engine import is_postgres, make_engine
from refnet_platform.envelope import TypeRegistry
from refnet_platform.grpc_server import serve
from refnet_platform.health_http import HealthServer, database_check, kafka_check, metrics_port
from refnet_platform.identity import Authenticator, OidcConfig, TokenVerifier, server_credentials
from refnet_platform.metrics import watch_outbox
from refnet_platform.migrations import migrate
from refnet_platform.outbox import Relay
from refnet_platform.relay_lease import RelayLease
from refnet_platform.settings import ServiceSettings
from refnet_platform.telemetry import setup_logging, setup_tracing
from refnet_platform.unit_of_work import BatchTransaction

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)


def open_database(settings: ServiceSettings, migrations: Path) -> Engine:
    """The service's engine (as its own role), its schema migrated first (as the owner, when one is given)."""
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


def _start(settings: ServiceSettings, role: str) -> Callable[[], None]:
    setup_logging(f"{settings.service_name}-{role}", settings.log_level)
    provider = setup_tracing(settings.service_name, settings.otlp_endpoint)
    return provider.shutdown


def serve_health(settings: ServiceSettings, role: str, engine: Engine, uses_kafka: bool) -> HealthServer:
    """/metrics, /healthz and /readyz on <SVC>_<ROLE>_METRICS_PORT (see health_http)."""
    checks = {"database": database_check(engine)}
    if uses_kafka:
        checks["kafka"] = kafka_check(settings.kafka_bootstrap_servers)
    host = os.environ.get(f"{settings.service_name.upper()}_METRICS_HOST", settings.grpc_host)
    # Workers and relays go round their loop at least every few seconds; a minute of silence is a hang.
    stall_s = 60.0 if uses_kafka else None
    return HealthServer(host, metrics_port(settings.service_name, role), checks, stall_s=stall_s).start()


def migrate_only_requested(description: str) -> bool:
    """The command line of a process that also applies the migrations for Kubernetes' migration Job:
    `--migrate-only` applies them and exits."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--migrate-only", action="store_true", help="apply database migrations and exit")
    return bool(parser.parse_args().migrate_only)


def run_api(settings: ServiceSettings, migrations: Path,
            register: Callable[[Engine, grpc.aio.Server], Sequence[str]]) -> None:
    migrate_only = migrate_only_requested(f"refnet {settings.service_name} gRPC API")
    shutdown = _start(settings, "api")
    try:
        engine = open_database(settings, migrations)
        if migrate_only:
            log.info("migrations applied")
            return
        health = serve_health(settings, "api", engine, uses_kafka=False)
        try:
            asyncio.run(serve(settings.grpc_address, partial(register, engine), credentials=_credentials(settings),
                              authenticator=authenticator(settings)))
        finally:
            health.stop()
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
        health = serve_health(settings, "worker", engine, uses_kafka=True)

        async def main() -> None:
            worker = EventConsumer(settings.service_name, settings.kafka_bootstrap_servers, topics, types,
                                   dispatching(bus, command_for), max_attempts=settings.max_attempts,
                                   retry_backoff_s=settings.retry_backoff_s, ticks=ticks(bus),
                                   batch=partial(BatchTransaction, engine))
            worker.stop_on_signals()
            await worker.run()

        try:
            asyncio.run(main())
        finally:
            health.stop()
    finally:
        shutdown()


def run_relay(settings: ServiceSettings, migrations: Path) -> None:
    shutdown = _start(settings, "relay")
    try:
        engine = open_database(settings, migrations)
        watch_outbox(engine)
        health = serve_health(settings, "relay", engine, uses_kafka=True)
        producer = kafka_clients.producer(settings.kafka_bootstrap_servers, f"{settings.service_name}-relay")
        lease = RelayLease(engine, f"{settings.service_name}-relay", ttl_s=settings.relay_lease_s)
        relay = Relay(engine, producer, schema=settings.database[1], lease=lease)
        relay.stop_on_signals()
        try:
            relay.run()
        finally:
            health.stop()
    finally:
        shutdown()
