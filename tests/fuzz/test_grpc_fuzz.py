"""Fuzzing every gRPC method of every service over a real mutual-TLS socket.

Random but well-formed requests (built from each method's protobuf descriptor: unicode, empty and
long strings, out-of-range integers, unknown enum numbers) must get a clear answer: OK or a domain
status, INVALID_ARGUMENT naming the field. Raw garbage bytes sent to a method path never reach a
handler: bytes that do not parse as the method's message get INVALID_ARGUMENT naming the message type
(the platform's interceptor, instead of grpc.aio's own UNKNOWN), and a request over the 256 KiB limit
gets RESOURCE_EXHAUSTED from gRPC itself. After each method's barrage the server still answers its
health check.

Callers are who they would be in production: people (operators, supervisors, the operations team, an
agency's or a shelter's staff) sign in to the real Keycloak and call through the dev front door with their
access tokens; machines (agencies', shelters' and refnet's own systems) call with their certificates. Every
method is also walked with every kind of caller: each gets a clear answer (PERMISSION_DENIED where the role
may not call, NOT_FOUND for what is outside its scope), never UNAUTHENTICATED, since each is properly signed in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refnet.intake.v1 import contact_service_pb2, intake_service_pb2
from refnet.notifications.v1 import notifications_service_pb2
from refnet.referral.v1 import referral_service_pb2
from refnet.shelter.v1 import shelter_service_pb2
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import SERVICES, Network
from refnet_platform.caller import MACHINE_ROLES, Role

pytestmark = pytest.mark.e2e

# A caller is (subject id, role). Operators, supervisors and ops are people: the subject is a realm user
# (deploy/keycloak/refnet-realm.json) and the call goes through the dev front door with their token. PERSON
# marks any other realm user (an agency's or a shelter's staff), whose role is in their token; every other
# role is a machine's, by its certificate (CN subject, OU role).
PERSON = "person"

# (service process, proto service, the caller the service lets in, so fuzzing reaches the handlers)
TARGETS = (
    ("intake", intake_service_pb2.DESCRIPTOR.services_by_name["IntakeService"], ("qn-supervisor", "supervisor")),
    ("intake", contact_service_pb2.DESCRIPTOR.services_by_name["CaseContactService"], ("referral", "service")),
    ("referral", referral_service_pb2.DESCRIPTOR.services_by_name["ReferralService"],
     ("qn-police-baichay", "agency")),
    ("referral", referral_service_pb2.DESCRIPTOR.services_by_name["EscalationService"],
     ("qn-supervisor", "supervisor")),
    ("referral", referral_service_pb2.DESCRIPTOR.services_by_name["DirectoryService"], ("qn-worker-7", "operator")),
    ("shelter", shelter_service_pb2.DESCRIPTOR.services_by_name["ShelterService"], ("qn-spc", "shelter")),
    ("notifications", notifications_service_pb2.DESCRIPTOR.services_by_name["NotificationsService"],
     ("qn-police-baichay", "agency")),
)
METHODS = [(svc, method, caller) for svc, service, caller in TARGETS for method in service.methods]
# One caller of every kind, each properly signed in (people) or certified (machines).
EVERY_ROLE = (
    ("qn-worker-7", "operator"), ("qn-supervisor", "supervisor"), ("ops-oncall", "ops"),
    ("qn-police-baichay", PERSON), ("qn-spc-staff", PERSON),  # an agency's and a shelter's staff
    ("qn-police-baichay", "agency"), ("qn-spc", "shelter"), ("referral", "service"),  # their systems; a service
)

# A domain answer. INTERNAL or UNKNOWN on a well-formed request is a bug (an unhandled exception).
CLEAR = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS,
         grpc.StatusCode.RESOURCE_EXHAUSTED}
NAMES_A_FIELD = re.compile(r"^[a-z_][a-z0-9_]*(\[\d+\])?(\.[a-z_][a-z0-9_]*(\[\d+\])?)*: \S")

TEXT = st.one_of(
    st.text(max_size=40),  # any unicode, incl. empty, control characters and surrogates-free planes
    st.sampled_from(["", " ", "22", "06673", "qn-spc", "qn-police-baichay", "00000000-0000-0000-0000-000000000000",
                     "'; DROP TABLE cases; --", "\x00", "Nguyễn Thị Ánh 👩‍👧", "../../etc/passwd", "%s%n"]),
    st.integers(1_000, 200_000).map(lambda n: "x" * n),  # long, but under the 256 KiB request limit
)
INT_BOUNDS = {FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
              FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
              FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1)}


# google.protobuf.Timestamp's range is 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
YEAR_1 = -62135596800
YEAR_9999_END = 253402300799
# (seconds, nanos): any valid time, the edges (year 1, year 9999, either side of them, the Unix epoch) and
# malformed ones (negative nanos, nanos of a second or more, seconds far outside the range). Every one a
# service rejects must be INVALID_ARGUMENT naming its field, never INTERNAL.
TIMESTAMPS = st.one_of(
    st.tuples(st.integers(YEAR_1, YEAR_9999_END), st.integers(0, 999_999_999)),
    st.tuples(st.sampled_from([YEAR_1, YEAR_1 + 1, YEAR_1 + 86_400, YEAR_9999_END, YEAR_9999_END - 86_400, 0]),
              st.sampled_from([0, 1, 999_999_999])),
    st.tuples(st.sampled_from([YEAR_1 - 1, YEAR_9999_END + 1, -(2**63), 2**63 - 1]), st.just(0)),
    st.tuples(st.sampled_from([YEAR_1, 0, YEAR_9999_END]), st.sampled_from([-1, -999_999_999, -(2**31)])),
    st.tuples(st.sampled_from([YEAR_1, 0, YEAR_9999_END]), st.sampled_from([1_000_000_000, 2**31 - 1])),
)


def _int(cpp: int) -> st.SearchStrategy[int]:
    low, high = INT_BOUNDS[cpp]
    return st.one_of(st.sampled_from([low, high, -1, 0, 1, 501, 10**6]), st.integers(low, high))


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))  # unknown numbers too
    if field.cpp_type in INT_BOUNDS:
        return _int(field.cpp_type)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        return TEXT
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    return st.floats(allow_nan=False)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """A strategy for any message of this type: each field left unset or given a random value."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return TIMESTAMPS.map(lambda sn: cls(seconds=sn[0], nanos=sn[1]))
    if depth > 2:
        return st.just(cls())
    fields = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, item = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = st.none() | st.dictionaries(_scalar(key, depth), _scalar(item, depth), max_size=3)
            continue
        value = _scalar(field, depth)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        fields[field.name] = st.none() | value
    return st.fixed_dictionaries(fields).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = getattr(message, name)
        if isinstance(value, dict):
            for k, v in value.items():
                field[k].CopyFrom(v) if isinstance(v, Message) else field.__setitem__(k, v)
        elif isinstance(value, list):
            if value and isinstance(value[0], Message):
                for v in value:
                    field.add().CopyFrom(v)
            else:
                field.extend(value)
        elif isinstance(value, Message):
            field.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


@pytest.fixture(scope="module")
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Network]:
    """Only the four api processes (fuzzing the gRPC surface needs no worker), verifying people's tokens
    against the session's Keycloak."""
    net = Network(kafka_broker.bootstrap, tmp_path_factory.mktemp("fuzz-grpc") / "var", keycloak=keycloak)
    try:
        env, bin_dir = net.env(), Path(sys.executable).parent
        for service in SERVICES:
            net.start_process(f"{service}-api", env, bin_dir)
        net.wait_healthy(90)
        yield net
    finally:
        net.stop()


def _open(network: Network, service: str, subject_id: str, role: str) -> grpc.Channel:
    """A person's channel through the front door with their token, or a machine's by its certificate."""
    if role == PERSON or Role(role) not in MACHINE_ROLES:
        return network.person_channel(service, subject_id)
    return network.channel(service, subject_id, role)


@pytest.fixture(scope="module")
def channels(network: Network) -> Iterator[dict[tuple[str, str, str], grpc.Channel]]:
    callers = {(svc, *caller) for svc, _, caller in METHODS} | {(svc, *c) for svc in SERVICES for c in EVERY_ROLE}
    opened = {key: _open(network, *key) for key in callers}
    try:
        yield opened
    finally:
        for channel in opened.values():
            channel.close()


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _call(channel: grpc.Channel, method: MethodDescriptor, request: bytes, timeout: float = 10) -> grpc.StatusCode:
    """Sends raw request bytes to the method path; returns the status (streams: their first answer)."""
    try:
        if method.server_streaming:
            stream = channel.unary_stream(_path(method))(request, timeout=timeout)
            try:
                next(stream, None)  # a watch sends a snapshot, or waits: the first answer is what counts
            finally:
                stream.cancel()
        else:
            channel.unary_unary(_path(method))(request, timeout=timeout)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return grpc.StatusCode.OK  # an open watch with nothing to say yet
        assert error.code() in CLEAR, f"{_path(method)}: {error.code()} {error.details()}"
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert NAMES_A_FIELD.match(error.details() or ""), f"{_path(method)}: no field named: {error.details()}"
        return error.code()  # type: ignore[no-any-return]


def _assert_serving(network: Network, service: str) -> None:
    with network.channel(service, "refnet-dev", "service") as channel:  # a machine: health needs no person
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    network.check_alive()


@pytest.mark.parametrize(("service", "method", "caller"), METHODS,
                         ids=[f"{m.containing_service.name}.{m.name}" for _, m, _ in METHODS])
def test_random_requests_get_a_clear_answer(network: Network, channels: dict[tuple[str, str, str], grpc.Channel],
                                            service: str, method: MethodDescriptor, caller: tuple[str, str]) -> None:
    channel = channels[(service, *caller)]
    codes: set[grpc.StatusCode] = set()

    @settings(max_examples=8 if method.server_streaming else 15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages(method.input_type))
    def fuzz(request: Message) -> None:
        codes.add(_call(channel, method, request.SerializeToString(), timeout=1 if method.server_streaming else 10))

    fuzz()
    _assert_serving(network, service)


@pytest.mark.parametrize(("service", "method"), [(svc, method) for svc, method, _ in METHODS],
                         ids=[f"{m.containing_service.name}.{m.name}" for _, m, _ in METHODS])
def test_every_role_gets_a_clear_answer_and_is_never_unauthenticated(
        network: Network, channels: dict[tuple[str, str, str], grpc.Channel], service: str,
        method: MethodDescriptor) -> None:
    answers: dict[tuple[str, str], set[grpc.StatusCode]] = {caller: set() for caller in EVERY_ROLE}

    @settings(max_examples=3, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages(method.input_type))
    def fuzz(request: Message) -> None:
        for caller in EVERY_ROLE:  # _call fails on UNAUTHENTICATED, INTERNAL or UNKNOWN, naming the method
            answers[caller].add(_call(channels[(service, *caller)], method, request.SerializeToString(),
                                      timeout=1 if method.server_streaming else 10))

    fuzz()
    assert all(grpc.StatusCode.UNAUTHENTICATED not in codes for codes in answers.values()), answers
    _assert_serving(network, service)


# Each breaks the wire format itself, so no method's message parses from it.
GARBAGE = [
    b"\xff" * 64,  # an invalid wire type
    b"\x0a\xff\xff\xff\xff\x0f",  # a string field claiming a 4 GiB length
    b"\x0a\x05ab",  # truncated: 5 bytes announced, 2 sent
    b"\x08",  # a varint field with no value
    b"\x08\x96\x01\x0b",  # a start-group tag with no end
]


@pytest.mark.parametrize(("service", "method", "caller"), METHODS,
                         ids=[f"{m.containing_service.name}.{m.name}" for _, m, _ in METHODS])
def test_garbage_bytes_are_refused_before_the_handler(network: Network,
                                                      channels: dict[tuple[str, str, str], grpc.Channel],
                                                      service: str, method: MethodDescriptor,
                                                      caller: tuple[str, str]) -> None:
    channel = channels[(service, *caller)]
    for garbage in GARBAGE:
        with pytest.raises(grpc.RpcError) as refused:
            _raw(channel, method, garbage)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (garbage, refused.value)
        assert refused.value.details() == f"request: not a valid {method.input_type.full_name} message", garbage
    with pytest.raises(grpc.RpcError) as oversized:
        _raw(channel, method, b"\x0a\x80\x80\x14" + b"x" * (320 * 1024))  # 320 KiB, over the 256 KiB limit
    assert oversized.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_serving(network, service)


def _raw(channel: grpc.Channel, method: MethodDescriptor, request: bytes) -> None:
    if method.server_streaming:
        for _ in channel.unary_stream(_path(method))(request, timeout=10):
            break
    else:
        channel.unary_unary(_path(method))(request, timeout=10)
