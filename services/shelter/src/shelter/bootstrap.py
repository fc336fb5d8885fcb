"""Composition root: wires shelter's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from refnet_platform.bus import MessageBus
from shelter.config import Settings
from shelter.domain import commands
from shelter.service_layer import handlers
from shelter.service_layer.unit_of_work import ShelterUnitOfWork


def bootstrap(settings: Settings, engine: Engine) -> MessageBus:
    schema = settings.database[1]

    def uow() -> ShelterUnitOfWork:
        return ShelterUnitOfWork(engine, schema)

    return MessageBus({
        commands.ReserveBed: partial(handlers.reserve_bed, uow=uow),
        commands.UpdateAvailability: partial(handlers.update_availability, uow=uow),
        commands.ListAvailability: partial(handlers.list_availability, uow=uow),
        commands.LoadShelters: partial(handlers.load_shelters, uow=uow),
    })
