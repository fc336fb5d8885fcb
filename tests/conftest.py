"""Shared fixtures for every refnet test: a real Kafka broker and PostgreSQL, started on first use only."""

from __future__ import annotations

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
    from refnet_dev.postgres import PostgresCluster


def pytest_configure() -> None:
    # A CI timeout sends SIGTERM: treat it like Ctrl-C, so session fixtures still stop Kafka and PostgreSQL.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
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
