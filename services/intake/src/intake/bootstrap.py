"""Composition root: wires intake's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from intake.adapters.crypto import Vault, load_master_key
from intake.config import Settings
from intake.domain import commands
from intake.service_layer import handlers
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.bus import MessageBus


def bootstrap(settings: Settings, engine: Engine) -> MessageBus:
    vault = Vault(load_master_key(settings.master_key, settings.master_key_file))
    schema = settings.database[1]

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(engine, vault, schema)

    return MessageBus({
        commands.RegisterCase: partial(handlers.register_case, uow=uow),
        commands.GetCase: partial(handlers.get_case, uow=uow),
        commands.RecordReferral: partial(handlers.record_referral, uow=uow),
    })
