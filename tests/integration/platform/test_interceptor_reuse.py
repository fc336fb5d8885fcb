"""The interceptors wrap a method's handler once and reuse it on every call: each call is still resolved on its
own (its caller, its denial, its status code counted), whoever called the same method before."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from refnet_platform import errors, metrics
from refnet_platform.grpc_server import DomainErrorInterceptor, GrpcMetricsInterceptor
from refnet_platform.identity import caller_of, plaintext_metadata

pytestmark = pytest.mark.integration

METHOD = "/refnet.test.v1.Who/Am"


async def who_am_i(request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
    caller = caller_of(context)
    if caller.subject_id != "referral":  # as a handler's authorization check: decided per call, server-side
        raise errors.PermissionDenied(f"not for {caller.subject_id}")
    return StringValue(value=caller.subject_id)


async def test_each_call_of_a_reused_handler_is_resolved_and_denied_on_its_own() -> None:
    identify, count = DomainErrorInterceptor(), GrpcMetricsInterceptor()
    server = grpc.aio.server(interceptors=[count, identify])
    handler = grpc.unary_unary_rpc_method_handler(who_am_i, request_deserializer=StringValue.FromString,
                                                  response_serializer=StringValue.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("refnet.test.v1.Who", {"Am": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    denied_before = metrics.GRPC_REQUESTS.labels(METHOD, "PERMISSION_DENIED")._value.get()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD, request_serializer=StringValue.SerializeToString,
                                       response_deserializer=StringValue.FromString)
            for _ in range(3):
                reply = await call(StringValue(), metadata=plaintext_metadata("service", "referral"), timeout=10)
                assert reply.value == "referral"
                with pytest.raises(grpc.aio.AioRpcError) as denied:
                    await call(StringValue(), metadata=plaintext_metadata("service", "shelter"), timeout=10)
                assert (denied.value.code(), denied.value.details()) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                         "not for shelter")
                with pytest.raises(grpc.aio.AioRpcError) as nobody:
                    await call(StringValue(), timeout=10)
                assert nobody.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(None)
    assert metrics.GRPC_REQUESTS.labels(METHOD, "PERMISSION_DENIED")._value.get() == denied_before + 3
    # One wrapped handler per method, made on the first call and kept.
    assert list(identify._wrapped) == [METHOD] and list(count._wrapped) == [METHOD]
