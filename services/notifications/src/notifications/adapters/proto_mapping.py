"""The one module that maps notifications' protobuf messages to and from its domain."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from notifications.domain import commands, events
from notifications.domain.notices import Notice
from refnet.common.v1 import types_pb2
from refnet.notifications.v1 import events_pb2
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet_platform.context import current_causation
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.vocabulary import ServiceType, from_pb

DELIVERIES_TOPIC = "notifications.deliveries.v1"
CONSUMED_TYPES = TypeRegistry([referral_events])


def notice_to_pb(n: Notice) -> pb.Notice:
    created = Timestamp()
    created.FromDatetime(n.created_at)
    return pb.Notice(notice_id=n.notice_id, recipient_id=n.recipient_id, channel=n.channel, subject=n.subject,
                     body=n.body, referral_id=n.referral_id, case_id=n.case_id, created_at=created, status=n.status)


def event_to_record(event: object) -> OutgoingEvent:
    if isinstance(event, events.NotificationSent):
        n = event.notice
        message = events_pb2.NotificationSent(notice_id=n.notice_id, recipient_id=n.recipient_id, channel=n.channel,
                                              referral_id=n.referral_id, case_id=n.case_id,
                                              province_code=n.province_code, source_event_id=n.source_event_id)
        return OutgoingEvent(message, DELIVERIES_TOPIC, key=n.province_code, subject=f"notice/{n.notice_id}")
    raise TypeError(f"no record mapping for {type(event).__name__}")


def command_for(message: object) -> commands.NotifyReferralEvent | None:
    cause = current_causation.get()
    event_id = cause.causation_id if cause else ""
    if isinstance(message, referral_events.ReferralRequested):
        service = from_pb(ServiceType, types_pb2.ServiceType, message.service_type)
        return commands.NotifyReferralEvent(
            source_event_id=event_id, kind="requested", referral_id=message.referral_id, case_id=message.case_id,
            province_code=message.province_code, provider_id=message.provider_id,
            case_worker_id=message.case_worker_id, service_type=str(service or ""), emergency=message.emergency)
    if isinstance(message, referral_events.ReferralStatusChanged):
        status = referral_pb.ReferralStatus.Name(message.to_status).removeprefix("REFERRAL_STATUS_").lower()
        return commands.NotifyReferralEvent(
            source_event_id=event_id, kind=status, referral_id=message.referral_id, case_id=message.case_id,
            province_code=message.province_code, provider_id=message.provider_id,
            case_worker_id=message.case_worker_id, service_type="", emergency=False, reason=message.reason)
    return None
