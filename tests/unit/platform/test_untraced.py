"""With no exporter configured, no span is made per record or row, yet the trace goes on: a worker's logs and
outbox rows carry the record's trace id, and the relay sends the writer's traceparent as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry import context as otel_context

from refnet.intake.v1 import events_pb2 as intake_events
from refnet_platform import consumer, telemetry
from refnet_platform.engine import make_engine
from refnet_platform.envelope import OutgoingEvent
from refnet_platform.outbox import Relay
from refnet_platform.tables import create_platform_tables
from refnet_platform.telemetry import context_from_traceparent, current_traceparent, trace_id_hex
from refnet_platform.unit_of_work import UnitOfWork

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


@pytest.fixture
def untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)


def test_a_record_handled_without_an_exporter_carries_its_trace_on(untraced: None) -> None:
    record = ConsumerRecord("t", 0, 0, 0, 0, b"k", b"v", None, 1, 1, [("traceparent", TRACEPARENT.encode())])
    with consumer._record_span(record, None) as span:
        assert not span.is_recording()
        assert trace_id_hex() == "0af7651916cd43dd8448eb211c80319c"  # what its log lines carry
        assert current_traceparent() == TRACEPARENT  # what its outbox rows carry
    assert trace_id_hex() == ""


class _Producer:
    def __init__(self) -> None:
        self.headers: list[Any] = []

    def produce(self, topic: str, key: bytes, value: bytes, headers: Any, on_delivery: Any) -> None:
        self.headers.append(headers)
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


def test_the_relay_without_an_exporter_sends_the_writers_traceparent(untraced: None, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    with engine.begin() as conn:
        create_platform_tables(conn)
    token = otel_context.attach(context_from_traceparent(TRACEPARENT))
    try:
        with UnitOfWork(engine, "intake") as work:
            work.publish(OutgoingEvent(intake_events.CaseClosed(case_id="c1", province_code="22"), "intake.cases.v1",
                                       "22", "case/c1"))
            work.commit()
    finally:
        otel_context.detach(token)
    producer = _Producer()
    assert Relay(engine, producer).publish_pending() == 1  # type: ignore[arg-type]
    assert producer.headers == [[("traceparent", TRACEPARENT)]]
    engine.dispose()
