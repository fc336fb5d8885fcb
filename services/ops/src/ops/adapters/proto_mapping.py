"""The one module that maps protobuf to ops' domain: event payloads to commands, dead letters to records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError, Message

from ops.domain import commands
from ops.domain.history import HistoryCall, HistoryCase
from ops.domain.model import ESCALATED, SECTOR_OF, DeadLetterRecord
from ops.domain.report import NATIONAL_LINE
from refnet.common.v1 import types_pb2
from refnet.common.v1.envelope_pb2 import DeadLetter
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.notifications.v1 import events_pb2 as notification_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.consumer import current_envelope
from refnet_platform.envelope import TypeRegistry
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, TargetGroup, from_pb

CONSUMED_TYPES = TypeRegistry([intake_events, referral_events, shelter_events, notification_events])


def _time(stamp: Any) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def _seen(message: Message) -> commands.Seen:
    """When and where: the envelope's event time (not when ops got round to it) and producer."""
    envelope = current_envelope.get()
    at = _time(envelope.time) if envelope is not None and envelope.HasField("time") else datetime.now(UTC)
    stream = envelope.source.removeprefix("refnet/") if envelope is not None else ""
    return commands.Seen(at, stream or "unknown", str(getattr(message, "province_code", "")))


def _optional(message: Message, name: str) -> Any:
    """A field this build's proto may not have yet (added by its owner later): None when absent or unset."""
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None or (field.has_presence and not message.HasField(name)):
        return None
    return getattr(message, name)


def _enum_name(message: Message, name: str) -> str:
    """An enum field's value as a short lower-case code: CALL_TOPIC_CHILD_PROTECTION -> child_protection."""
    field = message.DESCRIPTOR.fields_by_name[name]
    value = getattr(message, name)
    if field.enum_type is None:
        return str(value)
    full = field.enum_type.values_by_number[value].name if value in field.enum_type.values_by_number else str(value)
    prefix = field.enum_type.values[0].name.removesuffix("UNSPECIFIED")
    return full.removeprefix(prefix).lower() or "unspecified"


def _status(number: int) -> str:
    return str(referral_pb.ReferralStatus.Name(number)).removeprefix("REFERRAL_STATUS_").lower()


def _reportable(message: Message) -> bool:
    # Every case counts unless intake's event says reporting is not allowed (`optional bool reporting_consent`).
    value = _optional(message, "reporting_consent")
    return value is None or bool(value)


def _code(message: Message, name: str) -> str:
    """An enum field as a report row's value: unspecified is `unknown`."""
    value = _enum_name(message, name)
    return "unknown" if value == "unspecified" else value


def _at(seen: commands.Seen, message: Message, name: str) -> commands.Seen:
    """When it happened, as the event says (an imported record's original date), else the envelope's time."""
    stamp = _optional(message, name)
    return commands.Seen(_time(stamp), seen.stream, seen.province_code) if stamp is not None else seen


def _age_band(band: str) -> str:
    # Intake says "child-unknown" for a child of unknown age: the child/adult breakdown already tells that.
    return band if band and band != "child-unknown" else "unknown"


def command_for(message: Message) -> object | None:
    seen = _seen(message)
    if isinstance(message, intake_events.CaseRegistered):
        types = tuple(t.value for n in message.case_types if (t := from_pb(CaseType, types_pb2.CaseType, n)))
        return commands.RecordCase(
            _at(seen, message, "registered_at"), message.case_id, types, message.is_child, message.emergency,
            _reportable(message),
            handling_line=message.handling_line or message.reported_in_province_code or message.province_code,
            sex=_code(message, "sex"), age_band=_age_band(message.age_band), disability=_code(message, "disability"),
            imported=message.imported)
    if isinstance(message, intake_events.RiskUpdated | intake_events.NeedAdded) and message.emergency:
        return commands.RecordEmergency(seen, message.case_id)
    if isinstance(message, intake_events.CaseClosed):
        return commands.RecordCaseClosed(_at(seen, message, "closed_at"), message.case_id)
    if isinstance(message, intake_events.CaseErased):
        return commands.ForgetCase(seen, message.case_id)
    if isinstance(message, intake_events.CallLogged):
        if message.HasField("started_at"):
            seen = commands.Seen(_time(message.started_at), seen.stream, seen.province_code)
        return commands.RecordCall(seen, message.call_id, _code(message, "topic"),
                                   message.handling_line or message.province_code, _code(message, "channel"),
                                   _code(message, "outcome"), message.imported)
    if isinstance(message, referral_events.ReferralRequested):
        service = from_pb(ServiceType, types_pb2.ServiceType, message.service_type)
        return commands.RecordReferralRequested(
            seen, message.referral_id, message.case_id, SECTOR_OF.get(service, "other") if service else "other",
            message.provider_id, message.emergency, from_pb(RiskLevel, types_pb2.RiskLevel, message.risk_level),
            _time(message.accept_by) if message.HasField("accept_by") else None,
            _time(message.start_by) if message.HasField("start_by") else None,
            message.provider_sector or "unknown")
    if isinstance(message, referral_events.ReferralStatusChanged):
        return commands.RecordReferralStatus(seen, message.referral_id, _status(message.to_status), message.reason)
    if isinstance(message, referral_events.ReferralEscalated):
        return commands.RecordReferralStatus(seen, message.referral_id, ESCALATED, message.reason)
    if isinstance(message, shelter_events.CapacityChanged):
        group = from_pb(TargetGroup, types_pb2.TargetGroup, message.target_group)
        return commands.RecordCapacity(seen, message.shelter_id, group.value if group else "any", message.capacity,
                                       message.reserved, message.occupied)
    if isinstance(message, shelter_events.BedReserved):
        return commands.RecordStay(seen, message.referral_id, message.case_id, message.shelter_id, "reserved")
    if isinstance(message, shelter_events.BedOccupied):
        return commands.RecordStay(seen, message.referral_id, "", message.shelter_id, "occupied")
    if isinstance(message, shelter_events.BedReleased | shelter_events.HoldExpired):
        return commands.RecordStay(seen, message.referral_id, "", message.shelter_id, "released")
    return commands.CountEvent(seen)


def dead_letter_record(dlq_topic: str, partition: int, offset: int, value: bytes) -> DeadLetterRecord:
    try:
        letter = DeadLetter.FromString(value)
    except DecodeError:  # kept and shown, so nothing on a dead-letter topic goes unseen
        letter = DeadLetter(error="unreadable: not a refnet.common.v1.DeadLetter")
    failed_at = _time(letter.failed_at) if letter.HasField("failed_at") else datetime.now(UTC)
    return DeadLetterRecord(
        dlq_topic=dlq_topic, dlq_partition=partition, dlq_offset=offset, consumer=letter.consumer,
        original_topic=letter.original_topic, original_partition=letter.original_partition,
        original_offset=letter.original_offset, original_key=letter.original_key,
        original_value=letter.original_value, error=letter.error, attempts=letter.attempts, failed_at=failed_at,
        event_id=letter.event_id, event_type=letter.event_type, traceparent=letter.traceparent)


# --- history for intake's ImportHistory (`refnet import`) ----------------------------------------------------


def _value(enum: Any, prefix: str, code: str) -> int:
    return int(enum.Value(f"{prefix}{code.upper()}")) if code and code != "unknown" else 0


def import_request(cases: list[HistoryCase], calls: list[HistoryCall]) -> intake_pb.ImportHistoryRequest:
    """Rows checked by ops.domain.history, as intake's ImportHistory takes them: codes and dates only."""
    request = intake_pb.ImportHistoryRequest()
    for case in cases:
        row = request.cases.add(
            idempotency_key=case.key, province_code=case.recorded_province_code, commune_code=case.commune_code,
            district_code=case.district_code, national_line=case.line == NATIONAL_LINE,
            case_types=[_value(types_pb2.CaseType, "CASE_TYPE_", t) for t in case.case_types],
            survivor=intake_pb.Survivor(is_child=case.is_child, age_band=case.age_band,
                                        sex=_value(types_pb2.Sex, "SEX_", case.sex),
                                        disability=_value(intake_types.Disability, "DISABILITY_", case.disability)),
            risk_level=_value(types_pb2.RiskLevel, "RISK_LEVEL_", case.risk), immediate_danger=case.emergency,
            reporting_consent=case.reporting_consent)
        row.registered_at.FromDatetime(case.at.astimezone(UTC))
        if case.line != NATIONAL_LINE and case.line != case.province_code:
            row.reported_in.province_code = case.line
        if case.closed_at is not None:
            row.closed_at.FromDatetime(case.closed_at.astimezone(UTC))
            row.close_outcome = _value(intake_types.CloseOutcome, "CLOSE_OUTCOME_", case.close_outcome)
    for call in calls:
        row = request.calls.add(
            idempotency_key=call.key, province_code=call.recorded_province_code, commune_code=call.commune_code,
            district_code=call.district_code,
            call=intake_pb.CallDetails(channel=_value(intake_types.CallChannel, "CALL_CHANNEL_", call.channel),
                                       topic=_value(intake_types.CallTopic, "CALL_TOPIC_", call.topic),
                                       duration_seconds=call.duration_seconds),
            outcome=_value(intake_types.CallOutcome, "CALL_OUTCOME_", call.outcome), case_key=call.case_key)
        row.call.started_at.FromDatetime(call.at.astimezone(UTC))
    return request
