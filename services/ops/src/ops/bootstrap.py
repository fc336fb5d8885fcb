"""Composition root: wires ops' handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy import Engine

from ops.adapters.kafka import DeadLetterSource, Replayer
from ops.config import Settings
from ops.domain import commands
from ops.domain.model import SlaPolicy
from ops.service_layer import handlers
from ops.service_layer.unit_of_work import OpsUnitOfWork
from refnet_platform.bus import MessageBus


def sla_policy(settings: Settings) -> SlaPolicy:
    within = {key: timedelta(seconds=s) for key, s in settings.accept_within_s.items()}
    within.setdefault("medium", timedelta(hours=24))
    return SlaPolicy(within, timedelta(seconds=settings.start_within_s))


def bootstrap(settings: Settings, engine: Engine, source: handlers.DeadLetterSource | None = None,
              replayer: handlers.Replayer | None = None) -> MessageBus:
    schema = settings.database[1]
    policy = sla_policy(settings)
    # Kafka clients connect on first use, never here.
    source = source or DeadLetterSource(settings.kafka_bootstrap_servers)
    replayer = replayer or Replayer(settings.kafka_bootstrap_servers)

    def uow() -> OpsUnitOfWork:
        return OpsUnitOfWork(engine, schema)

    return MessageBus({
        commands.CountEvent: partial(handlers.count_event, uow=uow),
        commands.RecordCase: partial(handlers.record_case, uow=uow),
        commands.RecordEmergency: partial(handlers.record_emergency, uow=uow),
        commands.RecordCaseClosed: partial(handlers.record_case_closed, uow=uow),
        commands.ForgetCase: partial(handlers.forget_case, uow=uow),
        commands.RecordCall: partial(handlers.record_call, uow=uow),
        commands.RecordReferralRequested: partial(handlers.record_referral_requested, uow=uow, policy=policy),
        commands.RecordReferralStatus: partial(handlers.record_referral_status, uow=uow),
        commands.RecordCapacity: partial(handlers.record_capacity, uow=uow),
        commands.RecordStay: partial(handlers.record_stay, uow=uow),
        commands.StoreSpans: partial(handlers.store_spans, uow=uow),
        commands.PruneSpans: partial(handlers.prune_spans, uow=uow),
        commands.GetTrace: partial(handlers.get_trace, uow=uow),
        commands.CollectDeadLetters: partial(handlers.collect_dead_letters, uow=uow, source=source),
        commands.ListDeadLetters: partial(handlers.list_dead_letters, uow=uow),
        commands.PendingDeadLetters: partial(handlers.pending_dead_letters, uow=uow),
        commands.ReplayDeadLetter: partial(handlers.replay_dead_letter, uow=uow, replayer=replayer),
        commands.ListOverdue: partial(handlers.list_overdue, uow=uow, policy=policy),
        commands.ListEscalations: partial(handlers.list_escalations, uow=uow),
        commands.ProvinceSummary: partial(handlers.province_summary, uow=uow, policy=policy),
        commands.Throughput: partial(handlers.throughput, uow=uow),
        commands.BedsFree: partial(handlers.beds_free, uow=uow),
        commands.BuildReport: partial(handlers.report, uow=uow),
    })
