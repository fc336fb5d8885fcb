"""Composition root: wires referral's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine

from referral.adapters.directory import DirectoryCache
from referral.adapters.intake_client import IntakeContacts, NoContacts
from referral.config import Settings
from referral.domain import commands
from referral.service_layer import queries
from referral.service_layer.handlers import beds, cases, directory, escalations, lifecycle
from referral.service_layer.handlers.common import Policy
from referral.service_layer.queries import ContactReader
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

    directory_cache = DirectoryCache()  # the process's copy of the directory, shared by its units of work

    def uow() -> ReferralUnitOfWork:
        return ReferralUnitOfWork(engine, schema, directory_cache)

    changes: dict[type, Callable[..., Any]] = {
        commands.RouteCase: cases.route_case,
        commands.AddNeed: cases.add_need,
        commands.UpdateRisk: cases.update_risk,
        commands.GiveConsent: cases.give_consent,
        commands.WithdrawConsent: cases.withdraw_consent,
        commands.CloseCase: cases.close_case,
        commands.NoteAccessibility: cases.note_accessibility,
        commands.ReassignCaseWorker: cases.reassign_case_worker,
        commands.EraseCase: cases.erase_case,
        commands.RecordBedReserved: beds.record_bed_reserved,
        commands.RecordBedRejected: beds.record_bed_rejected,
        commands.RecordHoldExpired: beds.record_hold_expired,
        commands.RecordBedReleased: beds.record_bed_released,
        commands.RecordBedOccupied: beds.record_bed_occupied,
        commands.RecordCapacity: beds.record_capacity,
        commands.ExpireOverdue: escalations.expire_overdue,
        commands.AssignProvider: escalations.assign_provider,
        commands.AcceptReferral: lifecycle.accept_referral,
        commands.DeclineReferral: lifecycle.decline_referral,
        commands.StartService: lifecycle.start_service,
        commands.ReportProgress: lifecycle.report_progress,
        commands.CompleteReferral: lifecycle.complete_referral,
        commands.ReportFailure: lifecycle.report_failure,
        commands.LoadDirectory: directory.load_directory,
        commands.AnswerBySms: lifecycle.answer_by_sms,
    }
    # What only reads: the directory's views take the clock (open now?), the referral lists do not.
    reads_with_policy: dict[type, Callable[..., Any]] = {
        commands.ListProviders: queries.list_providers,
        commands.GetProvider: queries.get_provider,
        commands.RankProviders: queries.rank_for,
        commands.ExportDirectory: queries.export_directory,
    }
    reads: dict[type, Callable[..., Any]] = {
        commands.ListReferrals: queries.list_referrals,
        commands.ChangedReferrals: queries.changed_referrals,
        commands.GetReferral: queries.get_referral,
        commands.ListEscalations: queries.list_escalations,
    }
    with_policy = {**changes, **reads_with_policy}
    return MessageBus({
        **{command: partial(handler, uow=uow, policy=policy) for command, handler in with_policy.items()},
        **{command: partial(handler, uow=uow) for command, handler in reads.items()},
        commands.GetSurvivorContact: partial(queries.get_survivor_contact, uow=uow, policy=policy,
                                             contacts=contacts),
    })
