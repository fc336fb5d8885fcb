"""Composition root: wires notifications' handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from notifications.config import Settings
from notifications.domain import commands
from notifications.service_layer import handlers
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet_platform.bus import MessageBus


def bootstrap(settings: Settings, engine: Engine) -> MessageBus:
    schema = settings.database[1]

    def uow() -> NotificationsUnitOfWork:
        return NotificationsUnitOfWork(engine, schema)

    return MessageBus({
        commands.NotifyReferralEvent: partial(handlers.notify_referral_event, uow=uow),
        commands.ListNotices: partial(handlers.list_notices, uow=uow),
    })
