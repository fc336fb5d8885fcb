"""Composition root: wires intake's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine

from intake.adapters.crypto import Vault, load_master_key, load_previous_keys
from intake.config import Settings
from intake.domain import commands
from intake.service_layer import casework, contacts, handlers, history
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.bus import MessageBus
from refnet_platform.clock import Clock, system_clock

# Every command and the handler it goes to; each handler is given the unit-of-work factory, and the clock
# unless it is a read (READS).
HANDLERS: dict[type, Callable[..., Any]] = {
    commands.LogCall: handlers.log_call,
    commands.RegisterCase: handlers.register_case,
    commands.GetCase: handlers.get_case,
    commands.AddNeed: handlers.add_need,
    commands.UpdateRisk: handlers.update_risk,
    commands.GiveConsent: handlers.give_consent,
    commands.WithdrawConsent: handlers.withdraw_consent,
    commands.OverrideConsent: handlers.override_consent,
    commands.CloseCase: handlers.close_case,
    commands.EraseCase: handlers.erase_case,
    commands.GetCaseContact: contacts.get_case_contact,
    commands.SetSmsPreference: contacts.set_sms_preference,
    commands.RecordReferral: handlers.record_referral,
    commands.RecordAssessment: casework.record_assessment,
    commands.RecordCasePlan: casework.record_case_plan,
    commands.AddFollowUp: casework.add_follow_up,
    commands.ReviewCase: casework.review_case,
    commands.ReassignCase: casework.reassign_case,
    commands.CompleteStep: casework.complete_step,
    commands.GetCaseFile: casework.get_case_file,
    commands.ListCases: casework.list_cases,
    commands.ExpireOverdueSteps: casework.expire_overdue_steps,
    commands.ImportHistory: history.import_history,
}
READS = frozenset({commands.GetCase, commands.ListCases})
# Those that open or move a child's steps are given the deadlines too (the settings' StepPolicy).
WITH_STEP_POLICY = frozenset({commands.RegisterCase, commands.UpdateRisk, commands.RecordAssessment,
                              commands.RecordCasePlan, commands.ReviewCase})


def make_vault(settings: Settings) -> Vault:
    """The current master key and the previous ones, from the settings (the api's and `intake-keys`')."""
    return Vault(load_master_key(settings.master_key, settings.master_key_file),
                 load_previous_keys(settings.previous_master_keys, settings.previous_master_keys_dir))


def bootstrap(settings: Settings, engine: Engine, vault: Vault | None = None,
              clock: Clock = system_clock, writing: threading.RLock | None = None) -> MessageBus:
    """clock: what the handlers take as now (a test passes its own). writing: the api's lock for its write
    transactions on SQLite (see IntakeUnitOfWork)."""
    vault = vault or make_vault(settings)
    schema = settings.database[1]

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(engine, vault, schema, writing)

    policy = settings.step_policy()

    def wired(command: type, handler: Callable[..., Any]) -> Callable[..., Any]:
        if command in READS:
            return partial(handler, uow=uow)
        if command in WITH_STEP_POLICY:
            return partial(handler, uow=uow, clock=clock, policy=policy)
        return partial(handler, uow=uow, clock=clock)

    return MessageBus({command: wired(command, handler) for command, handler in HANDLERS.items()})
