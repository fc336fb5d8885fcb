"""The load: RegisterCase requests like an operator's, sent over mTLS on an open-loop schedule."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_dev.network import Network

OPERATOR = "national-111-operator"  # a realm user: the bench spreads cases over several provinces
# Provinces of the demo directory, each with a police station, a hospital and a social work centre
# open around the clock, so every need routes to a provider.
PLACES = (("22", "06673"), ("42", "18100"), ("92", "31135"))
NEEDS = (t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_MEDICAL, t.SERVICE_TYPE_PSYCHOSOCIAL)


def case_request(n: int, emergency: bool = False, needs: tuple[int, ...] = NEEDS,
                 run: str = "") -> intake_pb.RegisterCaseRequest:
    """The n-th case of a run: provinces in turn, an adult woman, every need consented. Synthetic only."""
    province, commune = PLACES[n % len(PLACES)]
    return intake_pb.RegisterCaseRequest(
        client_request_id=f"bench-{run or uuid.uuid4().hex[:8]}-{n}",
        province_code=province, commune_code=commune, case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE],
        risk_level=t.RISK_LEVEL_HIGH if emergency else t.RISK_LEVEL_MEDIUM, immediate_danger=emergency,
        survivor=intake_pb.Survivor(age=30, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=s, consented=True) for s in needs],
        contact=intake_pb.Contact(name=f"bench survivor {n}", phone=f"09{n % 10**8:08d}"),
        case_worker_id=OPERATOR,
    )


# Reconnect within a second of an api coming back (gRPC's default backoff grows to two minutes).
RECONNECT = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
             ("grpc.max_reconnect_backoff_ms", 1000))


def aio_channel(network: Network, service: str, subject_id: str, role: str) -> grpc.aio.Channel:
    """Like Network.channel, for grpc.aio: many calls in flight on one connection."""
    return grpc.aio.secure_channel(network.address(service), network.credentials(subject_id, role),
                                   options=RECONNECT)


@dataclass
class Call:
    """One request: when it was due (monotonic), how long until the reply from then, and what came back."""

    index: int
    due: float
    sent_at: float  # wall clock, to compare with event timestamps
    late_ms: float = 0.0  # how far behind schedule the sender was: the load generator's own delay
    latency_ms: float | None = None
    case_id: str = ""
    error: str = ""


Send = Callable[[int, float], Coroutine[Any, Any, Call]]


async def open_loop(send: Send, rate: float, duration_s: float, until: Callable[[], bool] | None = None,
                    on_tick: Callable[[int, int], object] | None = None) -> list[Call]:
    """Starts call i at start + i/rate whatever is still in flight (no coordinated omission: latency
    counts from when the call was due, so a late sender shows up as latency, not as a lower rate).
    Stops early once `until()` is true."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = max(1, round(rate * duration_s))
    tasks: list[asyncio.Task[Call]] = []
    for i in range(total):
        if until and until():
            break
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i, due)))
        if on_tick:
            on_tick(len(tasks), sum(1 for task in tasks if task.done()))
    return list(await asyncio.gather(*tasks))


async def closed_loop(send: Send, total: int, concurrency: int,
                      on_tick: Callable[[int], object] | None = None) -> list[Call]:
    """As fast as the API answers: `concurrency` callers, each sending its next request on the reply."""
    loop = asyncio.get_running_loop()
    calls: list[Call] = []
    counter = iter(range(total))

    async def caller() -> None:
        for i in counter:
            calls.append(await send(i, loop.time()))
            if on_tick:
                on_tick(len(calls))

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return calls


def register_sender(stub: intake_grpc.IntakeServiceStub, make: Callable[[int], intake_pb.RegisterCaseRequest],
                    timeout_s: float = 10) -> Send:
    async def send(i: int, due: float) -> Call:
        call = Call(i, due, time.time(), (asyncio.get_running_loop().time() - due) * 1000)
        try:
            reply = await stub.RegisterCase(make(i), timeout=timeout_s)
            call.case_id = reply.case.case_id
            call.latency_ms = (asyncio.get_running_loop().time() - due) * 1000
        except grpc.aio.AioRpcError as exc:
            call.error = exc.code().name
        return call

    return send


def health_sender(stub: health_pb2_grpc.HealthStub, timeout_s: float = 10) -> Send:
    """The gRPC floor: Health/Check on the same api over the same mTLS connection (no handler, no DB)."""
    async def send(i: int, due: float) -> Call:
        call = Call(i, due, time.time(), (asyncio.get_running_loop().time() - due) * 1000)
        try:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
            call.latency_ms = (asyncio.get_running_loop().time() - due) * 1000
        except grpc.aio.AioRpcError as exc:
            call.error = exc.code().name
        return call

    return send
