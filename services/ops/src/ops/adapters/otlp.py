"""A standard OTLP/gRPC trace receiver (opentelemetry.proto.collector.trace.v1.TraceService/Export).

Only ids and routing facts are kept from each span's attributes: refnet.* (event, case and referral ids),
messaging.* and rpc.*, and db.system. SQL statements and anything else are dropped before storage, so no
personal data that a library might have put in a span can reach ops' database.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from ops.domain.model import SpanRecord

KEPT_PREFIXES = ("refnet.", "messaging.", "rpc.")
KEPT_KEYS = {"db.system"}


def kept(key: str) -> bool:
    return key.startswith(KEPT_PREFIXES) or key in KEPT_KEYS


def _value(v: AnyValue) -> str:
    kind = v.WhichOneof("value")
    return str(getattr(v, kind)) if kind in ("string_value", "bool_value", "int_value", "double_value") else ""


def span_records(request: trace_service_pb2.ExportTraceServiceRequest) -> list[SpanRecord]:
    records = []
    for resource_spans in request.resource_spans:
        service = next((a.value.string_value for a in resource_spans.resource.attributes
                        if a.key == "service.name"), "unknown")
        for scope in resource_spans.scope_spans:
            for s in scope.spans:
                records.append(SpanRecord(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                    service=service, name=s.name,
                    kind=trace_pb2.Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_").lower(),
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    status=trace_pb2.Status.StatusCode.Name(s.status.code).removeprefix("STATUS_CODE_").lower(),
                    attributes={a.key: _value(a.value) for a in s.attributes if kept(a.key)}))
    return records


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: Callable[[list[SpanRecord]], None]) -> None:
        self.store = store

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        records = span_records(request)
        if records:
            self.store(records)  # an exception becomes an error status: the exporter retries
        return trace_service_pb2.ExportTraceServiceResponse()


def serve_receiver(store: Callable[[list[SpanRecord]], None], host: str, port: int) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp"),
                         options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceReceiver(store), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound
