"""ops' handlers through bootstrap on an SQLite file: facts from events, overdue referrals, traces, dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ops.adapters.proto_mapping import command_for
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from ops.domain.model import DeadLetterRecord, SpanRecord
from ops.domain.report import Period
from refnet.common.v1 import types_pb2 as t
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.bus import MessageBus
from refnet_platform.consumer import current_envelope
from refnet_platform.context import Delivery, current_delivery
from refnet_platform.engine import make_engine
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import AlreadyExists, FailedPrecondition, NotFound
from refnet_platform.migrations import migrate
from refnet_platform.unit_of_work import Duplicate

T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam


class FakeSource:
    def __init__(self) -> None:
        self.waiting: list[DeadLetterRecord] = []
        self.asked: list[dict[tuple[str, int], int]] = []

    def read(self, positions: dict[tuple[str, int], int]) -> list[DeadLetterRecord]:
        self.asked.append(dict(positions))
        letters = [d for d in self.waiting if d.dlq_offset >= positions.get((d.dlq_topic, d.dlq_partition), 0)]
        self.waiting = []
        return letters


class FakeReplayer:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, bytes, str]] = []

    def publish(self, topic: str, key: bytes, value: bytes, traceparent: str) -> int:
        self.published.append((topic, key, value, traceparent))
        return 100 + len(self.published)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[MessageBus, FakeSource, FakeReplayer]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ops.db'}",
                        accept_within_s={"emergency": 600, "high": 3600, "medium": 7200, "low": 7200})
    engine = make_engine(settings.database[0])
    migrate(engine, MIGRATIONS)
    source, replayer = FakeSource(), FakeReplayer()
    try:
        yield bootstrap(settings, engine, source=source, replayer=replayer), source, replayer
    finally:
        engine.dispose()


def feed(bus: MessageBus, message: Message, at: datetime, source: str = "intake",
         event_id: str | None = None) -> None:
    """As ops-worker's consumer would: with the envelope (event time, producer) and the inbox key set."""
    stamp = Timestamp()
    stamp.FromDatetime(at)
    envelope = EventEnvelope(id=event_id or new_event_id(), source=f"refnet/{source}",
                             type=message.DESCRIPTOR.full_name, time=stamp)
    tokens = (current_envelope.set(envelope), current_delivery.set(Delivery("ops-worker", envelope.id)))
    try:
        command = command_for(message)
        assert command is not None
        bus.handle(command)
    finally:
        current_envelope.reset(tokens[0])
        current_delivery.reset(tokens[1])


def registered(case_id: str, province: str = "22", child: bool = False, emergency: bool = False
               ) -> intake_events.CaseRegistered:
    return intake_events.CaseRegistered(case_id=case_id, province_code=province, commune_code="06673",
                                        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], is_child=child,
                                        emergency=emergency, risk_level=t.RISK_LEVEL_MEDIUM)


def requested(referral_id: str, case_id: str, service: int = t.SERVICE_TYPE_POLICE_PROTECTION,
              emergency: bool = False) -> referral_events.ReferralRequested:
    return referral_events.ReferralRequested(referral_id=referral_id, case_id=case_id, service_type=service,
                                             provider_id="qn-police-baichay", province_code="22",
                                             emergency=emergency, risk_level=t.RISK_LEVEL_MEDIUM)


def moved(referral_id: str, to: int) -> referral_events.ReferralStatusChanged:
    return referral_events.ReferralStatusChanged(referral_id=referral_id, case_id="c1", province_code="22",
                                                 to_status=to)


def test_a_referral_not_accepted_by_its_deadline_is_listed_as_overdue(parts: tuple) -> None:
    bus, *_ = parts
    feed(bus, registered("c1"), T0)
    feed(bus, requested("r-late", "c1"), T0, "referral")
    feed(bus, requested("r-fine", "c1", t.SERVICE_TYPE_MEDICAL), T0, "referral")
    feed(bus, requested("r-urgent", "c1", t.SERVICE_TYPE_SHELTER, emergency=True), T0, "referral")
    feed(bus, moved("r-fine", referral_pb.REFERRAL_STATUS_ACCEPTED), T0 + timedelta(minutes=30), "referral")

    at_20_min = bus.handle(commands.ListOverdue(now=T0 + timedelta(minutes=20)))
    assert [o.track.referral_id for o in at_20_min] == ["r-urgent"]  # emergencies: 10 minutes
    at_3_h = bus.handle(commands.ListOverdue(now=T0 + timedelta(hours=3)))
    assert [o.track.referral_id for o in at_3_h] == ["r-urgent", "r-late"]  # longest late first
    assert at_3_h[1].problem == "not accepted" and at_3_h[1].late_by == timedelta(hours=1)
    assert bus.handle(commands.ListOverdue(province_code="42", now=T0 + timedelta(hours=3))) == []


def test_escalations_and_the_province_summary(parts: tuple) -> None:
    bus, *_ = parts
    feed(bus, registered("c1"), T0)
    feed(bus, requested("r1", "c1"), T0, "referral")
    feed(bus, moved("r1", referral_pb.REFERRAL_STATUS_EXPIRED), T0 + timedelta(hours=2), "referral")
    feed(bus, moved("r1", referral_pb.REFERRAL_STATUS_ESCALATED), T0 + timedelta(hours=2, seconds=1), "referral")
    feed(bus, shelter_events.CapacityChanged(shelter_id="qn-spc", province_code="22",
                                             target_group=t.TARGET_GROUP_WOMEN, capacity=10, reserved=2, occupied=3),
         T0, "shelter")
    [escalated] = bus.handle(commands.ListEscalations())
    assert (escalated.referral_id, escalated.status, escalated.escalated_at) == ("r1", "escalated",
                                                                                 T0 + timedelta(hours=2))
    [row] = bus.handle(commands.ProvinceSummary(since=T0 - timedelta(hours=1), now=T0 + timedelta(hours=3)))
    assert (row.province_code, row.cases, row.events, row.escalations, row.beds_free) == ("22", 1, 5, 1, 5)
    assert bus.handle(commands.BedsFree()) == {"22": 5}


def test_a_redelivered_event_counts_once(parts: tuple) -> None:
    bus, *_ = parts
    event_id = new_event_id()
    feed(bus, registered("c1"), T0, event_id=event_id)
    with pytest.raises(Duplicate):
        feed(bus, registered("c1"), T0, event_id=event_id)
    flows = bus.handle(commands.Throughput(since=T0 - timedelta(minutes=1)))
    assert sum(n for _, n in flows["intake"]) == 1


def test_the_report_counts_from_recorded_events(parts: tuple) -> None:
    bus, *_ = parts
    feed(bus, registered("c1", child=True, emergency=True), T0)
    feed(bus, requested("r1", "c1", t.SERVICE_TYPE_SHELTER), T0, "referral")
    feed(bus, moved("r1", referral_pb.REFERRAL_STATUS_ACCEPTED), T0 + timedelta(minutes=45), "referral")
    feed(bus, shelter_events.BedReserved(referral_id="r1", case_id="c1", shelter_id="qn-spc", province_code="22"),
         T0, "shelter")
    feed(bus, shelter_events.BedOccupied(referral_id="r1", shelter_id="qn-spc", province_code="22"),
         T0 + timedelta(hours=5), "shelter")
    report = bus.handle(commands.BuildReport(Period(date(2026, 3, 1), date(2026, 3, 31)), "22"))
    assert (report.cases, report.children_under_case_management, report.emergency_interventions) == (1, 1, 1)
    assert report.breakdown("referrals_accepted", "sector") == {"shelter": 1}
    assert report.median_minutes_to_acceptance == 45
    assert report.people_sheltered == 1


def span(trace_id: str, name: str, service: str, start_ms: int, **attributes: str) -> SpanRecord:
    start = int(T0.timestamp() * 1e9) + start_ms * 1_000_000
    return SpanRecord(trace_id, f"{start_ms:016x}", "", service, name, "consumer", start, start + 2_000_000, "unset",
                      dict(attributes))


def test_a_trace_is_found_by_the_case_id_or_any_referral_id(parts: tuple) -> None:
    bus, *_ = parts
    feed(bus, requested("r1", "c1"), T0, "referral")
    registration, acceptance = "a" * 32, "b" * 32
    bus.handle(commands.StoreSpans([
        span(registration, "RegisterCase", "refnet-intake", 0),
        span(registration, "intake.cases.v1 process", "refnet-referral", 5, **{"refnet.case_id": "c1"}),
        span(registration, "SELECT", "refnet-referral", 6, **{"db.system": "sqlite"}),
        span(acceptance, "referral.referrals.v1 process", "refnet-notifications", 0, **{"refnet.referral_id": "r1"}),
        span("c" * 32, "unrelated", "refnet-shelter", 0, **{"refnet.case_id": "other"}),
    ]))
    by_case = bus.handle(commands.GetTrace("c1"))
    by_referral = bus.handle(commands.GetTrace("r1"))
    assert [t.trace_id for t in by_case] == [t.trace_id for t in by_referral] == [registration, acceptance]
    first = by_case[0]
    assert [h.span.name for h in first.hops] == ["RegisterCase", "intake.cases.v1 process"]
    assert first.hidden_database_spans == 1 and first.services == ("refnet-intake", "refnet-referral")
    assert len(bus.handle(commands.GetTrace("c1", include_database=True))[0].hops) == 3
    with pytest.raises(NotFound):
        bus.handle(commands.GetTrace("nobody"))
    # Erasing the case drops its traces; other cases' stay.
    feed(bus, intake_events.CaseErased(case_id="c1", province_code="22"), T0)
    with pytest.raises(NotFound):
        bus.handle(commands.GetTrace("c1"))
    assert bus.handle(commands.GetTrace("other"))


def letter(offset: int, topic: str = "intake.cases.v1") -> DeadLetterRecord:
    return DeadLetterRecord("referral.dlq.v1", 0, offset, "referral-worker", topic, 2, 40 + offset, b"22",
                            b"\x0a\x03abc", "ValueError: boom", 3, T0, f"event-{offset}", "refnet.intake.v1.X",
                            "00-" + "a" * 32 + "-" + "b" * 16 + "-01")


def test_dead_letters_are_collected_once_and_replayed_once(parts: tuple) -> None:
    bus, source, replayer = parts
    source.waiting = [letter(0), letter(1)]
    assert bus.handle(commands.CollectDeadLetters()) == 2
    source.waiting = [letter(1), letter(2)]  # the source hands back one it gave before: stored once
    bus.handle(commands.CollectDeadLetters())
    assert source.asked[-1] == {("referral.dlq.v1", 0): 2}
    letters = bus.handle(commands.ListDeadLetters())
    assert sorted(v.dlq_topic + str(v.original_offset) for v in letters) == [
        "referral.dlq.v140", "referral.dlq.v141", "referral.dlq.v142"]
    first = min(letters, key=lambda v: v.letter_id)

    result = bus.handle(commands.ReplayDeadLetter(first.letter_id, "ops-anna"))
    assert result["topic"] == "intake.cases.v1" and result["offset"] == 101
    assert replayer.published == [("intake.cases.v1", b"22", b"\x0a\x03abc", letter(0).traceparent)]
    with pytest.raises(AlreadyExists, match="already replayed by ops-anna"):
        bus.handle(commands.ReplayDeadLetter(first.letter_id, "ops-bao"))
    assert len(replayer.published) == 1
    with pytest.raises(NotFound):
        bus.handle(commands.ReplayDeadLetter(9999, "ops-anna"))
    replayed = [v for v in bus.handle(commands.ListDeadLetters()) if v.replayed_at]
    assert [(v.letter_id, v.replayed_by) for v in replayed] == [(first.letter_id, "ops-anna")]
    assert len(bus.handle(commands.ListDeadLetters(include_replayed=False))) == 2


def test_a_letter_that_names_no_registry_topic_is_not_replayed(parts: tuple) -> None:
    bus, source, replayer = parts
    source.waiting = [letter(0, topic="")]
    bus.handle(commands.CollectDeadLetters())
    [view] = bus.handle(commands.ListDeadLetters())
    with pytest.raises(FailedPrecondition):
        bus.handle(commands.ReplayDeadLetter(view.letter_id, "ops-anna"))
    assert replayer.published == []


def test_a_letter_goes_back_only_to_a_topic_its_consumer_group_reads(parts: tuple) -> None:
    """referral-worker reads intake's case stream, not notifications' deliveries: a letter of referral-worker
    naming that topic (forged, or corrupted) is refused with the reason, and nothing is published."""
    bus, source, replayer = parts
    source.waiting = [letter(0, topic="notifications.deliveries.v1"), letter(1, topic="shelter.bed-commands.v1")]
    bus.handle(commands.CollectDeadLetters())
    for view in bus.handle(commands.ListDeadLetters()):
        with pytest.raises(FailedPrecondition, match=f"referral-worker does not read {view.original_topic}"):
            bus.handle(commands.ReplayDeadLetter(view.letter_id, "ops-anna"))
    assert replayer.published == []
    assert len(bus.handle(commands.ListDeadLetters(include_replayed=False))) == 2  # still waiting, unreplayed


def test_the_deadlines_referral_set_win_over_ops_defaults(parts: tuple) -> None:
    bus, *_ = parts
    message = requested("r1", "c1")
    message.accept_by.FromDatetime(T0 + timedelta(minutes=5))
    message.start_by.FromDatetime(T0 + timedelta(minutes=50))
    feed(bus, message, T0, "referral")
    [late] = bus.handle(commands.ListOverdue(now=T0 + timedelta(minutes=6)))
    assert late.due == T0 + timedelta(minutes=5)
    feed(bus, moved("r1", referral_pb.REFERRAL_STATUS_ACCEPTED), T0 + timedelta(minutes=7), "referral")
    assert bus.handle(commands.ListOverdue(now=T0 + timedelta(minutes=49))) == []
    [stuck] = bus.handle(commands.ListOverdue(now=T0 + timedelta(minutes=51)))
    assert (stuck.problem, stuck.due) == ("not started", T0 + timedelta(minutes=50))
    feed(bus, referral_events.ReferralEscalated(referral_id="r1", case_id="c1", province_code="22",
                                                reason="not_started_in_time"), T0 + timedelta(minutes=52), "referral")
    [escalated] = bus.handle(commands.ListEscalations())
    assert (escalated.status, escalated.reason) == ("escalated", "not_started_in_time")


def test_calls_are_counted_by_topic_at_the_time_they_started(parts: tuple) -> None:
    bus, *_ = parts
    call = intake_events.CallLogged(call_id="k1", province_code="22", topic=intake_types.CALL_TOPIC_CHILD_PROTECTION)
    call.started_at.FromDatetime(datetime(2026, 2, 28, 16, 59, tzinfo=UTC))  # 23:59 in Vietnam, 28 February
    feed(bus, call, T0)
    february = bus.handle(commands.BuildReport(Period(date(2026, 2, 1), date(2026, 2, 28)), "22"))
    march = bus.handle(commands.BuildReport(Period(date(2026, 3, 1), date(2026, 3, 31)), "22"))
    assert february.breakdown("calls", "topic") == {"child_protection": 1} and march.calls == 0


def test_within_a_remit_other_provinces_look_like_nothing_there(parts: tuple) -> None:
    bus, source, replayer = parts
    feed(bus, registered("c1"), T0)
    feed(bus, registered("c42", province="42"), T0)
    feed(bus, requested("r-late", "c1"), T0, "referral")
    bus.handle(commands.StoreSpans([SpanRecord("c" * 32, "1" * 16, "", "refnet-intake", "register", "server", 0, 1,
                                               "unset", {"refnet.case_id": "c42"})]))
    qn, ht = frozenset({"22"}), frozenset({"42"})
    late = T0 + timedelta(hours=3)
    assert len(bus.handle(commands.ListOverdue(now=late, within=qn))) == 1
    assert bus.handle(commands.ListOverdue(now=late, within=ht)) == []
    assert [r.province_code for r in bus.handle(commands.ProvinceSummary(T0 - timedelta(hours=1), late,
                                                                         within=ht))] == ["42"]
    assert bus.handle(commands.GetTrace("c42", within=ht))
    with pytest.raises(NotFound, match="no trace mentions 'c42'"):
        bus.handle(commands.GetTrace("c42", within=qn))
    with pytest.raises(NotFound):
        bus.handle(commands.BuildReport(Period(date(2026, 3, 1), date(2026, 3, 31)), "", within=qn))
    source.waiting = [letter(0)]  # keyed b"22"
    bus.handle(commands.CollectDeadLetters())
    [view] = bus.handle(commands.ListDeadLetters(within=qn))
    assert view.province_code == "22" and bus.handle(commands.ListDeadLetters(within=ht)) == []
    assert bus.handle(commands.PendingDeadLetters(within=ht)) == {}
    with pytest.raises(NotFound, match="does not exist"):
        bus.handle(commands.ReplayDeadLetter(view.letter_id, "ht-ops", within=ht))
    assert replayer.published == []
    assert bus.handle(commands.ReplayDeadLetter(view.letter_id, "qn-ops", within=qn))["topic"] == "intake.cases.v1"
