"""The platform's gRPC interceptors over a real socket: calls are counted by method and final status code,
and request bytes that are not the method's message are refused with INVALID_ARGUMENT naming the message
type, on unary and server-streaming methods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from refnet_platform import metrics
from refnet_platform.grpc_server import DomainErrorInterceptor, GrpcMetricsInterceptor

pytestmark = pytest.mark.integration

TRUNCATED = b"\x0a\x05ab"  # a string field announcing 5 bytes, 2 sent


@asynccontextmanager
async def serving_health() -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a serving health servicer behind the interceptors serve() installs (the metrics one
    outside the error mapping, so it counts final status codes)."""
    server = grpc.aio.server(interceptors=[GrpcMetricsInterceptor(), DomainErrorInterceptor()])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


async def test_malformed_request_bytes_get_invalid_argument_naming_the_message() -> None:
    check, watch = "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"
    before = metrics.GRPC_REQUESTS.labels(check, "INVALID_ARGUMENT")._value.get()
    async with serving_health() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await channel.unary_unary(check)(TRUNCATED, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as stream:
            async for _ in channel.unary_stream(watch)(b"\xff" * 8, timeout=10):
                pass
        # A well-formed request still reaches the servicer.
        reply = await channel.unary_unary(check)(health_pb2.HealthCheckRequest().SerializeToString(), timeout=10)
    for refused in (unary.value, stream.value):
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused
        assert refused.details() == "request: not a valid grpc.health.v1.HealthCheckRequest message"
    assert health_pb2.HealthCheckResponse.FromString(reply).status == health_pb2.HealthCheckResponse.SERVING
    assert metrics.GRPC_REQUESTS.labels(check, "INVALID_ARGUMENT")._value.get() == before + 1


async def test_grpc_calls_are_counted_by_method_and_final_status_code() -> None:
    method = "/grpc.health.v1.Health/Check"
    before_ok = metrics.GRPC_REQUESTS.labels(method, "OK")._value.get()
    before_missing = metrics.GRPC_REQUESTS.labels(method, "NOT_FOUND")._value.get()
    async with serving_health() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest())
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert metrics.GRPC_REQUESTS.labels(method, "OK")._value.get() == before_ok + 1
    assert metrics.GRPC_REQUESTS.labels(method, "NOT_FOUND")._value.get() == before_missing + 1
