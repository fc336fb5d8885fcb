from __future__ import annotations

from sqlalchemy import Connection, Engine

from refnet_platform.unit_of_work import UnitOfWork
from shelter.adapters.proto_mapping import event_to_record
from shelter.adapters.repository import ReservationRepository, ShelterRepository


class ShelterUnitOfWork(UnitOfWork):
    shelters: ShelterRepository
    reservations: ReservationRepository

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        super().__init__(engine, "shelter", schema)

    def open_repositories(self, connection: Connection) -> None:
        self.shelters = ShelterRepository(connection)
        self.reservations = ReservationRepository(connection)

    def emit(self, event: object) -> None:
        self.publish(event_to_record(event))
