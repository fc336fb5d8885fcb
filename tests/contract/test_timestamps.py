"""One rule for a time on every API and every consumed event: a Timestamp out of range (before year 1, in the last
hours of year 9999 that Vietnam time cannot show, nanos outside a second) is INVALID_ARGUMENT naming its field,
never an OverflowError or ValueError deep in a handler; the edges themselves are accepted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from intake.adapters import proto_mapping as intake_mapping
from notifications.adapters import proto_mapping as notifications_mapping
from referral.adapters import proto_mapping as referral_mapping
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import InvalidArgument
from refnet_platform.timestamps import MAX_SECONDS, MIN_SECONDS
from shelter.adapters import proto_mapping as shelter_mapping

OPERATOR = Caller("qn-operator-1", Role.OPERATOR, provinces=frozenset({"22"}), person=True)
BAD = {
    "before year 1": (MIN_SECONDS - 1, 0),
    "the last hour of year 9999": (253_402_300_799, 999_999_999),
    "the first hour Vietnam cannot show": (MAX_SECONDS + 1, 0),
    "negative nanos": (0, -1),
    "a whole second of nanos": (0, 1_000_000_000),
}
EDGES = {"year 1": (MIN_SECONDS, 0), "9999-12-31T16:59:59.999999999Z": (MAX_SECONDS, 999_999_999)}


# --- intake's API (the only requests that carry times) -------------------------------------------


def _need(consented: bool = False) -> intake_pb.Need:
    return intake_pb.Need(consented=consented)


REQUESTS: list[tuple[str, Callable[[], Message], Callable[[Any, Caller], object]]] = [
    ("call.started_at", intake_pb.LogCallRequest, intake_mapping.log_call_command),
    ("recorded_at", intake_pb.RegisterCaseRequest, intake_mapping.register_case_command),
    ("call.started_at", intake_pb.RegisterCaseRequest, intake_mapping.register_case_command),
    ("needs[1].consent.expires_at", lambda: intake_pb.RegisterCaseRequest(needs=[_need(), _need()]),
     intake_mapping.register_case_command),
    ("need.consent.expires_at", intake_pb.AddNeedRequest, intake_mapping.add_need_command),
    ("consent.expires_at", intake_pb.GiveConsentRequest, intake_mapping.give_consent_command),
    ("expires_at", intake_pb.OverrideConsentRequest, intake_mapping.override_consent_command),
]


REQUEST_IDS = [f"{type(make()).__name__}.{path}" for path, make, _ in REQUESTS]


def _set(message: Message, path: str, seconds: int, nanos: int) -> None:
    """Sets the Timestamp at `path` (a.b[1].c) in `message`."""
    target: Any = message
    *parents, leaf = path.split(".")
    for part in parents:
        name, _, index = part.partition("[")
        target = getattr(target, name)[int(index.rstrip("]"))] if index else getattr(target, name)
    stamp = getattr(target, leaf)
    stamp.seconds, stamp.nanos = seconds, nanos


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize(("path", "make", "to_command"), REQUESTS, ids=REQUEST_IDS)
def test_intake_refuses_a_bad_time_naming_its_field(path: str, make: Callable[[], Message],
                                                    to_command: Callable[[Any, Caller], object], bad: str) -> None:
    request = make()
    _set(request, path, *BAD[bad])
    with pytest.raises(InvalidArgument) as refused:
        to_command(request, OPERATOR)
    assert refused.value.field == path


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize(("path", "make", "to_command"), REQUESTS, ids=REQUEST_IDS)
def test_intake_takes_the_edges_of_the_range(path: str, make: Callable[[], Message],
                                             to_command: Callable[[Any, Caller], object], edge: str) -> None:
    request = make()
    _set(request, path, *EDGES[edge])
    to_command(request, OPERATOR)


# --- every consumed event -------------------------------------------------------------------------

CONSUMERS: dict[str, tuple[Callable[[Any], object], tuple[ModuleType, ...]]] = {
    "intake": (intake_mapping.command_for, (referral_events,)),
    "referral": (referral_mapping.command_for, (intake_events, shelter_events)),
    "shelter": (shelter_mapping.command_for, (shelter_events,)),
    "shelter-bed-feed": (lambda m: shelter_mapping.capacity_changed_from(m)
                         if isinstance(m, shelter_events.CapacityChanged) else None, (shelter_events,)),
    "notifications": (notifications_mapping.command_for, (referral_events, intake_events, shelter_events)),
}
UUID = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
TIMESTAMP = "google.protobuf.Timestamp"


def _filled(cls: type[Message]) -> Message:
    """A well-formed message: ids, codes and one of each repeated part, so a mapping reads as far as its times."""
    message = cls()
    for field in cls.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_ENUM and field.is_repeated:
            getattr(message, field.name).append(field.enum_type.values[1].number)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            setattr(message, field.name, field.enum_type.values[1].number)
        elif field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            setattr(message, field.name, "22" if field.name.endswith("province_code") else UUID)
        elif field.message_type is not None and field.is_repeated:
            part = getattr(message, field.name).add()
            for sub in field.message_type.fields:
                if sub.type == FieldDescriptor.TYPE_ENUM and not sub.is_repeated:
                    setattr(part, sub.name, sub.enum_type.values[1].number)
    return message


def _times() -> Iterator[tuple[str, type[Message], str]]:
    """(consumer, message type, path) for every Timestamp, at the top or one repeated part deep."""
    for consumer, (_, modules) in CONSUMERS.items():
        for module in modules:
            for descriptor in module.DESCRIPTOR.message_types_by_name.values():
                cls = getattr(module, descriptor.name)
                for field in descriptor.fields:
                    if field.message_type is None:
                        continue
                    if field.message_type.full_name == TIMESTAMP:
                        yield consumer, cls, field.name
                    elif field.is_repeated:
                        for sub in field.message_type.fields:
                            if sub.message_type is not None and sub.message_type.full_name == TIMESTAMP:
                                yield consumer, cls, f"{field.name}[0].{sub.name}"


TIMES = list(_times())


def test_the_consumed_events_carry_times() -> None:
    assert {(c, cls.__name__) for c, cls, _ in TIMES} >= {
        ("referral", "CaseRegistered"), ("referral", "ConsentGiven"), ("shelter", "ReserveBed"),
        ("notifications", "ReferralEscalated"), ("notifications", "HoldExpired"), ("intake", "ReferralStatusChanged"),
        ("shelter-bed-feed", "CapacityChanged")}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize(("consumer", "cls", "path"), TIMES, ids=[f"{c}-{cls.__name__}.{p}" for c, cls, p in TIMES])
def test_a_consumer_ignores_a_bad_time_or_refuses_it_naming_the_field(consumer: str, cls: type[Message], path: str,
                                                                     bad: str) -> None:
    message = _filled(cls)
    _set(message, path, *BAD[bad])
    to_command, _ = CONSUMERS[consumer]
    try:
        to_command(message)
    except InvalidArgument as refused:
        assert refused.field == path.rsplit(".", 1)[-1]


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize(("consumer", "cls", "path"), TIMES, ids=[f"{c}-{cls.__name__}.{p}" for c, cls, p in TIMES])
def test_a_consumer_takes_the_edges_of_the_range(consumer: str, cls: type[Message], path: str, edge: str) -> None:
    message = _filled(cls)
    _set(message, path, *EDGES[edge])
    CONSUMERS[consumer][0](message)


@pytest.mark.parametrize(("consumer", "message", "field"), [
    ("referral", intake_events.ConsentGiven(service_type=1), "expires_at"),
    ("referral", intake_events.RiskUpdated(), "child_protection_deadline"),
    ("referral", intake_events.CaseRegistered(needs=[intake_events.NeedRef(service_type=1)]), "consent_expires_at"),
    ("shelter", shelter_events.ReserveBed(), "hold_until"),
    ("shelter-bed-feed", shelter_events.CapacityChanged(target_group=1), "confirmed_at"),
    ("notifications", referral_events.ReferralEscalated(referral_id=UUID, case_id=UUID), "deadline"),
    ("notifications", shelter_events.HoldExpired(), "hold_until"),
    ("notifications", shelter_events.BedReserved(), "hold_until"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_the_times_a_consumer_reads_are_refused_by_name(consumer: str, message: Message, field: str) -> None:
    target: Any = message.needs[0] if field == "consent_expires_at" else message  # type: ignore[attr-defined]
    getattr(target, field).seconds = MAX_SECONDS + 1
    with pytest.raises(InvalidArgument) as refused:
        CONSUMERS[consumer][0](message)
    assert refused.value.field == field
