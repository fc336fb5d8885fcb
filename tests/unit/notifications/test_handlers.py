"""The service layer through bootstrap, on an SQLite file, with fake channels: who gets a notice for each
event, exactly once; the in-app feed written as the notice is recorded; the dispatcher woken when work is
due; the dispatch round (emergencies first, batches claimed once, lanes independent, retries, dead
letters); a survivor only safely; withdrawal and erasure; and each caller's own feed."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text

from notifications.adapters.directory_file import load_directory_file
from notifications.adapters.tables import deliveries, notices
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.events import NotificationFailed
from notifications.domain.messages import (
    BedOutcome,
    BedUpdate,
    Channel,
    EmergencyCase,
    Escalation,
    Language,
    NewReferral,
    ReferralStatus,
    StatusChange,
    Urgency,
)
from notifications.domain.notices import ContactRefused, ContactUnavailable, FeedCursor, Notice, SurvivorContact
from notifications.domain.rendering import Links, OutboundMessage
from notifications.domain.retry import DeliveryResult, RetryPolicy
from notifications.domain.safe_contact import ContactWindow
from notifications.service_layer import handlers
from notifications.service_layer.handlers import Policy
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.notifications.v1 import events_pb2
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.clock import ManualClock
from refnet_platform.context import Causation, current_causation
from refnet_platform.engine import make_engine
from refnet_platform.errors import InvalidArgument, PermissionDenied
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import ServiceType

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=HCM)
NIGHT = datetime(2026, 3, 2, 23, 30, tzinfo=HCM)
LINKS = Links("https://partners.refnet.test", "https://console.refnet.test")
CASE, REFERRAL, OTHER = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
DIRECTORY = {
    "providers": [
        {"provider_id": "clinic", "sector": "health", "province_code": "22",
         "duty_contact": {"email": "duty@clinic.test", "phone": "0901000001", "language": "vi"}},
        {"provider_id": "legal", "sector": "legal_aid", "province_code": "22",
         "duty_contact": {"email": "desk@legal.test", "language": "en"}},
    ],
    "supervisors": [{"province_code": "22", "supervisor_ids": ["sup-22"],
                     "duty_contact": {"email": "sup@province22.test", "language": "vi"}}],
    "case_workers": [{"case_worker_id": "cw-1", "province_code": "22",
                      "contact": {"email": "cw1@swc.test", "language": "en"}}],
}


@dataclass
class FakeChannel:
    """Sends nothing; each send waits until `gate` opens when one is given. A test waits for sends with
    `wait_until_sent` (no polling, no sleeping)."""

    channel: Channel
    results: list[DeliveryResult] = field(default_factory=list)
    sent: list[OutboundMessage] = field(default_factory=list)
    gate: threading.Event | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        with self.changed:
            self.sent.append(message)
            self.changed.notify_all()
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 10)
        if self.results:
            return self.results.pop(0) if len(self.results) > 1 else self.results[0]
        return DeliveryResult.sent(provider_ref="ok")

    def wait_until_sent(self, count: int, timeout: float = 10) -> bool:
        """True once `count` sends have begun; False if they have not within `timeout` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.sent) >= count, timeout)


@dataclass
class FakeContacts:
    contact: SurvivorContact | None = None
    refusal: str = ""
    reads: list[tuple[str, str]] = field(default_factory=list)

    def read(self, case_id: str, referral_id: str, service_type: ServiceType | None, sector: str) -> SurvivorContact:
        self.reads.append((case_id, sector))
        if self.refusal:
            raise ContactRefused(self.refusal)
        assert self.contact is not None
        return self.contact


@dataclass
class FakeSink:
    letters: list[NotificationFailed] = field(default_factory=list)
    down: bool = False

    def publish(self, letters: Any) -> None:
        if self.down:
            raise ConnectionError("the dead-letter topic is unreachable")
        self.letters.extend(letters)


@dataclass
class FakeWakeup:
    times: int = 0
    urgent: int = 0

    def set(self, urgent: bool = False) -> None:
        self.times += 1
        self.urgent += urgent


@dataclass
class World:
    bus: MessageBus
    engine: Engine
    email: FakeChannel
    sms: FakeChannel
    contacts: FakeContacts
    sink: FakeSink
    clock: ManualClock
    wakeup: FakeWakeup

    def dispatch(self, at: datetime | None = None) -> dict[str, int]:
        return self.bus.handle(commands.DispatchDue(now=at or self.clock()))  # type: ignore[no-any-return]

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = select(notices, deliveries.c.lane, deliveries.c.role, deliveries.c.kind, deliveries.c.attempts,
                           deliveries.c.next_attempt_at, deliveries.c.detail, deliveries.c.address,
                           deliveries.c.language).join(deliveries, deliveries.c.notice_id == notices.c.notice_id)
            return [dict(r) for r in conn.execute(query).mappings()]

    def outbox_types(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.event_type for r in conn.execute(select(outbox.c.event_type).order_by(outbox.c.id))]

    def status_events(self) -> list[tuple[str, str, str, EventEnvelope]]:
        """(type, notice id, channel, envelope) of every status event in the outbox."""
        found = []
        with self.engine.connect() as conn:
            for row in conn.execute(select(outbox.c.value).order_by(outbox.c.id)):
                envelope = EventEnvelope.FromString(row.value)
                name = envelope.type.rsplit(".", 1)[-1]
                message = getattr(events_pb2, name)()
                envelope.data.Unpack(message)
                found.append((name, message.notice_id, message.channel, envelope))
        return found


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'n.db'}")
    engine = make_engine(settings.database[0])
    migrate(engine, MIGRATIONS)
    clock = ManualClock(NOON)
    policy = Policy(LINKS, (ContactWindow.parse("08:00-20:00"),), Language.VI,
                    retry={Channel.SMS: RetryPolicy(1.0, 4.0, 3)}, clock=clock, jitter=random.Random(7))
    email, sms = FakeChannel(Channel.EMAIL), FakeChannel(Channel.SMS)
    contacts, sink, wakeup = FakeContacts(), FakeSink(), FakeWakeup()
    bus = bootstrap(settings, engine, policy=policy, adapters={Channel.EMAIL: email, Channel.SMS: sms},
                    contacts=contacts, dead_letters=sink, wakeup=wakeup)
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps(DIRECTORY))
    bus.handle(load_directory_file(directory))
    yield World(bus, engine, email, sms, contacts, sink, clock, wakeup)
    engine.dispose()


def new_referral(provider: str = "clinic", urgency: Urgency = Urgency.ROUTINE, event_id: str = "ev-new",
                 referral_id: str = REFERRAL, service: ServiceType = ServiceType.MEDICAL) -> commands.Notify:
    return commands.Notify(NewReferral(event_id, referral_id, CASE, service, provider, "22", urgency, "cw-1"))


def accepted(event_id: str = "ev-acc") -> commands.Notify:
    return commands.Notify(StatusChange(event_id, REFERRAL, CASE, "clinic", "22", ReferralStatus.REQUESTED,
                                        ReferralStatus.ACCEPTED, "", "cw-1", ServiceType.MEDICAL))


# --- who is told, exactly once -----------------------------------------------------------------


def test_a_new_referral_tells_the_providers_duty_contact_on_every_configured_channel(world: World) -> None:
    world.bus.handle(new_referral())
    got = {(r["recipient_id"], r["channel"], r["address"]) for r in world.rows()}
    assert got == {("clinic", "in_app", "clinic"), ("clinic", "email", "duty@clinic.test"),
                   ("clinic", "sms", "0901000001")}
    assert {(r["channel"], r["status"]) for r in world.rows()} == {
        ("in_app", "delivered"), ("email", "pending"), ("sms", "pending")}
    assert all(r["language"] == "vi" for r in world.rows())


# --- the in-app feed at once, the dispatcher woken ----------------------------------------------


def test_an_in_app_notice_is_in_the_feed_and_its_status_event_in_the_outbox_as_soon_as_it_is_recorded(
    world: World,
) -> None:
    flow = current_causation.set(Causation("flow-1", "ev-new"))  # as the consumer sets it for the event
    try:
        (in_app_id, _, _) = world.bus.handle(new_referral())  # no dispatch round at all
    finally:
        current_causation.reset(flow)
    (listed,) = feed(world, machine("clinic", Role.AGENCY))
    assert (listed.notice_id, listed.kind, listed.status) == (in_app_id, "referral_new", "delivered")
    (row,) = [r for r in world.rows() if r["channel"] == "in_app"]
    assert (row["attempts"], row["next_attempt_at"]) == (1, None)
    events = world.status_events()
    assert [(name, notice, channel) for name, notice, channel, _ in events] == [
        ("NotificationSent", in_app_id, "in_app")]  # being in the feed is its delivery: no second event
    assert {(e.correlation_id, e.causation_id) for *_, e in events} == {("flow-1", "ev-new")}
    assert world.dispatch() == {"sent": 2}  # the round has only the e-mail and the SMS left to send
    # Recorded together, each status event still continues the flow of the event behind its notice.
    assert {(channel, e.correlation_id, e.causation_id) for _, _, channel, e in world.status_events()[1:]} == {
        ("email", "flow-1", "ev-new"), ("sms", "flow-1", "ev-new")}
    assert world.bus.handle(new_referral()) == []  # redelivered: nothing new, in the feed or the outbox
    assert len(feed(world, machine("clinic", Role.AGENCY))) == 1
    assert len(world.status_events()) == 3


def test_the_dispatcher_is_woken_when_deliveries_are_due_now_and_only_then_urgently_for_emergencies(
        world: World) -> None:
    world.bus.handle(new_referral())
    assert world.wakeup.times == 1
    world.bus.handle(new_referral())  # a redelivery adds nothing due
    world.bus.handle(new_referral(provider="unknown-agency", event_id="ev-2", referral_id=OTHER))  # in-app only
    assert world.wakeup.times == 1
    consenting(world)
    world.clock.set(NIGHT)
    world.bus.handle(commands.Notify(StatusChange("ev-3", OTHER, CASE, "legal", "22", ReferralStatus.REQUESTED,
                                                  ReferralStatus.ACCEPTED, "", "cw-9", ServiceType.MEDICAL)))
    # Her notice, due now even at night (only the dispatcher, reading her safe times from intake, can tell
    # when her window opens), and the feed notice of a case worker the directory does not know.
    assert {(r["role"], r["status"]) for r in world.rows() if r["source_event_id"] == "ev-3"} == {
        ("case_worker", "delivered"), ("survivor", "pending")}
    assert world.wakeup.times == 2
    world.bus.handle(commands.NoteCase(str(uuid.uuid4()), "22", "cw-1", frozenset(),
                                       EmergencyCase("ev-case", str(uuid.uuid4()), "22", "cw-1", 2)))
    assert world.wakeup.times == 3  # the supervisors' e-mail
    assert world.wakeup.urgent == 1  # an emergency's: its round is not spaced after the last


def test_each_event_type_reaches_its_recipients_in_their_language(world: World) -> None:
    world.bus.handle(new_referral())
    world.bus.handle(new_referral("legal", event_id="ev-new-2", referral_id=OTHER, service=ServiceType.LEGAL_AID))
    world.bus.handle(commands.Notify(StatusChange("ev-exp", OTHER, CASE, "legal", "22", ReferralStatus.REQUESTED,
                                                  ReferralStatus.EXPIRED, "not_accepted_in_time", "cw-1")))
    world.bus.handle(commands.Notify(Escalation("ev-esc", OTHER, CASE, "22", ServiceType.LEGAL_AID, "legal",
                                                "not_accepted_in_time", "accept")))
    # A bed event names no case worker and no urgency: both come from the referral it is about.
    world.bus.handle(commands.Notify(BedUpdate("ev-bed", BedOutcome.RESERVED, REFERRAL, CASE, "spc", "22")))
    world.bus.handle(commands.NoteCase(str(uuid.uuid4()), "22", "cw-1", frozenset(),
                                       EmergencyCase("ev-case", str(uuid.uuid4()), "22", "cw-1", 2)))
    told = {(r["source_event_id"], r["role"], r["recipient_id"], r["kind"], r["language"])
            for r in world.rows() if r["channel"] == "email"}
    assert told == {
        ("ev-new", "provider", "clinic", "referral_new", "vi"),
        ("ev-new-2", "provider", "legal", "referral_new", "en"),
        ("ev-exp", "case_worker", "cw-1", "referral_status", "en"),
        ("ev-exp", "provider", "legal", "referral_cancelled", "en"),
        ("ev-esc", "supervisor", "22", "sla_breached", "vi"),
        ("ev-bed", "case_worker", "cw-1", "bed_reserved", "en"),
        ("ev-case", "supervisor", "22", "case_emergency", "vi"),
    }
    subjects = {r["source_event_id"]: r["subject"] for r in world.rows() if r["channel"] == "email"}
    assert subjects["ev-new-2"].startswith("New referral RF-")
    assert subjects["ev-new"].startswith("Chuyển gửi mới RF-")


def test_someone_the_directory_does_not_know_still_gets_the_in_app_feed(world: World) -> None:
    world.bus.handle(new_referral(provider="unknown-agency"))
    assert {(r["recipient_id"], r["channel"]) for r in world.rows()} == {("unknown-agency", "in_app")}


def test_a_redelivered_event_records_nothing_new(world: World) -> None:
    first = world.bus.handle(new_referral())
    again = world.bus.handle(new_referral())
    assert len(first) == 3 and again == []
    assert len(world.rows()) == 3


# --- the dispatch round ------------------------------------------------------------------------


def test_emergencies_are_sent_before_anything_else(world: World) -> None:
    for i in range(3):
        world.bus.handle(new_referral(event_id=f"ev-r{i}", referral_id=str(uuid.uuid4())))
    world.bus.handle(new_referral(urgency=Urgency.EMERGENCY, event_id="ev-e", referral_id=str(uuid.uuid4())))
    counts = world.dispatch()
    assert counts == {"sent": 8}
    assert world.email.sent[0].event_id == "ev-e" and world.sms.sent[0].event_id == "ev-e"
    assert [m.event_id for m in world.email.sent[1:]] == ["ev-r0", "ev-r1", "ev-r2"]
    types = world.outbox_types()
    assert types.count("refnet.notifications.v1.NotificationSent") == 12
    assert types.count("refnet.notifications.v1.NotificationDelivered") == 0  # the feed is the delivery
    assert world.dispatch() == {}  # nothing is sent twice


def test_a_batch_is_claimed_once_however_many_rounds_run_at_once(world: World) -> None:
    for i in range(60):
        world.bus.handle(new_referral(event_id=f"ev-{i}", referral_id=str(uuid.uuid4())))
    # Sends hang until all four rounds have claimed a batch each, so every claim overlaps the others.
    world.email.gate = world.sms.gate = gate = threading.Event()
    rounds = [threading.Thread(target=lambda: world.bus.handle(commands.DispatchDue(now=NOON, limit=7)))
              for _ in range(4)]
    for thread in rounds:
        thread.start()
    try:
        assert world.email.wait_until_sent(4 * 7) and world.sms.wait_until_sent(4 * 7)
    finally:
        gate.set()
    for thread in rounds:
        thread.join(30)
    sent = [m.notice_id for m in world.email.sent + world.sms.sent]
    assert len(sent) == 120 and len(set(sent)) == 120  # every one once, by whichever round claimed it
    assert {(r["status"], r["attempts"]) for r in world.rows() if r["channel"] != "in_app"} == {("sent", 1)}


def test_a_slow_gateway_holds_up_only_its_own_lane(world: World) -> None:
    world.sms.gate = threading.Event()  # the SMS gateway hangs until the test lets it go
    world.bus.handle(new_referral())
    dispatching = threading.Thread(target=world.dispatch)
    dispatching.start()
    try:
        assert world.sms.wait_until_sent(1)
        # While the SMS hangs, an event for the legal desk (e-mail only) is recorded: the e-mail lane, idle
        # in the same round, takes it at once.
        world.bus.handle(new_referral(provider="legal", event_id="ev-legal", referral_id=OTHER))
        assert world.email.wait_until_sent(2)
        assert [m.recipient_id for m in world.email.sent] == ["clinic", "legal"]
        assert dispatching.is_alive()  # the round is still waiting for the gateway
    finally:
        world.sms.gate.set()
        dispatching.join(10)
    assert {(r["channel"], r["status"]) for r in world.rows() if r["channel"] != "in_app"} == {
        ("email", "sent"), ("sms", "sent")}


def test_a_transient_failure_is_retried_after_a_backoff_then_dead_lettered(world: World) -> None:
    world.sms.results = [DeliveryResult.transient("http 503")]
    world.bus.handle(new_referral())
    world.dispatch()
    (row,) = [r for r in world.rows() if r["channel"] == "sms"]
    retry_at = row["next_attempt_at"].replace(tzinfo=UTC)
    assert (row["status"], row["attempts"], row["detail"]) == ("pending", 1, "http 503")
    assert NOON < retry_at <= NOON + timedelta(seconds=1)  # full jitter under the policy's first ceiling
    assert world.dispatch(retry_at - timedelta(milliseconds=1)) == {}  # not before it is due
    world.dispatch(retry_at)
    world.dispatch(NOON + timedelta(minutes=5))
    (row,) = [r for r in world.rows() if r["channel"] == "sms"]
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert len(world.sms.sent) == 3
    (letter,) = world.sink.letters
    assert (letter.reason, letter.detail, letter.attempts, letter.notice.channel) == (
        "retries_exhausted", "http 503", 3, "sms")
    assert world.outbox_types().count("refnet.notifications.v1.NotificationFailed") == 1
    world.dispatch(NOON + timedelta(minutes=10))
    assert len(world.sink.letters) == 1  # published once


def test_a_permanent_failure_is_dead_lettered_at_once(world: World) -> None:
    world.email.results = [DeliveryResult.permanent("smtp 550 5.1.1")]
    world.bus.handle(new_referral())
    world.dispatch()
    assert [(f.reason, f.detail, f.attempts) for f in world.sink.letters] == [
        ("permanent_failure", "smtp 550 5.1.1", 1)]


def test_dead_letters_not_published_go_out_with_a_later_round_even_with_no_channel_configured(
        world: World, tmp_path: Path) -> None:
    world.email.results = [DeliveryResult.permanent("smtp 550 5.1.1")]
    world.bus.handle(new_referral())
    world.sink.down = True
    with pytest.raises(ConnectionError):
        world.dispatch()  # the failure is recorded and its dead letter kept; publishing it failed
    world.sink.down = False
    assert world.dispatch() == {} and len(world.sink.letters) == 1  # nothing due: the round found it waiting
    with world.engine.begin() as conn:  # as if still unpublished, and the worker restarted with no channel at all
        conn.execute(text("UPDATE dead_letters SET published_at = NULL"))
    sink = FakeSink()
    bare = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'n.db'}"), world.engine, adapters={},
                     contacts=None, dead_letters=sink)
    assert bare.handle(commands.DispatchDue()) == {}
    assert [(f.reason, f.detail) for f in sink.letters] == [("permanent_failure", "smtp 550 5.1.1")]


def test_a_claimed_delivery_is_left_alone_until_its_lease_ends(world: World) -> None:
    world.bus.handle(new_referral(provider="legal"))
    with world.engine.begin() as conn:  # as if a round had claimed it and died mid-send
        conn.execute(deliveries.update().values(lease_until=(NOON + timedelta(seconds=60)).astimezone(UTC), attempts=1))
    assert world.dispatch(NOON + timedelta(seconds=30)) == {}
    assert world.dispatch(NOON + timedelta(seconds=61)) == {"sent": 1}
    assert [r["attempts"] for r in world.rows() if r["channel"] == "email"] == [2]


# --- a survivor, only safely -------------------------------------------------------------------


def consenting(world: World, services: frozenset[ServiceType] = frozenset({ServiceType.MEDICAL})) -> None:
    world.bus.handle(commands.NoteCase(CASE, "22", "cw-1", services))


def survivor_row(world: World) -> dict[str, Any]:
    (row,) = [r for r in world.rows() if r["role"] == "survivor"]
    return row


def test_an_accepted_referral_tells_her_only_where_her_consent_covers_it(world: World) -> None:
    consenting(world, frozenset({ServiceType.LEGAL_AID}))
    world.bus.handle(accepted())
    assert [r for r in world.rows() if r["role"] == "survivor"] == []
    world.bus.handle(commands.NoteConsent(CASE, ServiceType.MEDICAL))
    world.bus.handle(accepted("ev-acc-2"))
    row = survivor_row(world)
    assert (row["channel"], row["address"], row["recipient_id"]) == ("survivor", "", CASE)  # no number stored


def her_sms(world: World) -> list[OutboundMessage]:
    return [m for m in world.sms.sent if m.role == "survivor"]


def test_quiet_hours_defer_her_notice_to_the_default_window_when_she_gave_no_times(world: World) -> None:
    consenting(world)
    world.clock.set(NIGHT)
    world.bus.handle(accepted())
    world.contacts.contact = SurvivorContact("0922 222 222", True, ("name", "phone", "safe_contact"))
    world.dispatch()  # her record says no safe times: the configured 08:00-20:00
    opens = datetime(2026, 3, 3, 8, 0, tzinfo=HCM)
    row = survivor_row(world)
    assert (row["status"], row["next_attempt_at"].replace(tzinfo=UTC), row["attempts"]) == ("deferred", opens, 0)
    world.dispatch(NIGHT + timedelta(hours=2))
    assert her_sms(world) == []
    world.dispatch(opens)
    (sent,) = her_sms(world)
    assert sent.address == "0922 222 222"
    assert sent.body == "Lịch hẹn của bạn đã được xác nhận. Trả lời STOP để ngừng nhận tin nhắn."
    assert world.contacts.reads == [(CASE, "health")] * 2  # her consent checked for the provider's sector, each time
    assert (survivor_row(world)["status"], survivor_row(world)["address"]) == ("sent", "")


def test_the_times_she_gave_replace_the_default_window(world: World) -> None:
    consenting(world)
    evenings = (ContactWindow.parse("21:00-22:00"),)
    world.contacts.contact = SurvivorContact("0922 222 222", True, ("phone", "safe_contact"), evenings)
    world.bus.handle(accepted())  # at noon: inside the default window, outside hers
    world.dispatch()
    opens = datetime(2026, 3, 2, 21, 0, tzinfo=HCM)
    row = survivor_row(world)
    assert (row["status"], row["next_attempt_at"].replace(tzinfo=UTC)) == ("deferred", opens)
    world.dispatch(opens - timedelta(minutes=1))
    assert her_sms(world) == []
    world.dispatch(opens)
    assert [m.address for m in her_sms(world)] == ["0922 222 222"]
    assert survivor_row(world)["status"] == "sent"


def test_a_night_window_she_gave_is_used_at_night(world: World) -> None:
    consenting(world)
    world.contacts.contact = SurvivorContact("0922 222 222", True, ("phone", "safe_contact"),
                                             (ContactWindow.parse("22:00-06:00"),))
    world.clock.set(NIGHT)  # 23:30: outside the default window, inside hers
    world.bus.handle(accepted())
    world.dispatch()
    assert len(her_sms(world)) == 1 and survivor_row(world)["status"] == "sent"


def test_her_times_are_read_again_when_the_deferred_notice_falls_due(world: World) -> None:
    consenting(world)
    saturdays = ContactWindow.from_safe_time([6], "09:00", "11:00")  # 2026-03-02 is a Monday
    world.contacts.contact = SurvivorContact("0922 222 222", True, ("phone", "safe_contact"), (saturdays,))
    world.bus.handle(accepted())
    world.dispatch()
    saturday = datetime(2026, 3, 7, 9, 0, tzinfo=HCM)
    assert survivor_row(world)["next_attempt_at"].replace(tzinfo=UTC) == saturday
    # Meanwhile she told her case worker that only Sunday mornings are safe now.
    sundays = ContactWindow.from_safe_time([7], "07:00", "08:00")
    world.contacts.contact = SurvivorContact("0922 222 222", True, ("phone", "safe_contact"), (sundays,))
    world.dispatch(saturday)
    assert her_sms(world) == []
    sunday = datetime(2026, 3, 8, 7, 0, tzinfo=HCM)
    row = survivor_row(world)
    assert (row["status"], row["next_attempt_at"].replace(tzinfo=UTC), row["attempts"]) == ("deferred", sunday, 0)
    world.dispatch(sunday)
    assert len(her_sms(world)) == 1 and survivor_row(world)["status"] == "sent"


def test_a_number_not_marked_safe_is_never_used(world: World) -> None:
    consenting(world)
    world.bus.handle(accepted())
    world.contacts.contact = SurvivorContact("0911 111 111", False, ("name", "phone"))
    world.dispatch()
    assert all(m.role != "survivor" for m in world.sms.sent)
    assert (survivor_row(world)["status"], survivor_row(world)["detail"]) == ("cancelled", "no_safe_contact_point")


def test_intake_refusing_her_contact_withholds_the_notice(world: World) -> None:
    consenting(world)
    world.bus.handle(accepted())
    world.contacts.refusal = "consent_withdrawn_or_case_closed"
    world.dispatch()
    assert (survivor_row(world)["status"], survivor_row(world)["detail"]) == (
        "cancelled", "consent_withdrawn_or_case_closed")


def test_withdrawing_consent_stops_her_pending_notices_but_not_staff_ones(world: World) -> None:
    consenting(world)
    world.clock.set(NIGHT)
    world.bus.handle(accepted())
    assert world.bus.handle(commands.WithdrawConsent(CASE, ServiceType.MEDICAL)) == 1
    assert survivor_row(world)["status"] == "cancelled"
    assert {(r["channel"], r["status"]) for r in world.rows() if r["role"] != "survivor"} == {
        ("email", "pending"), ("in_app", "delivered")}
    world.bus.handle(accepted("ev-acc-2"))  # consent is gone: no new notice for her
    assert len([r for r in world.rows() if r["role"] == "survivor"]) == 1


def test_erasing_the_case_drops_her_notices_and_the_text_of_finished_ones(world: World) -> None:
    consenting(world)
    world.bus.handle(new_referral())
    world.dispatch()
    world.clock.set(NIGHT)
    world.bus.handle(accepted())
    world.bus.handle(commands.EraseCase(CASE))
    rows = world.rows()
    assert survivor_row(world)["status"] == "cancelled"
    assert all(r["subject"] == "" and r["body"] == "" for r in rows if r["status"] not in ("pending", "deferred"))
    assert any(r["body"] for r in rows if r["status"] == "pending")  # staff still to be told


# --- each caller its own feed ------------------------------------------------------------------


def person(subject: str, role: Role, organisation: str = "", provinces: frozenset[str] = frozenset()) -> Caller:
    return Caller(subject, role, organisation_id=organisation, provinces=provinces, person=True)


QN_WORKER = person("cw-1", Role.OPERATOR, provinces=frozenset({"22"}))
QN_SUPERVISOR = person("qn-sup", Role.SUPERVISOR, provinces=frozenset({"22"}))
NATIONAL_SUPERVISOR = person("nat-sup", Role.SUPERVISOR, provinces=frozenset({"*"}))


def feed(world: World, caller: Caller, recipient: str = "", **kw: Any) -> list[Notice]:
    found, _ = world.bus.handle(commands.ListNotices(caller, recipient, **kw))
    return found  # type: ignore[no-any-return]


def escalated(province: str) -> commands.Notify:
    return commands.Notify(Escalation(f"ev-esc-{province}", str(uuid.uuid4()), CASE, province, ServiceType.MEDICAL,
                                      "clinic", "not_accepted_in_time", "accept"))


def test_a_caller_sees_only_its_own_feed(world: World) -> None:
    world.bus.handle(new_referral())
    world.bus.handle(escalated("22"))
    world.bus.handle(commands.Notify(StatusChange("ev-st", REFERRAL, CASE, "clinic", "22", ReferralStatus.REQUESTED,
                                                  ReferralStatus.ACCEPTED, "", "cw-1", ServiceType.MEDICAL)))
    # An agency's system and its staff signed in as people read the agency's feed (its organisation).
    for clinic in (machine("clinic", Role.AGENCY), person("nurse-lan", Role.AGENCY, "clinic")):
        assert [n.kind for n in feed(world, clinic)] == ["referral_new"]
        assert [n.kind for n in feed(world, clinic, "clinic")] == ["referral_new"]
    assert [n.kind for n in feed(world, QN_WORKER)] == ["referral_status"]
    assert [n.kind for n in feed(world, QN_SUPERVISOR, "22")] == ["sla_breached"]
    assert feed(world, machine("legal", Role.AGENCY)) == []
    # A person whose user name is the clinic's id reads the feed of the agency in their token, not the clinic's.
    assert feed(world, person("clinic", Role.AGENCY, "legal")) == []
    for caller, asked in ((machine("legal", Role.AGENCY), "clinic"), (person("clinic", Role.AGENCY, "legal"), "clinic"),
                          (person("nurse-lan", Role.AGENCY, "clinic"), "nurse-lan"),
                          (person("cw-2", Role.OPERATOR, provinces=frozenset({"22"})), "cw-1"),
                          (QN_SUPERVISOR, "42"), (person("sup-99", Role.SUPERVISOR), ""),
                          (person("ops-1", Role.OPS, provinces=frozenset({"*"})), ""),
                          (machine("intake", Role.SERVICE), "")):
        with pytest.raises(PermissionDenied):
            feed(world, caller, asked)
        with pytest.raises(PermissionDenied):
            world.bus.handle(commands.NoticesAfter(caller, asked, after_sequence=None))
    with pytest.raises(InvalidArgument, match="page_size"):
        feed(world, machine("clinic", Role.AGENCY), page_size=501)


def test_a_supervisor_reads_the_province_feeds_in_their_token(world: World) -> None:
    """No directory lookup: the provinces come from the supervisor's token ("*": every province)."""
    world.bus.handle(escalated("22"))
    world.bus.handle(escalated("42"))

    def provinces(caller: Caller, asked: str = "") -> list[str]:
        listed = [n.province_code for n in feed(world, caller, asked)]
        _, end = world.bus.handle(commands.NoticesAfter(caller, asked, after_sequence=None))
        watched, _ = world.bus.handle(commands.NoticesAfter(caller, asked, after_sequence=0))
        assert [n.province_code for n in watched] == listed[::-1] and end == (max(n.sequence for n in watched)
                                                                             if watched else 0)
        return listed

    assert provinces(QN_SUPERVISOR) == provinces(QN_SUPERVISOR, "22") == ["22"]
    assert provinces(person("ht-sup", Role.SUPERVISOR, provinces=frozenset({"42"}))) == ["42"]
    both = person("two-sup", Role.SUPERVISOR, provinces=frozenset({"22", "42"}))
    assert provinces(both) == provinces(NATIONAL_SUPERVISOR) == ["42", "22"]  # newest first
    assert provinces(NATIONAL_SUPERVISOR, "42") == provinces(both, "42") == ["42"]
    assert provinces(person("hn-sup", Role.SUPERVISOR, provinces=frozenset({"01"}))) == []
    # The directory's supervisor_ids grant nothing: "sup-22" is listed for 22 but has no province in a token.
    with pytest.raises(PermissionDenied):
        feed(world, person("sup-22", Role.SUPERVISOR))
    with pytest.raises(PermissionDenied):
        feed(world, QN_SUPERVISOR, "42")


def test_the_feed_pages_newest_first_and_resumes_after_a_sequence(world: World) -> None:
    for i in range(5):
        world.bus.handle(new_referral(event_id=f"ev-{i}", referral_id=str(uuid.uuid4())))
    world.dispatch()
    reader = machine("clinic", Role.AGENCY)
    page, next_before = world.bus.handle(commands.ListNotices(reader, page_size=3))
    assert [n.sequence for n in page] == sorted((n.sequence for n in page), reverse=True) and next_before
    older, done = world.bus.handle(commands.ListNotices(reader, page_size=3, before_sequence=next_before))
    assert len(older) == 2 and done == 0
    _, end = world.bus.handle(commands.NoticesAfter(reader, after_sequence=None))
    assert end == page[0].sequence
    after, _ = world.bus.handle(commands.NoticesAfter(reader, after_sequence=older[0].sequence))
    assert [n.sequence for n in after] == sorted(n.sequence for n in page)


def test_the_feed_pages_by_page_token_and_still_honours_before_sequence(world: World) -> None:
    for i in range(5):
        world.bus.handle(new_referral(event_id=f"ev-{i}", referral_id=str(uuid.uuid4())))
    world.dispatch()
    reader = machine("clinic", Role.AGENCY)
    _, next_before = world.bus.handle(commands.ListNotices(reader, page_size=3))
    token = handlers.page_token(next_before)
    assert token and handlers.page_token(0) == ""  # no next page: no token
    by_token, _ = world.bus.handle(commands.ListNotices(reader, page_size=3, page_token=token))
    by_sequence, _ = world.bus.handle(commands.ListNotices(reader, page_size=3, before_sequence=next_before))
    assert by_token == by_sequence and len(by_token) == 2
    # The token wins over the deprecated field.
    assert world.bus.handle(commands.ListNotices(reader, page_size=3, page_token=token, before_sequence=1))[0] == \
        by_token
    for bad in ("abc", "-1", "1.5", "9" * 20):
        with pytest.raises(InvalidArgument, match=r"^page_token"):
            world.bus.handle(commands.ListNotices(reader, page_token=bad))


def test_the_watch_cursor_sends_each_notice_once_and_catches_a_late_commit() -> None:
    def n(seq: int) -> Notice:
        return Notice(str(seq), "e", "referral_new", "provider", "p", "in_app", "s", "b", "r", "c", "22", "routine",
                      "delivered", NOON, seq)

    cursor = FeedCursor(after=10, settle_s=5)
    assert [x.sequence for x in cursor.take([n(11), n(13)], now=0)] == [11, 13]
    assert cursor.take([n(11), n(13)], now=1) == []
    assert [x.sequence for x in cursor.take([n(11), n(12), n(13)], now=2)] == [12]  # 12 committed after 13
    assert cursor.take([n(11), n(12), n(13)], now=7) == [] and cursor.low == 13


def test_the_demo_directory_names_every_providers_duty_desk_and_each_provinces_supervisors() -> None:
    from refnet_dev.util import repo_root

    loaded = load_directory_file(repo_root() / "demo" / "directory.json")
    providers = [r for r in loaded.recipients if r.role == "provider"]
    assert providers and all(r.email and r.sector and r.language is Language.VI for r in providers)
    assert {p for _, p in loaded.supervisors} >= {"22", "42", "92"}
    assert ("qn-supervisor", "22") in loaded.supervisors


def test_a_directory_entry_without_its_id_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"case_workers": [{"contact": {"email": "x@y.test"}}]}))
    with pytest.raises(InvalidArgument, match=r"case_workers\[0\].case_worker_id"):
        load_directory_file(path)


def test_a_notice_cancelled_while_it_was_being_tried_stays_cancelled(world: World) -> None:
    consenting(world)
    world.clock.set(NIGHT)
    world.bus.handle(accepted())
    opens = datetime(2026, 3, 3, 8, 0, tzinfo=HCM)

    def withdraw_meanwhile(*args: Any) -> SurvivorContact:
        world.bus.handle(commands.WithdrawConsent(CASE, None))  # while the round has it claimed
        raise ContactUnavailable("intake unavailable")

    world.contacts.read = withdraw_meanwhile  # type: ignore[method-assign]
    world.dispatch(opens)
    assert (survivor_row(world)["status"], survivor_row(world)["detail"]) == ("cancelled", "consent_withdrawn")
    assert world.dispatch(opens + timedelta(hours=1)) == {}
