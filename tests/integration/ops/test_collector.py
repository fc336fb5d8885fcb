"""The OTLP receiver: real OpenTelemetry exporters send spans over OTLP/gRPC; ops keeps them, indexed by case."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, select

from ops.adapters import tables
from ops.adapters.otlp import serve_receiver
from ops.bootstrap import bootstrap
from ops.config import Settings
from ops.domain import commands

pytestmark = pytest.mark.integration


def exporter_for(service: str, port: int) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"refnet-{service}"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}",
                                                                     insecure=True)))
    return provider


def test_spans_from_real_exporters_are_kept_and_found_by_case_id(ops_settings: Settings, ops_engine: Engine) -> None:
    bus = bootstrap(ops_settings, ops_engine)
    server, port = serve_receiver(lambda spans: bus.handle(commands.StoreSpans(spans)), "127.0.0.1", 0)
    intake, referral = exporter_for("intake", port), exporter_for("referral", port)
    try:
        with intake.get_tracer("test").start_as_current_span("RegisterCase", kind=SpanKind.SERVER) as root:
            root.set_attribute("rpc.method", "RegisterCase")
            # What a careless library might record: never stored.
            root.set_attribute("db.statement", "INSERT INTO contacts VALUES ('Nguyễn Thị Canary')")
            root.set_attribute("http.user_agent", "Nguyễn Thị Canary")
            parent = root.get_span_context()
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        with referral.get_tracer("test").start_as_current_span("intake.cases.v1 process", context=ctx,
                                                               kind=SpanKind.CONSUMER) as hop:
            hop.set_attribute("refnet.case_id", "case-123")
            hop.set_attribute("refnet.event_type", "refnet.intake.v1.CaseRegistered")
        intake.force_flush()
        referral.force_flush()
    finally:
        intake.shutdown()
        referral.shutdown()
        server.stop(grace=1).wait(5)

    deadline = time.monotonic() + 10
    traces = []
    while time.monotonic() < deadline and not traces:
        try:
            traces = bus.handle(commands.GetTrace("case-123"))
        except Exception:
            time.sleep(0.1)
    [trace_view] = traces
    assert trace_view.trace_id == f"{parent.trace_id:032x}"
    assert trace_view.services == ("refnet-intake", "refnet-referral")
    assert [h.span.name for h in trace_view.hops] == ["RegisterCase", "intake.cases.v1 process"]
    root_hop, consumer_hop = trace_view.hops
    assert consumer_hop.span.parent_span_id == root_hop.span.span_id
    assert consumer_hop.span.kind == "consumer"
    assert consumer_hop.span.attributes["refnet.event_type"] == "refnet.intake.v1.CaseRegistered"
    assert root_hop.span.attributes == {"rpc.method": "RegisterCase"}
    with ops_engine.connect() as conn:
        stored = " ".join(row.attributes for row in conn.execute(select(tables.spans)))
    assert "Canary" not in stored
