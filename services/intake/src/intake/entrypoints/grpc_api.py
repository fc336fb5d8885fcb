from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from sqlalchemy import Engine

from intake.adapters import proto_mapping
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import intake_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_api


class IntakeServicer(pb_grpc.IntakeServiceServicer):
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def RegisterCase(self, request: pb.RegisterCaseRequest, context: grpc.aio.ServicerContext
                           ) -> pb.RegisterCaseResponse:
        command = proto_mapping.register_case_command(request)
        case, created = await asyncio.to_thread(self.bus.handle, command)
        return pb.RegisterCaseResponse(case=proto_mapping.case_to_pb(case), created=created)

    async def GetCase(self, request: pb.GetCaseRequest, context: grpc.aio.ServicerContext) -> pb.GetCaseResponse:
        case = await asyncio.to_thread(self.bus.handle, commands.GetCase(request.case_id))
        return pb.GetCaseResponse(case=proto_mapping.case_to_pb(case))


def main() -> None:
    settings = Settings()

    def register(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        pb_grpc.add_IntakeServiceServicer_to_server(IntakeServicer(bootstrap(settings, engine)), server)
        return [pb.DESCRIPTOR.services_by_name["IntakeService"].full_name]

    run_api(settings, MIGRATIONS, register)
