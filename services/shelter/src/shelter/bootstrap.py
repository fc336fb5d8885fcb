"""Composition root: wires shelter's handlers to real adapters (tests pass their own)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from refnet_platform.bus import MessageBus
from refnet_platform.clock import Clock, system_clock
from shelter.config import Settings
from shelter.domain import commands
from shelter.service_layer import handlers
from shelter.service_layer.unit_of_work import ShelterUnitOfWork


def bootstrap(settings: Settings, engine: Engine, clock: Clock = system_clock) -> MessageBus:
    """clock: what the handlers take as now (a test passes its own)."""
    schema = settings.database[1]

    def uow() -> ShelterUnitOfWork:
        return ShelterUnitOfWork(engine, schema)

    stale_after = settings.stale_after
    return MessageBus({
        commands.ReserveBed: partial(handlers.reserve_bed, uow=uow, default_hold=settings.default_hold, clock=clock),
        commands.ReleaseBed: partial(handlers.release_bed, uow=uow),
        commands.ExpireHolds: partial(handlers.expire_holds, uow=uow, clock=clock),
        commands.UpdateAvailability: partial(handlers.update_availability, uow=uow, stale_after=stale_after,
                                             clock=clock),
        commands.ConfirmArrival: partial(handlers.confirm_arrival, uow=uow),
        commands.CheckOut: partial(handlers.check_out, uow=uow),
        commands.ListReservations: partial(handlers.list_reservations, uow=uow),
        commands.GetShelter: partial(handlers.get_shelter, uow=uow, stale_after=stale_after, clock=clock),
        commands.ListAvailability: partial(handlers.list_availability, uow=uow, stale_after=stale_after,
                                           clock=clock),
        commands.WatchAvailability: handlers.watch_scope,
        commands.LoadShelters: partial(handlers.load_shelters, uow=uow),
        commands.ReportBySms: partial(handlers.report_by_sms, uow=uow, stale_after=stale_after, clock=clock),
    })
