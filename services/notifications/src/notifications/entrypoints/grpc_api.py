from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from sqlalchemy import Engine

from notifications.adapters import proto_mapping
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_api


class NotificationsServicer(pb_grpc.NotificationsServiceServicer):
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def ListNotices(self, request: pb.ListNoticesRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListNoticesResponse:
        found = await asyncio.to_thread(self.bus.handle, commands.ListNotices(request.recipient_id, request.case_id))
        return pb.ListNoticesResponse(notices=[proto_mapping.notice_to_pb(n) for n in found])


def main() -> None:
    settings = Settings()

    def register(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        pb_grpc.add_NotificationsServiceServicer_to_server(NotificationsServicer(bootstrap(settings, engine)), server)
        return [pb.DESCRIPTOR.services_by_name["NotificationsService"].full_name]

    run_api(settings, MIGRATIONS, register)
