"""Shared fixtures for every refnet test: a real Kafka broker, Keycloak and PostgreSQL, and one refnet network
(`shared_network`), each started on first use only.

`shared_network` is the whole network (the four services, ops, the web app) with the demo directory's settings,
started once for the session. A module that needs no settings of its own uses it instead of starting its own
network (12-16 processes, 20-40 s): ask for `shared_network`, or alias it as the module's `network`:

    @pytest.fixture(scope="module")
    def network(shared_network: Network) -> Network:
        return shared_network

Every module using it sees what the others left: make your own cases (unique ids), assert only about them (filter
lists, topics and logs by your ids or canaries), never stop the network, and restart any process you stop. A
module that needs its own settings (extra_env, a directory, a database) starts its own Network. The modules that
use it run last (pytest_collection_modifyitems), so it is up only while they run. Its few differences from the
demo: each shelter has SHARED_EXTRA_BEDS more beds (every module's cases hold some), and the web app's session
secret is SHARED_WEB_SESSION_SECRET (network.extra_env["WEB_SESSION_SECRET"]).
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The harness is imported inside the fixtures, so unit tests need neither it nor a JVM.
if TYPE_CHECKING:
    from refnet_dev.kafka import KafkaBroker
    from refnet_dev.keycloak import Keycloak
    from refnet_dev.network import Network
    from refnet_dev.postgres import PostgresCluster

# The shared network's web session secret (tests that read a session cookie also find it in network.extra_env).
SHARED_WEB_SESSION_SECRET = "refnet-shared-e2e-session-secret"
# Its shelters' capacities are raised by this many beds: every module's cases hold beds there, for an hour or more.
SHARED_EXTRA_BEDS = 40


def pytest_configure() -> None:
    # A CI timeout sends SIGTERM: treat it like Ctrl-C, so session fixtures still stop Kafka and PostgreSQL.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The modules on the shared network run last, each module whole and in order: it starts once, and is not
    # left idle (16 processes) while the other modules run.
    sharing = {item.path for item in items if "shared_network" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: item.path in sharing)
    # Tag tests by the infrastructure they pull in, so `-m "not kafka"` skips the broker.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "kafka_broker" in fixtures:
            item.add_marker("kafka")
        if "postgres_cluster" in fixtures:
            item.add_marker("postgres")
        if "keycloak" in fixtures:
            item.add_marker("keycloak")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the session, with every registry topic created."""
    from refnet_dev.kafka import KafkaBroker
    from refnet_platform.topic_admin import ensure_topics

    broker = KafkaBroker()
    try:
        broker.start()
        ensure_topics(broker.bootstrap)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def keycloak() -> Iterator[Keycloak]:
    """The identity provider with the development realm, once for the session (about 30 s to start)."""
    from refnet_dev.keycloak import Keycloak

    idp = Keycloak()
    try:
        idp.start()
        yield idp
    finally:
        idp.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    from refnet_dev.postgres import PostgresCluster

    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database per test: a SQLite file, or a new database in the session cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")  # lazy: only for this param
    return cluster.create_database(f"test_{uuid.uuid4().hex[:16]}")


@pytest.fixture(scope="session")
def shared_network(kafka_broker: KafkaBroker, keycloak: Keycloak,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """The whole network with default settings, once for the session (see this module's docstring)."""
    from refnet_dev.network import Network
    from refnet_dev.util import repo_root

    root = tmp_path_factory.mktemp("shared-network")
    directory = json.loads((repo_root() / "demo" / "directory.json").read_text(encoding="utf-8"))
    for provider in directory["providers"]:
        if "shelter" in provider:
            provider["shelter"]["capacity"] += SHARED_EXTRA_BEDS
    directory_file = root / "directory.json"
    directory_file.write_text(json.dumps(directory, ensure_ascii=False), encoding="utf-8")
    net = Network(kafka_broker.bootstrap, root / "var", keycloak=keycloak, ops=True, web=True,
                  directory_file=directory_file, extra_env={"WEB_SESSION_SECRET": SHARED_WEB_SESSION_SECRET})
    try:
        net.start()
        yield net
    finally:
        net.stop()
