"""Composition root: wires referral's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine

from referral.adapters.intake_client import IntakeContacts, NoContacts
from referral.adapters.repository import DirectoryCache
from referral.config import Settings
from referral.domain import commands
from referral.service_layer import handlers
from referral.service_layer.handlers import ContactReader, Policy
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.bus import MessageBus
from refnet_platform.clock import Clock, system_clock


def intake_contacts(settings: Settings) -> ContactReader:
    if settings.intake_client_cert and settings.intake_client_key:
        ca = settings.intake_ca_file or (settings.tls_cert_dir / "ca.pem" if settings.tls_cert_dir else None)
        if ca is None:
            raise SystemExit("referral: set REFERRAL_INTAKE_CA_FILE or REFERRAL_TLS_CERT_DIR to reach intake")
        return IntakeContacts.from_files(settings.intake_address, ca, settings.intake_client_cert,
                                         settings.intake_client_key)
    if settings.allow_plaintext:
        return IntakeContacts(settings.intake_address, None)
    return NoContacts()


def bootstrap(settings: Settings, engine: Engine, policy: Policy | None = None,
              contacts: ContactReader | None = None, clock: Clock = system_clock) -> MessageBus:
    """clock: what the handlers take as now, through the policy (the policy's own when a policy is given)."""
    schema = settings.database[1]
    policy = policy or Policy(settings.sla_policy(), timedelta(minutes=settings.bed_hold_minutes), clock)
    contacts = contacts or intake_contacts(settings)

    directory = DirectoryCache()  # the process's copy of the directory, shared by its units of work

    def uow() -> ReferralUnitOfWork:
        return ReferralUnitOfWork(engine, schema, directory)

    with_policy: dict[type, Callable[..., Any]] = {
        commands.RouteCase: handlers.route_case,
        commands.AddNeed: handlers.add_need,
        commands.UpdateRisk: handlers.update_risk,
        commands.GiveConsent: handlers.give_consent,
        commands.WithdrawConsent: handlers.withdraw_consent,
        commands.CloseCase: handlers.close_case,
        commands.EraseCase: handlers.erase_case,
        commands.RecordBedReserved: handlers.record_bed_reserved,
        commands.RecordBedRejected: handlers.record_bed_rejected,
        commands.RecordHoldExpired: handlers.record_hold_expired,
        commands.RecordBedReleased: handlers.record_bed_released,
        commands.RecordBedOccupied: handlers.record_bed_occupied,
        commands.RecordCapacity: handlers.record_capacity,
        commands.ExpireOverdue: handlers.expire_overdue,
        commands.AcceptReferral: handlers.accept_referral,
        commands.DeclineReferral: handlers.decline_referral,
        commands.StartService: handlers.start_service,
        commands.ReportProgress: handlers.report_progress,
        commands.CompleteReferral: handlers.complete_referral,
        commands.ReportFailure: handlers.report_failure,
        commands.AssignProvider: handlers.assign_provider,
        commands.ListProviders: handlers.list_providers,
        commands.GetProvider: handlers.get_provider,
        commands.RankProviders: handlers.rank_for,
        commands.LoadDirectory: handlers.load_directory,
        commands.ExportDirectory: handlers.export_directory,
    }
    reads: dict[type, Callable[..., Any]] = {
        commands.ListReferrals: handlers.list_referrals,
        commands.ChangedReferrals: handlers.changed_referrals,
        commands.GetReferral: handlers.get_referral,
        commands.ListEscalations: handlers.list_escalations,
    }
    return MessageBus({
        **{command: partial(handler, uow=uow, policy=policy) for command, handler in with_policy.items()},
        **{command: partial(handler, uow=uow) for command, handler in reads.items()},
        commands.GetSurvivorContact: partial(handlers.get_survivor_contact, uow=uow, policy=policy,
                                             contacts=contacts),
    })
