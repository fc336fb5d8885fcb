"""The operator's case page, live: the case's referrals (escalations first, provider names, the bed held), its
notices, and the server-sent events that tell operator.js when to fetch them again.

The events stream (`/cases/<id>/events`) is fed two ways: the person's own WatchNotices for the case (a notice
about the case wakes it at once) and a re-read of ListReferrals every POLL_S seconds (a referral's change that
brings no notice to this person, e.g. a supervisor watching another worker's case). Each event carries the
referral list's fingerprint and the newest notice's sequence; the page fetches the list's HTML when either
moved. A stream ends after STREAM_S (the browser reconnects at once), so the person's token is refreshed by
the sign-in gate like any page's, and an ended session stops the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import StreamingResponse

from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from web.adapters.apis import problem_of
from web.entrypoints.pages.common import AppContext

POLL_S = 1.0
STREAM_S = 50.0
KEEP_ALIVE_S = 15.0
PROVIDER_TTL_S = 300.0
NOTICES_SHOWN = 10
CACHE_KEY = "operator.provider_names"
# Shown first: what needs a person now (escalated, expired, no one found), then the rest.
FIRST = (referral_pb.REFERRAL_STATUS_ESCALATED, referral_pb.REFERRAL_STATUS_EXPIRED,
         referral_pb.REFERRAL_STATUS_FAILED, referral_pb.REFERRAL_STATUS_REJECTED)
HOLDING_BED = (referral_pb.REFERRAL_STATUS_REQUESTED, referral_pb.REFERRAL_STATUS_ACCEPTED,
               referral_pb.REFERRAL_STATUS_IN_SERVICE)


async def provider_names(ctx: AppContext, tok: str, ids: Iterable[str]) -> dict[str, str]:
    """Providers' names by id (GetProvider), cached for the process a few minutes: the directory is slow to
    change, and the names are public."""
    cache: dict[str, tuple[str, float]] = ctx.extra.setdefault(CACHE_KEY, {})
    now = time.monotonic()
    wanted = {i for i in ids if i}
    missing = [i for i in wanted if i not in cache or cache[i][1] < now]
    if missing:
        directory = ctx.apis.directory(tok)

        async def one(provider_id: str) -> None:
            try:
                reply = await directory.GetProvider(referral_pb.GetProviderRequest(provider_id=provider_id))
            except grpc.RpcError:
                return
            cache[provider_id] = (reply.provider.name or provider_id, now + PROVIDER_TTL_S)

        await asyncio.gather(*(one(i) for i in missing))
    return {i: cache[i][0] for i in wanted if i in cache}


def ordered(referrals: Iterable[Any]) -> list[Any]:
    """Escalations (and what else fell through) first, then emergencies, then oldest first."""
    return sorted(referrals, key=lambda r: (r.status not in FIRST, not r.emergency, r.requested_at.seconds,
                                            r.attempt))


def fingerprint(referrals: Iterable[Any]) -> str:
    text = "|".join(sorted(f"{r.referral_id}:{r.version}:{r.status}" for r in referrals))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def referral_view(ctx: AppContext, tok: str, case_id: str) -> dict[str, Any]:
    """What the referral list shows: the referrals in order, providers' names, the bed held, the newest
    notices; its fingerprint. Raises grpc.RpcError when ListReferrals is refused (the page shows it)."""
    reply = await ctx.apis.referral(tok).ListReferrals(
        referral_pb.ListReferralsRequest(case_id=case_id, page_size=500))
    referrals = ordered(reply.referrals)
    notices: list[Any] = []
    try:
        listed = await ctx.apis.notifications(tok).ListNotices(
            notifications_pb.ListNoticesRequest(case_id=case_id, page_size=NOTICES_SHOWN))
        notices = list(listed.notices)
    except grpc.RpcError:
        pass  # the notices are a help: the referrals are what the page is for
    names = await provider_names(ctx, tok, {r.provider_id for r in referrals})
    return {"referrals": referrals, "names": names, "notices": notices, "fingerprint": fingerprint(referrals),
            "notice_sequence": max((n.sequence for n in notices), default=0), "holding_bed": HOLDING_BED,
            "first": FIRST}


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def case_events(ctx: AppContext, request: Request, tok: str, case_id: str) -> StreamingResponse:
    """text/event-stream: `referrals` events ({"referrals": fingerprint, "notice": newest sequence}) whenever
    either changes (the first at once), `problem` when an api refuses, a comment now and then to keep proxies
    from closing it."""

    async def stream() -> AsyncIterator[str]:
        wake = asyncio.Event()
        newest = {"notice": 0}

        async def watch() -> None:
            try:
                call = ctx.apis.notifications(tok).WatchNotices(notifications_pb.WatchNoticesRequest(case_id=case_id))
                async for item in call:
                    newest["notice"] = max(newest["notice"], item.notice.sequence)
                    wake.set()
            except grpc.RpcError:
                pass  # no feed for this person: the poll below still carries every change

        watcher = asyncio.create_task(watch())
        try:
            yield "retry: 1000\n\n"
            last = ""
            quiet_since = time.monotonic()
            ends = time.monotonic() + STREAM_S
            while time.monotonic() < ends:
                wake.clear()
                try:
                    reply = await ctx.apis.referral(tok).ListReferrals(
                        referral_pb.ListReferralsRequest(case_id=case_id, page_size=500))
                    state = {"referrals": fingerprint(reply.referrals), "notice": newest["notice"]}
                    key = json.dumps(state, sort_keys=True)
                    if key != last:
                        last = key
                        quiet_since = time.monotonic()
                        yield event("referrals", state)
                except grpc.RpcError as exc:
                    found = problem_of(exc)
                    yield event("problem", {"status": found.status, "vi": found.message_vi, "en": found.message_en})
                    if not found.retry:
                        return
                if time.monotonic() - quiet_since > KEEP_ALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_S)
        finally:
            watcher.cancel()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
