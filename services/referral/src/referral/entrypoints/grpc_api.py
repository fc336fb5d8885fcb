from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from sqlalchemy import Engine

from referral.adapters import proto_mapping
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from refnet.common.v1 import types_pb2
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.referral.v1 import referral_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_api
from refnet_platform.vocabulary import ServiceType, from_pb


class ReferralServicer(pb_grpc.ReferralServiceServicer):
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def ListReferrals(self, request: pb.ListReferralsRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListReferralsResponse:
        found = await asyncio.to_thread(self.bus.handle, commands.ListReferrals(request.provider_id, request.case_id))
        return pb.ListReferralsResponse(referrals=[proto_mapping.referral_to_pb(r) for r in found])

    async def GetReferral(self, request: pb.GetReferralRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GetReferralResponse:
        referral = await asyncio.to_thread(self.bus.handle, commands.GetReferral(request.referral_id))
        return pb.GetReferralResponse(referral=proto_mapping.referral_to_pb(referral))

    async def AcceptReferral(self, request: pb.AcceptReferralRequest, context: grpc.aio.ServicerContext
                             ) -> pb.AcceptReferralResponse:
        referral = await asyncio.to_thread(
            self.bus.handle, commands.AcceptReferral(request.referral_id, request.provider_id))
        return pb.AcceptReferralResponse(referral=proto_mapping.referral_to_pb(referral))


class DirectoryServicer(pb_grpc.DirectoryServiceServicer):
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def ListProviders(self, request: pb.ListProvidersRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListProvidersResponse:
        service_type = from_pb(ServiceType, types_pb2.ServiceType, request.service_type)
        found = await asyncio.to_thread(self.bus.handle, commands.ListProviders(request.province_code, service_type))
        return pb.ListProvidersResponse(providers=[proto_mapping.provider_to_pb(p) for p in found])


def main() -> None:
    settings = Settings()

    def register(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        bus = bootstrap(settings, engine)
        if settings.directory_file:
            bus.handle(proto_mapping.load_directory_file(settings.directory_file))
        pb_grpc.add_ReferralServiceServicer_to_server(ReferralServicer(bus), server)
        pb_grpc.add_DirectoryServiceServicer_to_server(DirectoryServicer(bus), server)
        return [pb.DESCRIPTOR.services_by_name[name].full_name for name in ("ReferralService", "DirectoryService")]

    run_api(settings, MIGRATIONS, register)
