"""The real `referral-api` process (console script, migrations, demo directory, mutual TLS) on a real
socket, once per module for each database (SQLite and PostgreSQL), with a stand-in for intake's contact
API on mutual TLS too. The test feeds routing through referral's own bus on the same database, as the
worker would from Kafka. Machines call with their certificates; people (operators, supervisors, an
agency's staff) sign in to the session's Keycloak and call through the development front door."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, select

from referral.bootstrap import bootstrap
from referral.config import Settings
from referral.domain import commands
from referral.domain.model import Survivor
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_platform.bus import MessageBus
from refnet_platform.engine import make_engine
from refnet_platform.envelope import TypeRegistry, decode
from refnet_platform.identity import Authenticator, server_credentials
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex

EVENTS = TypeRegistry([referral_events, shelter_events])


class FakeIntakeContacts(contact_grpc.CaseContactServiceServicer):
    """Intake's CaseContactService: remembers who asked for what, answers with canary contact details
    (or, while `down`, with the UNAVAILABLE a client sees when intake cannot be reached)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, contact_pb.GetCaseContactRequest]] = []
        self.down = False

    def GetCaseContact(self, request: contact_pb.GetCaseContactRequest, context: grpc.ServicerContext
                       ) -> contact_pb.GetCaseContactResponse:
        # As every refnet api does before a handler runs (intake's own server sets it for `caller_of`):
        # the machine named by the client certificate; no person signs in to this internal API.
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        caller = Authenticator(None).caller(context.auth_context(), metadata)
        self.calls.append((caller.subject_id, str(caller.role), request))
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "intake is restarting")
        return contact_pb.GetCaseContactResponse(
            name="Canary Name", phone="0900 000 111", categories=["name", "phone", "safe_contact"], phone_is_safe=True,
            safe_times=[intake_types.SafeContactTime(weekdays=[2, 4], start="21:30", end="22:15")])


@dataclass
class ReferralApi:
    network: Network
    engine: Engine
    bus: MessageBus
    intake: FakeIntakeContacts
    _channels: dict[tuple[str, str], grpc.Channel] = field(default_factory=dict)

    def channel(self, subject_id: str, role: str) -> grpc.Channel:
        if (subject_id, role) not in self._channels:
            self._channels[subject_id, role] = self.network.channel("referral", subject_id, role)
        return self._channels[subject_id, role]

    def referrals(self, subject_id: str, role: str = "agency") -> Any:
        return referral_grpc.ReferralServiceStub(self.channel(subject_id, role))

    def person(self, username: str) -> Any:
        """ReferralService as a signed-in realm user of any role (e.g. an agency's staff member)."""
        if (username, "person") not in self._channels:
            self._channels[username, "person"] = self.network.person_channel("referral", username)
        return referral_grpc.ReferralServiceStub(self._channels[username, "person"])

    def escalations(self, subject_id: str = "qn-supervisor", role: str = "supervisor") -> Any:
        return referral_grpc.EscalationServiceStub(self.channel(subject_id, role))

    def directory(self, subject_id: str = "qn-worker-7", role: str = "operator") -> Any:
        return referral_grpc.DirectoryServiceStub(self.channel(subject_id, role))

    def register(self, *needs: ServiceType, province: str = "22", commune: str = "06673",
                 sex: Sex = Sex.FEMALE) -> tuple[str, dict[ServiceType, str]]:
        """Routes a new case with these consented needs, as the worker does on CaseRegistered."""
        case_id = str(uuid.uuid4())
        need_ids = {service: str(uuid.uuid4()) for service in needs}
        self.bus.handle(commands.RouteCase(
            case_id, province, commune, [commands.NeedToRoute(n, s, True) for s, n in need_ids.items()],
            RiskLevel.MEDIUM, False, "qn-worker-7", Survivor(sex=sex)))
        return case_id, need_ids

    def events(self, kind: str) -> list[Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.value).order_by(outbox.c.id)).scalars().all()
        payloads = [EVENTS.unpack(decode(value)) for value in rows]
        return [p for p in payloads if type(p).__name__ == kind]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        keycloak: Keycloak) -> Iterator[ReferralApi]:
    data_dir: Path = tmp_path_factory.mktemp("referral")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'referral.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").create_database(f"referral_{uuid.uuid4().hex[:12]}")
    # The api needs no broker (the relay publishes); it verifies people's tokens against Keycloak (OIDC_ISSUER).
    network = Network("127.0.0.1:9", data_dir, keycloak=keycloak)
    fake = FakeIntakeContacts()
    intake = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    contact_grpc.add_CaseContactServiceServicer_to_server(fake, intake)
    intake_port = intake.add_secure_port("127.0.0.1:0", server_credentials(network.pki.server_dir))
    intake.start()
    env = {**network.env(), "REFERRAL_DATABASE_URL": url, "REFERRAL_INTAKE_ADDRESS": f"127.0.0.1:{intake_port}",
           "REFERRAL_WATCH_POLL_INTERVAL_S": "0.1"}
    engine = make_engine(url)
    api = None
    try:
        network.start_process("referral-api", env)
        deadline = time.monotonic() + 60
        while not network.healthy("referral"):
            network.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(network.log_tail("referral-api"))
            time.sleep(0.1)
        api = ReferralApi(network, engine, bootstrap(Settings(database_url=url), engine), fake)
        yield api
    finally:
        if api is not None:
            api.close()
        network.stop()
        intake.stop(0)
        engine.dispose()
