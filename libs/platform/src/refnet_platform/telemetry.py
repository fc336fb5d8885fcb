"""JSON logs that carry trace ids, and OpenTelemetry tracing (OTLP when configured)."""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import lru_cache
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
# False once setup_tracing found nowhere to send spans: then a span per record or row is not even made (its trace
# still is: the caller's context is carried on, so logs and outgoing records keep the trace id). True until then
# (tests and tools that set their own tracer provider keep every span).
_exporting = True


# One encoder for every line: json.dumps given an option builds a new one at each call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second: tuple[int, str] = (-1, "")  # the last line's second and its text: a worker logs many a second

    def _time(self, created: float) -> str:
        """`created` in UTC to the millisecond, e.g. 2026-12-07T13:21:33.698+00:00."""
        second = int(created)
        micros = round((created - second) * 1_000_000)  # rounded to the microsecond first, as datetime does
        if micros == 1_000_000:
            second, micros = second + 1, 0
        known, text = self._second
        if second != known:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = f"{span.trace_id:032x}"
            line["span_id"] = f"{span.span_id:016x}"
        # Only ids go in `fields`: callers never pass personal data to logs.
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return _encode(line)


def setup_logging(service: str, level: str = "INFO") -> None:
    # What a line never shows is not gathered for it (the logging HOWTO's "Optimization"): the caller's file and
    # line (a walk up the stack), the thread's and process's names. A quarter of a worker's INFO line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def setup_tracing(service: str, otlp_endpoint: str | None) -> TracerProvider:
    # With nowhere to send spans they are not recorded (their ids still reach logs and record headers).
    global _exporting
    _exporting = bool(otlp_endpoint)
    sampler = ParentBased(ALWAYS_ON if otlp_endpoint else ALWAYS_OFF)
    provider = TracerProvider(resource=Resource.create({"service.name": f"refnet-{service}"}), sampler=sampler)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


def exporting() -> bool:
    """Whether spans go anywhere: per-record and per-row spans are made only then."""
    return _exporting


def current_traceparent() -> str:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


# Contexts are immutable: one per traceparent will do, and a case's records (its referrals, their events) carry one.
@lru_cache(maxsize=1024)
def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    if not traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": traceparent}, getter=DefaultGetter())


def trace_id_hex() -> str:
    span = trace.get_current_span().get_span_context()
    return f"{span.trace_id:032x}" if span.is_valid else ""
