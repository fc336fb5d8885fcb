from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic_settings import SettingsConfigDict

from refnet.common.v1 import types_pb2
from refnet_platform import errors
from refnet_platform.bus import MessageBus
from refnet_platform.grpc_server import status_for
from refnet_platform.settings import ServiceSettings
from refnet_platform.telemetry import JsonFormatter, context_from_traceparent, setup_logging
from refnet_platform.topics import TOPICS, dead_letter_topic, topic, urgent_lane
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex, TargetGroup, from_pb, to_pb


@pytest.mark.parametrize(("cls", "pb_enum"), [(ServiceType, types_pb2.ServiceType), (RiskLevel, types_pb2.RiskLevel),
                                              (CaseType, types_pb2.CaseType), (Sex, types_pb2.Sex),
                                              (TargetGroup, types_pb2.TargetGroup)])
def test_vocabulary_matches_the_proto_enums_both_ways(cls: type, pb_enum: object) -> None:
    assert len(cls) == len(pb_enum.values()) - 1  # type: ignore[attr-defined]
    for member in cls:
        assert from_pb(cls, pb_enum, to_pb(member, pb_enum)) is member
    assert from_pb(cls, pb_enum, 0) is None and from_pb(cls, pb_enum, 999) is None


def test_domain_errors_map_to_status_codes() -> None:
    assert status_for(errors.InvalidArgument("survivor.age", "too old")) is grpc.StatusCode.INVALID_ARGUMENT
    assert status_for(errors.NotFound("x")) is grpc.StatusCode.NOT_FOUND
    assert status_for(errors.FailedPrecondition("x")) is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(errors.PermissionDenied("x")) is grpc.StatusCode.PERMISSION_DENIED
    assert status_for(errors.Unavailable("x")) is grpc.StatusCode.UNAVAILABLE
    assert str(errors.InvalidArgument("survivor.age", "too old")) == "survivor.age: too old"


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")
    service_name: ClassVar[str] = "intake"


def test_database_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFNET_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert _Settings().database == (f"sqlite:///{tmp_path.resolve() / 'intake.db'}", None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/refnet")
    assert _Settings().database == ("postgresql://db/refnet", "intake")  # own schema in the shared database
    monkeypatch.setenv("INTAKE_DATABASE_URL", "sqlite:///own.db")
    assert _Settings().database == ("sqlite:///own.db", None)  # the service's own variable wins


def test_the_bus_refuses_a_command_it_has_no_handler_for() -> None:
    bus = MessageBus({int: lambda n: n + 1})
    assert bus.handle(41) == 42
    with pytest.raises(LookupError):
        bus.handle("text")


def test_topic_registry_lookups() -> None:
    assert urgent_lane("intake.cases.v1") == "intake.cases-urgent.v1"
    assert topic("shelter.bed-commands.v1").key == "shelter_id"
    assert dead_letter_topic("referral") == "referral.dlq.v1"
    assert len({t.name for t in TOPICS}) == len(TOPICS)
    with pytest.raises(KeyError):
        topic("nope.v1")


def test_json_logs_carry_the_trace_id_and_only_the_given_fields() -> None:
    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("refnet", logging.INFO, __file__, 1, "case registered", None, None)
    record.fields = {"case_id": "c-1"}
    with tracer.start_as_current_span("work") as span:
        line = json.loads(JsonFormatter("intake-api").format(record))
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert (line["service"], line["message"], line["case_id"]) == ("intake-api", "case registered", "c-1")


def test_a_traceparent_restores_its_trace() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    span = trace.get_current_span(context_from_traceparent(traceparent))
    assert f"{span.get_span_context().trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("created", [0.0, 1.9995, 1.9999996, 1765113693.698, 1765113693.0004, 1765113699.9999])
def test_json_log_times_are_utc_to_the_millisecond(created: float) -> None:
    record = logging.LogRecord("refnet", logging.INFO, __file__, 1, "tick", None, None)
    record.created = created
    line = json.loads(JsonFormatter("intake-worker").format(record))
    assert line["time"] == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def test_log_lines_gather_only_what_they_show(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored after the test
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    setup_logging("referral-worker")
    seen: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = seen.append  # type: ignore[assignment,method-assign]
    root.addHandler(collector)
    logging.getLogger("referral.handlers").info("referral requested", extra={"fields": {"case_id": "c-1"}})
    line = json.loads(capsys.readouterr().err)
    assert (line["service"], line["level"], line["message"], line["case_id"]) == (
        "referral-worker", "INFO", "referral requested", "c-1")
    # No walk up the stack for the caller's file and line, no thread or process names: no line shows them.
    assert (seen[0].pathname, seen[0].threadName, seen[0].processName) == ("(unknown file)", None, None)
