"""ops-collector: a standard OTLP/gRPC trace receiver that keeps spans in ops' database, indexed by trace id and by
the case and referral ids the spans carry. Every process exports to it (OTEL_EXPORTER_OTLP_ENDPOINT); in
production an OpenTelemetry Collector sits in between and forwards here as well as to the tracing backend.

It does not trace itself: its own spans would come back to it and never stop.
"""

from __future__ import annotations

import logging

from ops.adapters.otlp import serve_receiver
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from ops.domain.model import SpanRecord
from refnet_platform.runtime import open_database, serve_health
from refnet_platform.stopping import Stopping
from refnet_platform.telemetry import setup_logging

log = logging.getLogger(__name__)


def main() -> None:
    settings = Settings()
    setup_logging("ops-collector", settings.log_level)
    engine = open_database(settings, MIGRATIONS)
    bus = bootstrap(settings, engine)

    def store(spans: list[SpanRecord]) -> None:
        bus.handle(commands.StoreSpans(spans))

    health = serve_health(settings, "collector", engine, uses_kafka=False)
    server, port = serve_receiver(store, settings.otlp_host, settings.otlp_port)
    log.info("otlp receiver listening", extra={"fields": {"host": settings.otlp_host, "port": port}})
    stopping = Stopping()
    stopping.on_signals()
    try:
        stopping.wait()
    finally:
        server.stop(grace=2).wait(5)
        health.stop()
        log.info("otlp receiver stopped")
