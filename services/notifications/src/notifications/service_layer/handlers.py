from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from notifications.domain import commands, events
from notifications.domain.notices import Notice
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet_platform.envelope import new_event_id

log = logging.getLogger(__name__)

UowFactory = Callable[[], NotificationsUnitOfWork]
IN_APP = "in_app"


def notify_referral_event(cmd: commands.NotifyReferralEvent, uow: UowFactory) -> list[Notice]:
    """A new referral tells the provider; every status change tells the referring case worker."""
    if cmd.kind == "requested":
        recipient = cmd.provider_id
        urgency = "KHẨN CẤP / EMERGENCY" if cmd.emergency else "new"
        subject = f"Referral {cmd.referral_id[-8:]}: {cmd.service_type} ({urgency})"
        body = f"A {cmd.service_type} referral is assigned to you. Accept it in the refnet partner API."
    else:
        recipient = cmd.case_worker_id
        subject = f"Referral {cmd.referral_id[-8:]} is now {cmd.kind}"
        body = f"Referral {cmd.referral_id} is now {cmd.kind}" + (f" ({cmd.reason})." if cmd.reason else ".")
    if not recipient:
        return []
    sent: list[Notice] = []
    with uow() as work:
        if not work.notices.exists(cmd.source_event_id, recipient, IN_APP):
            notice = Notice(notice_id=new_event_id(), source_event_id=cmd.source_event_id, recipient_id=recipient,
                            channel=IN_APP, subject=subject, body=body, referral_id=cmd.referral_id,
                            case_id=cmd.case_id, province_code=cmd.province_code, status="sent",
                            created_at=datetime.now(UTC))
            work.notices.add(notice)
            work.emit(events.NotificationSent(notice))
            sent.append(notice)
        work.commit()
    for notice in sent:
        log.info("notice sent", extra={"fields": {"notice_id": notice.notice_id, "referral_id": notice.referral_id}})
    return sent


def list_notices(cmd: commands.ListNotices, uow: UowFactory) -> list[Notice]:
    with uow() as work:
        return work.notices.for_recipient(cmd.recipient_id, cmd.case_id)
