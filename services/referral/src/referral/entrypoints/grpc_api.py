from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from sqlalchemy import Engine

from referral.adapters import hsds, proto_mapping
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from referral.domain.model import Referral
from referral.service_layer.authorization import authorize
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.referral.v1 import referral_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.clock import Clock, system_clock
from refnet_platform.identity import caller_of
from refnet_platform.runtime import run_api

# A change commits with the time it was made, so a watcher re-reads this far back to catch a
# transaction that committed after a later one (and drops what it already sent by version).
WATCH_LOOKBACK = timedelta(seconds=5)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class ReferralServicer(pb_grpc.ReferralServiceServicer):
    def __init__(self, bus: MessageBus, watch_poll_interval_s: float = 1.0, clock: Clock = system_clock) -> None:
        self.bus = bus
        self.watch_poll_interval_s = watch_poll_interval_s
        self.clock = clock  # the bus's: changes are stamped by it, and a watch starts from it

    async def _handle(self, command: object) -> Any:
        return await asyncio.to_thread(self.bus.handle, command)

    async def ListReferrals(self, request: pb.ListReferralsRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListReferralsResponse:
        found, next_token = await self._handle(proto_mapping.list_command(request, caller_of(context)))
        return pb.ListReferralsResponse(referrals=[proto_mapping.referral_to_pb(r) for r in found],
                                        next_page_token=next_token)

    async def WatchReferrals(self, request: pb.WatchReferralsRequest, context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[pb.WatchReferralsResponse]:
        """Polls referral's own table, so every api replica serves every agency. A stream holds one batch
        and the versions it sent in the last few seconds, however slow its reader: gRPC's flow control
        stops the polling while the client is not reading, and it resumes from where it was."""
        caller = caller_of(context)
        started = self.clock()
        sent: dict[str, tuple[int, datetime]] = {}
        if request.include_open:
            async for r in self._changes(commands.ChangedReferrals(caller, EPOCH, open_only=True)):
                sent[r.referral_id] = (r.version, r.updated_at or started)
                yield pb.WatchReferralsResponse(referral=proto_mapping.referral_to_pb(r), snapshot=True)
        low = started - WATCH_LOOKBACK
        while not context.done():
            async for r in self._changes(commands.ChangedReferrals(caller, low)):
                if sent.get(r.referral_id, (0,))[0] < r.version:
                    sent[r.referral_id] = (r.version, r.updated_at or started)
                    yield pb.WatchReferralsResponse(referral=proto_mapping.referral_to_pb(r), snapshot=False)
            newest = max((at for _, at in sent.values()), default=low + WATCH_LOOKBACK)
            low = max(low, newest - WATCH_LOOKBACK)
            sent = {rid: seen for rid, seen in sent.items() if seen[1] >= low}
            await asyncio.sleep(self.watch_poll_interval_s)

    async def _changes(self, query: commands.ChangedReferrals) -> AsyncIterator[Referral]:
        """Every row of a ChangedReferrals query, a batch at a time."""
        while True:
            batch: list[Referral] = await self._handle(query)
            for r in batch:
                yield r
            if len(batch) < query.limit:
                return
            last = batch[-1]
            query = replace(query, since=last.updated_at or query.since, after_id=last.referral_id)

    async def GetReferral(self, request: pb.GetReferralRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GetReferralResponse:
        referral = await self._handle(commands.GetReferral(caller_of(context), request.referral_id))
        return pb.GetReferralResponse(referral=proto_mapping.referral_to_pb(referral))

    async def AcceptReferral(self, request: pb.AcceptReferralRequest, context: grpc.aio.ServicerContext
                             ) -> pb.AcceptReferralResponse:
        referral = await self._handle(commands.AcceptReferral(
            caller_of(context), request.referral_id, proto_mapping.client_request_id(request), request.provider_id))
        return pb.AcceptReferralResponse(referral=proto_mapping.referral_to_pb(referral))

    async def DeclineReferral(self, request: pb.DeclineReferralRequest, context: grpc.aio.ServicerContext
                              ) -> pb.DeclineReferralResponse:
        referral = await self._handle(proto_mapping.decline_command(request, caller_of(context)))
        return pb.DeclineReferralResponse(referral=proto_mapping.referral_to_pb(referral))

    async def AnswerBySms(self, request: pb.AnswerBySmsRequest, context: grpc.aio.ServicerContext
                          ) -> pb.AnswerBySmsResponse:
        answer = await self._handle(proto_mapping.answer_by_sms_command(request, caller_of(context)))
        return proto_mapping.sms_answer_to_pb(answer)

    async def StartService(self, request: pb.StartServiceRequest, context: grpc.aio.ServicerContext
                           ) -> pb.StartServiceResponse:
        referral = await self._handle(commands.StartService(caller_of(context), request.referral_id,
                                                            proto_mapping.client_request_id(request)))
        return pb.StartServiceResponse(referral=proto_mapping.referral_to_pb(referral))

    async def ReportProgress(self, request: pb.ReportProgressRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ReportProgressResponse:
        referral = await self._handle(proto_mapping.progress_command(request, caller_of(context)))
        return pb.ReportProgressResponse(referral=proto_mapping.referral_to_pb(referral))

    async def CompleteReferral(self, request: pb.CompleteReferralRequest, context: grpc.aio.ServicerContext
                               ) -> pb.CompleteReferralResponse:
        referral = await self._handle(proto_mapping.complete_command(request, caller_of(context)))
        return pb.CompleteReferralResponse(referral=proto_mapping.referral_to_pb(referral))

    async def ReportFailure(self, request: pb.ReportFailureRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ReportFailureResponse:
        referral = await self._handle(proto_mapping.failure_command(request, caller_of(context)))
        return pb.ReportFailureResponse(referral=proto_mapping.referral_to_pb(referral))

    async def GetSurvivorContact(self, request: pb.GetSurvivorContactRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.GetSurvivorContactResponse:
        contact = await self._handle(commands.GetSurvivorContact(caller_of(context), request.referral_id))
        return proto_mapping.contact_to_pb(contact)


class EscalationServicer(pb_grpc.EscalationServiceServicer):
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def ListEscalations(self, request: pb.ListEscalationsRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ListEscalationsResponse:
        command = commands.ListEscalations(caller_of(context), request.province_code, request.unresolved_only,
                                           request.page_size, request.page_token)
        found, next_token = await asyncio.to_thread(self.bus.handle, command)
        return pb.ListEscalationsResponse(
            escalations=[pb.Escalation(referral=proto_mapping.referral_to_pb(r),
                                       rerouted_referral_id=new.referral_id if new else "",
                                       rerouted_provider_id=new.provider_id if new else "") for r, new in found],
            next_page_token=next_token)

    async def AssignProvider(self, request: pb.AssignProviderRequest, context: grpc.aio.ServicerContext
                             ) -> pb.AssignProviderResponse:
        referral = await asyncio.to_thread(self.bus.handle, commands.AssignProvider(
            caller_of(context), request.referral_id, request.provider_id,
            proto_mapping.client_request_id(request)))
        return pb.AssignProviderResponse(referral=proto_mapping.referral_to_pb(referral))


class DirectoryServicer(pb_grpc.DirectoryServiceServicer):
    """Open to every refnet identity (see the authorization table): public contact points and bed figures only,
    nothing about a survivor. The commands carry no caller (the directory command line uses them too), so the
    role check is made here."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def ListProviders(self, request: pb.ListProvidersRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListProvidersResponse:
        authorize("ListProviders", caller_of(context))
        found = await asyncio.to_thread(self.bus.handle, proto_mapping.list_providers_command(request))
        return pb.ListProvidersResponse(providers=[proto_mapping.entry_to_pb(e) for e in found])

    async def GetProvider(self, request: pb.GetProviderRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GetProviderResponse:
        authorize("GetProvider", caller_of(context))
        entry = await asyncio.to_thread(self.bus.handle, commands.GetProvider(request.provider_id))
        return pb.GetProviderResponse(provider=proto_mapping.entry_to_pb(entry))

    async def RankProviders(self, request: pb.RankProvidersRequest, context: grpc.aio.ServicerContext
                            ) -> pb.RankProvidersResponse:
        authorize("RankProviders", caller_of(context))
        found = await asyncio.to_thread(self.bus.handle, proto_mapping.rank_command(request))
        return pb.RankProvidersResponse(providers=[
            pb.RankedProvider(provider=proto_mapping.entry_to_pb(e), area_rank=e.area_rank or 0) for e in found])


SERVICES = ("ReferralService", "EscalationService", "DirectoryService")


def register(bus: MessageBus, server: grpc.aio.Server, watch_poll_interval_s: float = 1.0,
             clock: Clock = system_clock) -> Sequence[str]:
    pb_grpc.add_ReferralServiceServicer_to_server(ReferralServicer(bus, watch_poll_interval_s, clock), server)
    pb_grpc.add_EscalationServiceServicer_to_server(EscalationServicer(bus), server)
    pb_grpc.add_DirectoryServiceServicer_to_server(DirectoryServicer(bus), server)
    return [pb.DESCRIPTOR.services_by_name[name].full_name for name in SERVICES]


def main() -> None:
    settings = Settings()

    def start(engine: Engine, server: grpc.aio.Server) -> Sequence[str]:
        bus = bootstrap(settings, engine)
        if settings.directory_file:
            bus.handle(commands.LoadDirectory(hsds.load_file(settings.directory_file),
                                              duty_phones=hsds.duty_phones(settings.directory_file)))
        return register(bus, server, settings.watch_poll_interval_s)

    run_api(settings, MIGRATIONS, start)
