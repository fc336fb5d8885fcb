"""What the bench and chaos run against: their own Kafka broker, refnet's twelve processes on it (and the web
front door, for the bench's web phase), optionally a PostgreSQL cluster instead of SQLite files, and optionally
an SMTP server taking the providers' e-mail. Everything started here is stopped on exit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine

from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.postgres import PostgresCluster
from refnet_dev.util import free_port
from refnet_platform.topic_admin import ensure_topics


class MailSink:
    """An SMTP server on 127.0.0.1 that takes every e-mail and counts it (the mail goes nowhere): with it the
    notifications worker e-mails the providers' duty desks and dispatches as it does in production."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self._controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, _server: object, _session: object, _envelope: object) -> str:  # aiosmtpd calls it
        self.count += 1
        return "250 OK"

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFICATIONS_SMTP_HOST": "127.0.0.1", "NOTIFICATIONS_SMTP_PORT": str(self._controller.port)}

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class Stack:
    broker: KafkaBroker
    keycloak: Keycloak
    network: Network
    postgres: PostgresCluster | None
    database_url: str | None
    mail: MailSink | None = None

    @property
    def database(self) -> str:
        return "PostgreSQL" if self.postgres else "SQLite"

    def pids(self) -> dict[str, int]:
        """Every process of the run by name, for CPU accounting: refnet's, the broker and this one."""
        pids = {p.name: p.popen.pid for p in self.network.processes if p.popen.poll() is None}
        if self.broker.pid:
            pids["kafka"] = self.broker.pid
        if self.keycloak.pid:
            pids["keycloak"] = self.keycloak.pid
        if self.postgres and self.postgres.pid:
            pids["postgres"] = self.postgres.pid  # the postmaster only, not its backends
        return {**pids, "bench": os.getpid()}

    def read_engine(self, service: str) -> Engine:
        """A reader of the service's own database (read-only on SQLite: it never takes the write lock)."""
        if self.database_url:
            return create_engine(self.database_url, connect_args={"options": f"-csearch_path={service}"},
                                 pool_pre_ping=True, pool_size=1, max_overflow=0)
        path = self.network.data_dir / f"{service}.db"
        return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", connect_args={"timeout": 30})


@contextlib.contextmanager
def running(data_dir: Path, postgres: bool = False, extra_env: dict[str, str] | None = None,
            web: bool = False, cohost: str | None = None, email: bool = False) -> Iterator[Stack]:
    """Kafka, Keycloak, optionally PostgreSQL, and refnet's processes on them; with `web`, the web front door too;
    `cohost` ("worker+relay", "all"): roles of a service sharing one process (refnet_dev.network.COHOST); with
    `email`, a MailSink the notifications worker e-mails."""
    broker = KafkaBroker()
    keycloak = Keycloak()
    cluster = PostgresCluster() if postgres else None
    mail = MailSink() if email else None
    network: Network | None = None
    try:
        if mail:
            mail.start()
            extra_env = {**(extra_env or {}), **mail.env}
        broker.start()
        ensure_topics(broker.bootstrap)
        keycloak.start()  # operators sign in: every RegisterCase carries a person's token
        url = None
        if cluster:
            cluster.start()
            url = cluster.create_database("refnet")
        network = Network(broker.bootstrap, data_dir, database_url=url, extra_env=dict(extra_env or {}),
                          keycloak=keycloak, web=web, cohost=cohost)
        network.start()
        yield Stack(broker, keycloak, network, cluster, url, mail)
    finally:
        if network:
            network.stop()
        if mail:
            mail.stop()
        keycloak.stop()
        broker.stop()
        if cluster:
            cluster.stop()
