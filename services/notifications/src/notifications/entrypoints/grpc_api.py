"""Notifications' gRPC API: the in-app feed. Servicers only map: the caller (resolved before any handler runs,
from a machine's certificate or a person's token) goes into each command and the handler decides what it may
see (service_layer/authorization.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import grpc
from sqlalchemy import Engine

from notifications.adapters import proto_mapping
from notifications.adapters.directory_file import load_directory_file
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.notices import FeedCursor, Notice
from notifications.service_layer.handlers import page_token
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.identity import caller_of
from refnet_platform.runtime import run_api

WATCH_PAGE = 200


class NotificationsServicer(pb_grpc.NotificationsServiceServicer):
    def __init__(self, bus: MessageBus, poll_interval_s: float = 0.5) -> None:
        self.bus = bus
        self.poll_interval_s = poll_interval_s

    async def ListNotices(self, request: pb.ListNoticesRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListNoticesResponse:
        command = commands.ListNotices(caller_of(context), request.recipient_id, request.case_id, request.page_size,
                                       request.before_sequence, request.page_token)
        found, next_before = await asyncio.to_thread(self.bus.handle, command)
        return pb.ListNoticesResponse(notices=[proto_mapping.notice_to_pb(n) for n in found],
                                      next_before_sequence=next_before, next_page_token=page_token(next_before))

    async def WatchNotices(self, request: pb.WatchNoticesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchNoticesResponse]:
        # Polls the database, so a stream on any api replica sees notices however they were recorded; it
        # holds one page and the cursor's few seconds of sequences, never the feed.
        caller = caller_of(context)

        def page(after: int | None) -> tuple[list[Notice], int]:
            command = commands.NoticesAfter(caller, request.recipient_id, request.case_id, after, WATCH_PAGE)
            return self.bus.handle(command)  # type: ignore[no-any-return]

        after = request.after_sequence
        if not after:  # only what arrives from now on
            _, after = await asyncio.to_thread(page, None)
        cursor = FeedCursor(after)
        while True:
            notices, _ = await asyncio.to_thread(page, cursor.low)
            for notice in cursor.take(notices, time.monotonic()):
                yield pb.WatchNoticesResponse(notice=proto_mapping.notice_to_pb(notice))
            await asyncio.sleep(self.poll_interval_s)


def main() -> None:
    settings = Settings()

    def register(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        bus = bootstrap(settings, engine)
        if settings.directory_file:
            bus.handle(load_directory_file(settings.directory_file))
        pb_grpc.add_NotificationsServiceServicer_to_server(
            NotificationsServicer(bus, settings.watch_poll_interval_s), server)
        return [pb.DESCRIPTOR.services_by_name["NotificationsService"].full_name]

    run_api(settings, MIGRATIONS, register)
