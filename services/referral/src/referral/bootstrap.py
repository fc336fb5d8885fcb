"""Composition root: wires referral's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy import Engine

from referral.config import Settings
from referral.domain import commands
from referral.service_layer import handlers
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.bus import MessageBus


def bootstrap(settings: Settings, engine: Engine) -> MessageBus:
    schema = settings.database[1]

    def uow() -> ReferralUnitOfWork:
        return ReferralUnitOfWork(engine, schema)

    return MessageBus({
        commands.RouteCase: partial(handlers.route_case, uow=uow,
                                    bed_hold=timedelta(minutes=settings.bed_hold_minutes)),
        commands.RecordBedDecision: partial(handlers.record_bed_decision, uow=uow),
        commands.AcceptReferral: partial(handlers.accept_referral, uow=uow),
        commands.GetReferral: partial(handlers.get_referral, uow=uow),
        commands.ListReferrals: partial(handlers.list_referrals, uow=uow),
        commands.ListProviders: partial(handlers.list_providers, uow=uow),
        commands.LoadDirectory: partial(handlers.load_directory, uow=uow),
    })
