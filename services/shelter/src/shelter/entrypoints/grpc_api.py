from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
from sqlalchemy import Engine

from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.clock import Clock, system_clock
from refnet_platform.identity import caller_of
from refnet_platform.runtime import run_api
from shelter.adapters import proto_mapping
from shelter.adapters.bed_feed import BedEventFeed
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands
from shelter.service_layer import watch
from shelter.service_layer.watch import AvailabilityHub, FeedUnavailable, FellBehind


class ShelterServicer(pb_grpc.ShelterServiceServicer):
    def __init__(self, bus: MessageBus, hub: AvailabilityHub, settings: Settings, clock: Clock = system_clock
                 ) -> None:
        self.bus = bus
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self.feed: asyncio.Task[None] | None = None  # kept here so the running task is not collected

    async def ListAvailability(self, request: pb.ListAvailabilityRequest, context: grpc.aio.ServicerContext
                               ) -> pb.ListAvailabilityResponse:
        command = proto_mapping.list_availability_command(request, caller_of(context))
        found = await asyncio.to_thread(self.bus.handle, command)
        return pb.ListAvailabilityResponse(availability=[proto_mapping.availability_to_pb(a) for a in found.rows],
                                           neighbours_included=found.neighbours_included)

    async def UpdateAvailability(self, request: pb.UpdateAvailabilityRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.UpdateAvailabilityResponse:
        command = proto_mapping.update_availability_command(request, caller_of(context))
        updated = await asyncio.to_thread(self.bus.handle, command)
        return pb.UpdateAvailabilityResponse(availability=proto_mapping.availability_to_pb(updated))

    async def GetShelter(self, request: pb.GetShelterRequest, context: grpc.aio.ServicerContext
                         ) -> pb.GetShelterResponse:
        command = commands.GetShelter(caller_of(context), request.shelter_id)
        shelter, pools = await asyncio.to_thread(self.bus.handle, command)
        return pb.GetShelterResponse(shelter=proto_mapping.shelter_to_pb(shelter, pools))

    async def ListReservations(self, request: pb.ListReservationsRequest, context: grpc.aio.ServicerContext
                               ) -> pb.ListReservationsResponse:
        command = commands.ListReservations(caller_of(context), request.shelter_id)
        found = await asyncio.to_thread(self.bus.handle, command)
        return pb.ListReservationsResponse(reservations=[proto_mapping.reservation_to_pb(r) for r in found])

    async def ConfirmArrival(self, request: pb.ConfirmArrivalRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ConfirmArrivalResponse:
        command = commands.ConfirmArrival(caller_of(context), request.referral_id)
        reservation = await asyncio.to_thread(self.bus.handle, command)
        return pb.ConfirmArrivalResponse(reservation=proto_mapping.reservation_to_pb(reservation))

    async def CheckOut(self, request: pb.CheckOutRequest, context: grpc.aio.ServicerContext) -> pb.CheckOutResponse:
        reservation = await asyncio.to_thread(self.bus.handle, commands.CheckOut(caller_of(context),
                                                                                 request.referral_id))
        return pb.CheckOutResponse(reservation=proto_mapping.reservation_to_pb(reservation))

    async def ReportBySms(self, request: pb.ReportBySmsRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ReportBySmsResponse:
        report = await asyncio.to_thread(self.bus.handle,
                                         proto_mapping.report_by_sms_command(request, caller_of(context)))
        return proto_mapping.sms_report_to_pb(report)

    async def WatchAvailability(self, request: pb.WatchAvailabilityRequest, context: grpc.aio.ServicerContext
                                ) -> AsyncIterator[pb.WatchAvailabilityResponse]:
        stream = watch.watch(self.bus, self.hub, proto_mapping.watch_command(request, caller_of(context)),
                             self.settings.stale_after, self.settings.watch_connect_timeout_s, self.clock)
        try:
            async for snapshot, rows in stream:
                yield pb.WatchAvailabilityResponse(availability=[proto_mapping.availability_to_pb(a) for a in rows],
                                                   snapshot=snapshot)
        except FeedUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except FellBehind as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        finally:
            await stream.aclose()


def add_shelter_service(server: grpc.aio.Server, settings: Settings, engine: Engine,
                        clock: Clock = system_clock) -> ShelterServicer:
    """Wires the servicer and starts its bed-event feed on the running loop (it stops with the loop)."""
    bus = bootstrap(settings, engine, clock)
    if settings.directory_file:
        bus.handle(proto_mapping.load_directory_file(settings.directory_file, clock()))
    hub = AvailabilityHub(settings.watch_max_pending)
    servicer = ShelterServicer(bus, hub, settings, clock)
    servicer.feed = asyncio.get_running_loop().create_task(
        BedEventFeed(settings.kafka_bootstrap_servers, hub).run(), name="bed-event-feed")
    pb_grpc.add_ShelterServiceServicer_to_server(servicer, server)
    return servicer


def main() -> None:
    settings = Settings()

    def register(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        add_shelter_service(server, settings, engine)
        return [pb.DESCRIPTOR.services_by_name["ShelterService"].full_name]

    run_api(settings, MIGRATIONS, register)
