from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from sqlalchemy import Engine

from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_api
from shelter.adapters import proto_mapping
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands


class ShelterServicer(pb_grpc.ShelterServiceServicer):
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def ListAvailability(self, request: pb.ListAvailabilityRequest, context: grpc.aio.ServicerContext
                               ) -> pb.ListAvailabilityResponse:
        found = await asyncio.to_thread(self.bus.handle, commands.ListAvailability(request.province_code))
        return pb.ListAvailabilityResponse(availability=[proto_mapping.availability_to_pb(s) for s in found])

    async def UpdateAvailability(self, request: pb.UpdateAvailabilityRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.UpdateAvailabilityResponse:
        shelter = await asyncio.to_thread(
            self.bus.handle, commands.UpdateAvailability(request.shelter_id, request.capacity))
        return pb.UpdateAvailabilityResponse(availability=proto_mapping.availability_to_pb(shelter))


def main() -> None:
    settings = Settings()

    def register(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        bus = bootstrap(settings, engine)
        if settings.directory_file:
            bus.handle(proto_mapping.load_directory_file(settings.directory_file))
        pb_grpc.add_ShelterServiceServicer_to_server(ShelterServicer(bus), server)
        return [pb.DESCRIPTOR.services_by_name["ShelterService"].full_name]

    run_api(settings, MIGRATIONS, register)
