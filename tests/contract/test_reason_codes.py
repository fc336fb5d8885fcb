"""Reason codes, producer to reader: every code referral or shelter can put in a reason field is a member of a
vocabulary enum that mirrors a proto enum, travels the wire as its lower-case name, is understood by the service
that consumes it, and reaches a person as its own words in Vietnamese and in English, never as "other reason".

The codes are enumerated from the enums the producers use (refnet_platform.vocabulary); the last test holds the
producers to those enums: no reason code is spelled out as a string in their code."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from notifications.adapters import proto_mapping as notifications_mapping
from notifications.domain import commands as notifications_commands
from notifications.domain.messages import KNOWN_REASONS, Addressee, Channel, Event, Language, Role, recipients_for
from notifications.domain.rendering import Contact, Endpoint, Links, context_for, staff_messages, template_environment
from referral.adapters import proto_mapping as referral_mapping
from referral.domain import commands as referral_commands
from referral.domain import events as referral_events
from referral.domain.model import Referral, Status
from refnet.notifications.v1 import events_pb2 as notifications_pb
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.shelter.v1 import events_pb2 as shelter_pb_events
from refnet.shelter.v1 import shelter_service_pb2 as shelter_pb
from refnet_platform.vocabulary import (
    ESCALATION_REASONS,
    NOTIFIED_REASONS,
    RELEASE_REASONS,
    STATUS_REASONS,
    BedRejectionReason,
    BedReleaseReason,
    DeclineReason,
    DeliveryFailureReason,
    FailureReason,
    Outcome,
    ReferralReason,
    RiskLevel,
    ServiceType,
    TargetGroup,
    codes,
    from_pb,
    to_pb,
)
from shelter.adapters import proto_mapping as shelter_mapping
from shelter.domain import commands as shelter_commands
from shelter.domain import events as shelter_events
from shelter.domain.model import Reservation, ReservationStatus

ROOT = Path(__file__).resolve().parents[2]
LINKS = Links("https://partners.refnet.test", "https://console.refnet.test")
EMAIL = (Endpoint(Channel.EMAIL, "someone@refnet.test"),)
AT = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)

# Each vocabulary reason enum and the proto enum it mirrors.
MIRRORS: dict[type[StrEnum], Any] = {
    DeclineReason: referral_pb.DeclineReason,
    FailureReason: referral_pb.FailureReason,
    Outcome: referral_pb.Outcome,
    ReferralReason: referral_pb.ReferralReason,
    BedRejectionReason: shelter_pb.BedRejectionReason,
    BedReleaseReason: shelter_pb.BedReleaseReason,
    DeliveryFailureReason: notifications_pb.DeliveryFailureReason,
}


def members(enums: Iterable[type[StrEnum]]) -> list[StrEnum]:
    return [member for enum in enums for member in enum]


def ids(member: StrEnum) -> str:
    return f"{type(member).__name__}.{member.name}"


# --- the vocabulary and the protos -----------------------------------------------------------------


@pytest.mark.parametrize("enum", list(MIRRORS), ids=lambda e: e.__name__)
def test_each_reason_enum_mirrors_its_proto_enum_by_name_and_travels_as_its_lower_case_name(
        enum: type[StrEnum]) -> None:
    pb_enum = MIRRORS[enum]
    prefix = pb_enum.Name(0).removesuffix("UNSPECIFIED")
    assert {prefix + m.name for m in enum} == set(pb_enum.keys()) - {pb_enum.Name(0)}
    for member in enum:
        assert member.value == member.name.lower()
        assert from_pb(enum, pb_enum, to_pb(member, pb_enum)) is member


def test_every_reason_enum_is_mirrored_and_notified_or_sent_to_operations() -> None:
    assert set(NOTIFIED_REASONS) | {DeliveryFailureReason} == set(MIRRORS)
    assert set(STATUS_REASONS) | set(RELEASE_REASONS) == set(NOTIFIED_REASONS)
    assert set(ReferralReason) >= ESCALATION_REASONS


@pytest.mark.parametrize("language", list(Language))
def test_the_templates_name_exactly_the_codes_producers_emit(language: Language) -> None:
    labels = template_environment().get_template(f"{language}/_labels.j2").module.reason  # type: ignore[attr-defined]
    assert set(labels) == codes(NOTIFIED_REASONS) | {"", "other"} == KNOWN_REASONS | {""}
    words = [labels[code] for code in sorted(codes(NOTIFIED_REASONS))]
    assert all(words) and labels["other"] not in words
    assert len(set(words)) == len(words), "two codes read the same"


# --- producer -> wire -> notifications -> words ----------------------------------------------------


def referral(reason: str = "", status: Status = Status.CANCELLED) -> Referral:
    return Referral(referral_id=str(uuid.uuid4()), case_id=str(uuid.uuid4()), need_id="need-1",
                    service_type=ServiceType.SHELTER, provider_id="qn-spc", province_code="22", status=status,
                    emergency=False, risk_level=RiskLevel.MEDIUM, case_worker_id="cw-1", requested_at=AT,
                    shelter_id="qn-spc", reason=reason, updated_at=AT)


def reservation(case_id: str = "") -> Reservation:
    return Reservation(referral_id=str(uuid.uuid4()), shelter_id="qn-spc", case_id=case_id or str(uuid.uuid4()),
                       province_code="22", target_group=TargetGroup.WOMEN, status=ReservationStatus.RELEASED,
                       hold_until=AT + timedelta(hours=4))


def notified(message: Message) -> Event:
    """What notifications makes of a record a producer wrote."""
    command = notifications_mapping.command_for(message)
    assert isinstance(command, notifications_commands.Notify)
    return command.event


def status_changes() -> list[tuple[StrEnum, Event]]:
    out = []
    for member in members(STATUS_REASONS):
        changed = referral(str(member))
        record = referral_mapping.event_to_record(referral_events.ReferralStatusChanged(changed, Status.ACCEPTED))
        out.append((member, notified(record.message)))
    return out


def escalations() -> list[tuple[StrEnum, Event]]:
    out = []
    for member in sorted(ESCALATION_REASONS):
        escalated = referral(str(member), Status.ESCALATED)
        sla = {ReferralReason.NOT_ACCEPTED_IN_TIME: "accept", ReferralReason.NOT_STARTED_IN_TIME: "start"}.get(
            member, "")
        record = referral_mapping.event_to_record(
            referral_events.ReferralEscalated(escalated, member, sla, AT if sla else None, None))
        out.append((member, notified(record.message)))
    return out


def bed_news() -> list[tuple[StrEnum, Event]]:
    out: list[tuple[StrEnum, Event]] = []
    for rejection in BedRejectionReason:
        record = shelter_mapping.event_to_record(shelter_events.BedReservationRejected(
            str(uuid.uuid4()), str(uuid.uuid4()), "qn-spc", "22", rejection))
        out.append((rejection, notified(record.message)))
    for release in members(RELEASE_REASONS):
        if release is BedReleaseReason.HOLD_EXPIRED:
            record = shelter_mapping.event_to_record(shelter_events.HoldExpired(reservation()))
        else:
            record = shelter_mapping.event_to_record(shelter_events.BedReleased(reservation(), release))
        out.append((release, notified(record.message)))
    return out


NEWS = status_changes() + escalations() + bed_news()


def test_every_code_a_producer_can_emit_is_exercised() -> None:
    assert {str(member) for member, _ in NEWS} == codes(NOTIFIED_REASONS)


@pytest.mark.parametrize(("member", "event"), NEWS, ids=[f"{type(e).__name__}-{ids(m)}" for m, e in NEWS])
def test_every_code_reaches_staff_as_its_own_words_in_both_languages(member: StrEnum, event: Event) -> None:
    code = str(member)
    assert getattr(event, "reason") == code  # noqa: B009 (every summary with a reason has the field)
    staff = [a for a in recipients_for(event) if a.role is not Role.SURVIVOR]
    assert staff
    told = 0
    for addressee in staff:
        shown = context_for(event, addressee, LINKS)["reason"]
        if addressee.role is Role.PROVIDER and shown == "":
            continue  # a provider is not told what the survivor decided (or that her case is gone)
        assert shown == code, f"{code} would read as {shown!r} to the {addressee.role}"
        for language in Language:
            labels: Any = template_environment().get_template(f"{language}/_labels.j2").module
            words = labels.reason[code]
            (message,) = staff_messages(event, addressee, Contact(addressee.recipient_id, language, EMAIL), LINKS)
            assert words and words in message.body, f"{code} is not named to the {addressee.role} in {language}"
            assert labels.reason["other"] not in message.body
        told += 1
    assert told, f"nobody is told why ({code})"


def test_a_provider_is_told_every_reason_except_the_survivors_own() -> None:
    silent = {ReferralReason.CONSENT_WITHDRAWN, ReferralReason.CASE_ERASED, DeclineReason.SURVIVOR_DECLINED}
    for member, event in status_changes():
        provider = Addressee(Role.PROVIDER, "qn-spc", next(
            a.kind for a in recipients_for(event) if a.role is Role.PROVIDER))
        assert context_for(event, provider, LINKS)["reason"] == ("" if member in silent else str(member))


# --- producer -> wire -> the consuming service ---------------------------------------------------


# What referral gives a bed back for: its own reasons, an agency's decline or failure (never shelter's own).
GIVE_BACK = members([ReferralReason, DeclineReason, FailureReason])


def test_referral_gives_beds_back_for_reasons_shelter_knows() -> None:
    assert set(RELEASE_REASONS) == {BedReleaseReason, ReferralReason, DeclineReason, FailureReason}


@pytest.mark.parametrize("member", GIVE_BACK, ids=ids)
def test_shelter_keeps_every_reason_referral_gives_a_bed_back_for(member: Any) -> None:
    record = referral_mapping.event_to_record(referral_events.BedReleaseRequested(referral(), member))
    assert record.message.reason == str(member)
    command = shelter_mapping.command_for(record.message)
    assert isinstance(command, shelter_commands.ReleaseBed)
    assert command.reason == member


def test_a_release_without_a_reason_this_build_knows_is_a_cancellation() -> None:
    for unknown in ("", "because"):
        command = shelter_mapping.command_for(shelter_pb_events.ReleaseBed(referral_id="r1", shelter_id="qn-spc",
                                                                           reason=unknown))
        assert command == shelter_commands.ReleaseBed("r1", "qn-spc", None)


@pytest.mark.parametrize("member", list(BedRejectionReason), ids=ids)
def test_referral_understands_every_reason_shelter_rejects_a_bed_for(member: BedRejectionReason) -> None:
    record = shelter_mapping.event_to_record(shelter_events.BedReservationRejected("r1", "c1", "qn-spc", "22", member))
    command = referral_mapping.command_for(record.message)
    assert command == referral_commands.RecordBedRejected("r1", "qn-spc", member)
    assert isinstance(command, referral_commands.RecordBedRejected) and command.reason is member


# --- the producers use the enums ------------------------------------------------------------------

# Where reason codes are produced: referral and shelter, and notifications' own (bed summaries, delivery failures).
PRODUCERS = [*sorted((ROOT / "services" / "referral" / "src").rglob("*.py")),
             *sorted((ROOT / "services" / "shelter" / "src").rglob("*.py")),
             ROOT / "services" / "notifications" / "src" / "notifications" / "adapters" / "proto_mapping.py",
             ROOT / "services" / "notifications" / "src" / "notifications" / "domain" / "retry.py"]


def _spelled_out_codes(path: Path, known: frozenset[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # An enum's own members (`CANCELLED = "cancelled"` in a class body) are where codes are defined.
    definitions = {id(stmt.value) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                   for stmt in node.body if isinstance(stmt, ast.Assign)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in known and id(node) not in definitions:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
        if isinstance(node, ast.keyword) and node.arg == "reason" and isinstance(node.value, ast.Constant) \
                and node.value.value:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: reason={node.value.value!r}")
    return found


def test_no_producer_spells_a_reason_code_out() -> None:
    known = codes(MIRRORS)
    found = [hit for path in PRODUCERS if "migrations" not in path.parts for hit in _spelled_out_codes(path, known)]
    assert not found, "use the vocabulary's reason enums:\n" + "\n".join(found)
