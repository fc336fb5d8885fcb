"""The real `intake-api` process (its console script, migrations, master key file, mutual TLS) on a
real socket, once per module for each database: SQLite and PostgreSQL. Machines (services, agencies'
and shelters' systems) call with their certificates; people (operators, supervisors, the operations
team, an agency's or a shelter's staff) sign in to the session's Keycloak as realm users and call
through the development front door with their access tokens."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, func, select, text

from intake.adapters.tables import metadata, metadata_0002, metadata_0004, metadata_casework
from refnet.intake.v1 import contact_service_pb2_grpc, events_pb2, intake_service_pb2_grpc
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_platform.engine import make_engine
from refnet_platform.envelope import TypeRegistry, decode
from refnet_platform.tables import outbox

INTAKE_EVENTS = TypeRegistry([events_pb2])


@dataclass
class IntakeApi:
    network: Network
    engine: Engine
    _channels: dict[tuple[str, str], grpc.Channel] = field(default_factory=dict)

    def channel(self, subject_id: str, role: str) -> grpc.Channel:
        """A machine by its certificate (CN `subject_id`, OU `role`); an operator, supervisor or ops as the
        realm user `subject_id`, through the front door with their token."""
        if (subject_id, role) not in self._channels:
            self._channels[subject_id, role] = self.network.channel("intake", subject_id, role)
        return self._channels[subject_id, role]

    def person_channel(self, username: str) -> grpc.Channel:
        """The realm user `username`, of any role (an agency's or a shelter's staff too), as signed in."""
        if (username, "person") not in self._channels:
            self._channels[username, "person"] = self.network.person_channel("intake", username)
        return self._channels[username, "person"]

    def intake(self, subject_id: str = "qn-operator", role: str = "operator") -> Any:
        """IntakeService as `subject_id`: by default Quảng Ninh's operator (provinces ["22"]), whose province
        the tests' cases are in unless they say otherwise."""
        return intake_service_pb2_grpc.IntakeServiceStub(self.channel(subject_id, role))

    def person(self, username: str) -> Any:
        """IntakeService as the realm user `username`, of any role."""
        return intake_service_pb2_grpc.IntakeServiceStub(self.person_channel(username))

    def contacts(self, subject_id: str = "referral", role: str = "service") -> Any:
        return contact_service_pb2_grpc.CaseContactServiceStub(self.channel(subject_id, role))

    def outbox_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings()]

    def events(self, subject: str) -> list[tuple[str, str, Any]]:
        """(topic, key, payload) of the outbox rows about one case ("case/<id>") or call, oldest first."""
        found = []
        for row in self.outbox_rows():
            envelope = decode(row["value"])
            if envelope.subject == subject:
                found.append((row["topic"], row["key"], INTAKE_EVENTS.unpack(envelope)))
        return found

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]

    def total_rows(self) -> int:
        with self.engine.connect() as conn:
            tables = [*metadata.sorted_tables, *metadata_0002.sorted_tables, *metadata_0004.sorted_tables,
                      *metadata_casework.sorted_tables, outbox]
            return sum(int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables)

    def log_lines(self) -> list[dict[str, Any]]:
        """Every line the api wrote, each a JSON object."""
        text_ = (self.network.data_dir / "logs" / "intake-api.log").read_text(encoding="utf-8")
        return [json.loads(line) for line in text_.splitlines() if line.strip()]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        keycloak: Keycloak) -> Iterator[IntakeApi]:
    data_dir: Path = tmp_path_factory.mktemp("intake")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'intake.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").create_database(f"intake_{uuid.uuid4().hex[:12]}")
    # The api needs no broker (the relay publishes); the master key comes from the dev key file; it verifies
    # people's tokens against the session's Keycloak (OIDC_ISSUER).
    network = Network("127.0.0.1:9", data_dir, keycloak=keycloak)
    env = {**network.env(), "INTAKE_DATABASE_URL": url, "REFNET_LOG_LEVEL": "DEBUG"}
    engine = make_engine(url)
    api = IntakeApi(network, engine)
    try:
        network.start_process("intake-api", env)
        deadline = time.monotonic() + 60
        while not network.healthy("intake"):
            network.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(network.log_tail("intake-api"))
            time.sleep(0.1)
        yield api
    finally:
        api.close()
        network.stop()
        engine.dispose()
