"""The SMS door's service layer through bootstrap on an SQLite file, with fake owners (no network): each text
once, who is answered and in which language, and what an unknown, flooding or long-winded sender gets (nothing)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from notifications.adapters.tables import inbound_sms
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.inbound_sms import Keyword, Parsed, SenderLimit
from notifications.domain.messages import Language
from notifications.service_layer.inbound import (
    Outcome,
    OwnerUnavailable,
    ProviderAnswer,
    ShelterAnswer,
    SmsDoor,
    SurvivorAnswer,
    sender_hasher,
)
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from refnet_platform.vocabulary import DeclineReason, TargetGroup

SHELTER, PROVIDER, SURVIVOR, STRANGER = "0977100200", "0903000003", "0912777888", "0999999999"


@dataclass
class FakeOwners:
    shelter_free: list[tuple[TargetGroup, int]] = field(default_factory=lambda: [(TargetGroup.WOMEN, 2)])
    shelter_problem: str = ""
    provider_problem: str = ""
    stopped: bool = False
    down: bool = False
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def shelter_report(self, sender: str, parsed: Parsed | None) -> ShelterAnswer | None:
        self.calls.append(("shelter", parsed))
        if self.down:
            raise OwnerUnavailable("unavailable")
        if sender != SHELTER:
            return None
        if parsed is not None and parsed.keyword is Keyword.BEDS and not self.shelter_problem:
            self.shelter_free = [(g or TargetGroup.WOMEN, n) for g, n in parsed.pools]
        return ShelterAnswer("vi", self.shelter_free, self.shelter_problem)

    def provider_answer(self, sender: str, message_id: str, parsed: Parsed | None) -> ProviderAnswer | None:
        self.calls.append(("provider", parsed))
        return ProviderAnswer("en", self.provider_problem) if sender == PROVIDER else None

    def survivor_preference(self, sender: str, stop: bool) -> SurvivorAnswer | None:
        self.calls.append(("survivor", stop))
        if sender != SURVIVOR:
            return None
        changed = self.stopped != stop
        self.stopped = stop
        return SurvivorAnswer(changed, ["case-1"])


@dataclass
class Door:
    bus: Any
    engine: Any
    owners: FakeOwners
    ticks: list[float]

    def text(self, sender: str, words: str, message_id: str = "") -> Any:
        message_id = message_id or f"gw-{len(self.ticks)}-{words}"
        self.ticks.append(self.ticks[-1] + 1 if self.ticks else 0.0)
        return self.bus.handle(commands.ReceiveSms(message_id, sender, words, datetime.now(UTC)))

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(inbound_sms)).mappings()]


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'n.db'}")
    engine = make_engine(*settings.database)
    migrate(engine, MIGRATIONS)
    owners, ticks = FakeOwners(), [0.0]
    sms = SmsDoor(owners, sender_hasher(b"k"), SenderLimit(5, 600), Language.VI, monotonic=lambda: ticks[-1])
    try:
        yield Door(bootstrap(settings, engine, adapters={}, contacts=None, door=sms), engine, owners, ticks)
    finally:
        engine.dispose()


def test_a_shelters_report_is_applied_once_and_answered_in_its_language(door: Door) -> None:
    done = door.text(SHELTER, "GIUONG 3", "gw-1")
    assert done.outcome is Outcome.APPLIED
    assert (done.reply.to, done.reply.text, done.reply.for_survivor) == (SHELTER, "Đã cập nhật giường trống: 3.", False)
    again = door.text(SHELTER, "GIUONG 9", "gw-1")
    assert (again.outcome, again.reply) == (Outcome.DUPLICATE, None)
    assert door.owners.shelter_free == [(TargetGroup.WOMEN, 3)]
    assert [r["outcome"] for r in door.rows()] == ["applied"]
    assert door.text(SHELTER, "BEDS 1").reply.text == "Free beds updated: 1."


def test_not_understood_from_a_known_phone_shows_the_right_form(door: Door) -> None:
    assert door.text(SHELTER, "xin chao").reply.text == (
        "Không hiểu tin nhắn. Gửi: GIUONG 3, DEN RF-xxxxxxxx hoặc DI RF-xxxxxxxx.")
    door.owners.shelter_free = [(TargetGroup.WOMEN, 1), (TargetGroup.CHILDREN, 0)]
    assert door.text(SHELTER, "GIUONG ba").reply.text == "Không hiểu số giường. Gửi: GIUONG PN 2 TE 1."
    door.owners.shelter_problem = "pool_required"
    reply = door.text(SHELTER, "GIUONG 2")
    assert (reply.outcome, reply.reply.text) == (Outcome.NOT_APPLIED,
                                                 "Nơi của bạn có nhiều loại giường. Gửi: GIUONG PN 2 TE 1.")
    assert door.text(PROVIDER, "hello").reply.text.startswith("Not understood. Send: ACCEPT RF-xxxxxxxx")


def test_provider_answers_and_their_problems(door: Door) -> None:
    assert door.text(PROVIDER, "NHAN RF-1A2B3C4D").reply.text == "Referral RF-1A2B3C4D accepted."
    assert door.text(PROVIDER, "TU CHOI RF-1A2B3C4D trung").reply.text == "Referral RF-1A2B3C4D declined (DUPLICATE)."
    door.owners.provider_problem = "not_open"
    not_open = door.text(PROVIDER, "ACCEPT RF-1A2B3C4D").reply.text
    assert not_open == "Referral RF-1A2B3C4D is no longer waiting for an answer."
    last = [c for c in door.owners.calls if c[0] == "provider"][-1][1]
    assert last.reason is None and last.keyword is Keyword.ACCEPT
    assert [c for c in door.owners.calls if c[0] == "provider"][1][1].reason is DeclineReason.DUPLICATE


def test_an_unknown_number_gets_nothing_and_leaves_only_a_count(door: Door, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = REGISTRY.get_sample_value("refnet_sms_inbound_total", {"outcome": "unknown_sender"}) or 0
    for words in ("GIUONG 3", "STOP", "NHAN RF-1A2B3C4D", "hello"):
        done = door.text(STRANGER, words)
        assert (done.outcome, done.reply) == (Outcome.UNKNOWN_SENDER, None)
    assert door.rows() == []
    assert not [r for r in caplog.records if r.name.startswith("notifications")]
    assert REGISTRY.get_sample_value("refnet_sms_inbound_total", {"outcome": "unknown_sender"}) == before + 4


def test_a_survivor_is_answered_only_to_confirm_stop_or_start_once(door: Door) -> None:
    stopped = door.text(SURVIVOR, "STOP")
    assert (stopped.outcome, stopped.reply.for_survivor) == (Outcome.STOPPED, True)
    assert stopped.reply.text == "Bạn sẽ không nhận thêm tin nhắn nào. Trả lời BAT DAU để nhận lại."
    assert door.text(SURVIVOR, "dung").reply is None  # already stopped: confirmed once
    for words in ("GIUONG 2", "NHAN RF-1A2B3C4D"):  # nothing else is ever sent to her number
        assert door.text(SURVIVOR, words).reply is None
    started = door.text(SURVIVOR, "BAT DAU")
    assert (started.outcome, started.reply.text) == (Outcome.STARTED,
                                                      "Bạn sẽ nhận lại tin nhắn. Trả lời DUNG để ngừng.")


def test_a_flooding_number_is_ignored_after_the_limit(door: Door) -> None:
    outcomes = [door.text(SHELTER, f"GIUONG {i}").outcome for i in range(7)]
    assert outcomes == [Outcome.APPLIED] * 5 + [Outcome.RATE_LIMITED] * 2
    door.ticks.append(10_000.0)  # the window has passed
    assert door.text(SHELTER, "GIUONG 1").outcome is Outcome.APPLIED


def test_a_long_text_is_not_read_and_logged_by_id_only(door: Door, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    done = door.text(SHELTER, "GIUONG 3 " + "x" * 400, "gw-long")
    assert (done.outcome, done.reply) == (Outcome.TOO_LONG, None)
    assert door.owners.calls == []
    logged = " ".join(str(getattr(r, "fields", "")) + r.getMessage() for r in caplog.records)
    assert "gw-long" in logged and "GIUONG" not in logged and SHELTER not in logged


def test_an_owner_that_does_not_answer_leaves_nothing_recorded_so_the_retry_is_handled(door: Door) -> None:
    door.owners.down = True
    assert door.text(SHELTER, "GIUONG 3", "gw-9").outcome is Outcome.OWNER_UNAVAILABLE
    assert door.rows() == []
    door.owners.down = False
    assert door.text(SHELTER, "GIUONG 3", "gw-9").outcome is Outcome.APPLIED


def test_a_text_without_a_message_id_or_sender_is_refused_naming_the_field(door: Door) -> None:
    from refnet_platform.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as raised:
        door.bus.handle(commands.ReceiveSms("", SHELTER, "GIUONG 3", datetime.now(UTC)))
    assert raised.value.field == "message_id"
    with pytest.raises(InvalidArgument) as raised:
        door.bus.handle(commands.ReceiveSms("gw-x", "", "GIUONG 3", datetime.now(UTC)))
    assert raised.value.field == "from"
