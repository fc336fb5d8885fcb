"""With no exporter an api makes no span per call (no OpenTelemetry server interceptor), yet each call still has its
trace: the caller's traceparent continued, or a new trace per call, so its log lines and outbox rows carry a trace
id as they did."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from refnet_platform import telemetry
from refnet_platform.grpc_server import DomainErrorInterceptor
from refnet_platform.identity import plaintext_metadata
from refnet_platform.telemetry import current_traceparent, trace_id_hex

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def traced(request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
    return StringValue(value=f"{trace_id_hex()} {current_traceparent()}")


async def test_a_call_without_an_exporter_carries_its_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)
    server = grpc.aio.server(interceptors=[DomainErrorInterceptor()])
    handler = grpc.unary_unary_rpc_method_handler(traced, request_deserializer=StringValue.FromString,
                                                  response_serializer=StringValue.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("refnet.test.v1.Trace", {"Id": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/refnet.test.v1.Trace/Id", request_serializer=StringValue.SerializeToString,
                                       response_deserializer=StringValue.FromString)
            machine = plaintext_metadata("service", "referral")
            continued = (await call(StringValue(), metadata=(*machine, ("traceparent", TRACEPARENT)))).value
            fresh = [(await call(StringValue(), metadata=machine)).value for _ in range(2)]
    finally:
        await server.stop(None)
    trace_id, traceparent = continued.split(" ")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    _, carried_trace, span_id, flags = traceparent.split("-")
    assert (carried_trace, flags) == (trace_id, "01") and span_id != "b7ad6b7169203331"  # a child of the caller's
    new_ids = [value.split(" ")[0] for value in fresh]
    assert all(len(i) == 32 and int(i, 16) for i in new_ids) and new_ids[0] != new_ids[1]  # a new trace per call
    assert [value.split(" ")[1].split("-")[1] for value in fresh] == new_ids  # what outbox rows carry
