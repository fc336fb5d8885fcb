"""The grpc.aio server every api process runs: health, reflection, tracing, graceful SIGTERM,
and the one place where domain errors become gRPC status codes."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import Token
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from refnet_platform import errors, metrics
from refnet_platform.context import Causation, current_causation
from refnet_platform.envelope import new_event_id
from refnet_platform.identity import Authenticator, current_caller
from refnet_platform.telemetry import context_from_traceparent, exporting, trace_id_hex

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# Requests larger than this are refused by gRPC itself, before any handler or database sees them.
MAX_MESSAGE_BYTES = 256 * 1024


def status_for(exc: errors.DomainError) -> grpc.StatusCode:
    for kind, code in STATUS_OF.items():
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    if isinstance(exc, errors.DomainError):
        await context.abort(status_for(exc), str(exc))
    trace_id = trace_id_hex()
    log.error("unexpected error", exc_info=exc, extra={"fields": {"method": method}})
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace {trace_id})")


# Open to any client holding a certificate of refnet's CA: probes and tooling, no refnet data.
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no stubs
    """An interceptor that wraps each method's handler (see wrap_calls) once it is resolved. grpc.aio asks the
    interceptors on every call; a method's wrapped handler is made once and kept (building the wrappers anew
    per call cost a registration a tenth of its CPU)."""

    def __init__(self) -> None:
        # method -> (the handler it was made from, the wrapped handler); only methods that resolved, so it is
        # bounded by the servicers' methods whatever names clients send.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        kept = self._wrapped.get(details.method)
        if kept is not None and kept[0] is handler:
            return kept[1]
        wrapped = self.wrap(handler, details.method)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError


class DomainErrorInterceptor(CallInterceptor):
    """Resolves the caller before any handler runs, maps domain errors to status codes, refuses
    request bytes that are not the method's message, and starts each call's causation chain."""

    def __init__(self, authenticator: Authenticator | None = None) -> None:
        super().__init__()
        self.authenticator = authenticator or Authenticator(None)

    async def _identify(self, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        auth = context.auth_context()
        caller = self.authenticator.known_caller(auth, metadata)
        if caller is None:  # a token not verified yet: its issuer's keys may have to be fetched, off the event loop
            caller = await asyncio.to_thread(self.authenticator.caller, auth, metadata)
        current_caller.set(caller)

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        identify: Callable[[grpc.aio.ServicerContext], Awaitable[None]] = (
            _nothing if method.startswith(UNAUTHENTICATED_PREFIXES) else self._identify)

        @asynccontextmanager
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            _start_causation()
            trace_token = None if exporting() else _carry_trace(context)
            try:
                await identify(context)
                if request is _MALFORMED:
                    raise _malformed(handler)
                yield
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)
            finally:
                if trace_token is not None:
                    otel_context.detach(trace_token)

        return wrap_calls(handler, guarded, request_deserializer=_tolerant(handler.request_deserializer))


class GrpcMetricsInterceptor(CallInterceptor):
    """Counts every call by method and final status code, and times it."""

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        @asynccontextmanager
        async def timed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            started = time.perf_counter()
            try:
                yield
            finally:
                code = context.code()
                metrics.grpc_call_done(method, code.name if isinstance(code, grpc.StatusCode)
                                       else "OK" if code in (None, 0) else str(code), started)

        return wrap_calls(handler, timed)


# Runs around each call of a behaviour: what to do before and after it, and with what it raised.
Around = Callable[[Any, grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]


def wrap_calls(handler: grpc.RpcMethodHandler, around: Around, **changes: Any) -> grpc.RpcMethodHandler:
    """The interceptors' one wrapper: `handler` with each call of its unary-unary or unary-stream behaviour run
    inside `around(request, context)` (any other kind of handler as it is). `changes`: more of the handler's
    fields to replace, e.g. its request deserializer."""
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(request, context):
                return await inner(request, context)
            return None  # `around` swallowed the error: only after aborting, which raises

        return handler._replace(unary_unary=unary, **changes)
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with around(request, context):
                async for item in inner_stream(request, context):
                    yield item

        return handler._replace(unary_stream=stream, **changes)
    return handler


# grpc.aio deserializes the request before any behaviour runs and answers a parse failure with UNKNOWN
# ("Unexpected <class 'DecodeError'>..."); the tolerant deserializer hands the behaviour this marker instead.
_MALFORMED = object()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError:
            return _MALFORMED

    return deserialize


def _malformed(handler: grpc.RpcMethodHandler) -> errors.InvalidArgument:
    # The generated deserializer is the request class's FromString, which names the message type.
    descriptor = getattr(getattr(handler.request_deserializer, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else "request"
    return errors.InvalidArgument("request", f"not a valid {name} message")


async def _nothing(context: grpc.aio.ServicerContext) -> None:
    return None


_ids = RandomIdGenerator()


def _carry_trace(context: grpc.aio.ServicerContext) -> Token[otel_context.Context]:
    """With no exporter, the call's trace without OpenTelemetry's server interceptor (which makes a span per call
    that nobody would see, a twentieth of a registration's CPU): the caller's traceparent continued, or a new
    trace, as a span that records nothing, so the call's log lines and outbox rows carry its trace id as before.
    Returns the token to detach it with."""
    traceparent = next((v for k, v in context.invocation_metadata() or () if k == "traceparent"), None)
    carried = context_from_traceparent(traceparent if isinstance(traceparent, str) else None)
    parent = trace.get_current_span(carried).get_span_context()
    span = trace.NonRecordingSpan(trace.SpanContext(
        parent.trace_id if parent.is_valid else _ids.generate_trace_id(), _ids.generate_span_id(), is_remote=False,
        trace_flags=parent.trace_flags if parent.is_valid else trace.TraceFlags(trace.TraceFlags.DEFAULT)))
    return otel_context.attach(trace.set_span_in_context(span, carried))


def _start_causation() -> None:
    request_id = new_event_id()
    current_causation.set(Causation(correlation_id=request_id, causation_id=request_id))


Registrar = Callable[[grpc.aio.Server], Sequence[str]]


def freeze_startup_objects() -> None:
    """What start-up made (modules, the map, compiled statements, servicers, handlers) lives as long as the process:
    out of the collector's sight, a full collection no longer walks it all (~100k objects, a pause of 100-200 ms
    that a call or a batch holding SQLite's write lock waited out). Every api, worker and relay calls it once."""
    gc.collect()
    gc.freeze()


async def serve(address: str, register: Registrar, grace_s: float = 5.0,
                credentials: grpc.ServerCredentials | None = None,
                authenticator: Authenticator | None = None, stopping: asyncio.Event | None = None) -> None:
    """Runs until SIGTERM/SIGINT, or until `stopping` is set when given (a co-hosted api: the host process
    takes the signals). `register` adds the servicers and returns their full service names."""
    # A span per call only when spans go somewhere (otherwise the error mapping carries the trace on, see
    # _carry_trace). The metrics interceptor sits outside the error mapping, so it counts the final status code.
    tracing = [aio_server_interceptor()] if exporting() else []  # type: ignore[no-untyped-call]
    server = grpc.aio.server(
        interceptors=[*tracing, GrpcMetricsInterceptor(), DomainErrorInterceptor(authenticator)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    names = list(register(server))
    freeze_startup_objects()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("grpc server listening", extra={"fields": {"address": address, "port": port, "services": names}})

    if stopping is None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    log.info("grpc server stopped")
