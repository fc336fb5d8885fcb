"""A throwaway PostgreSQL 15 cluster in a temp dir, for tests and local runs, no Docker."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from refnet_dev.util import free_port, tail, wait_gone

PG_BIN = Path(os.environ.get("REFNET_PG_BIN", "/usr/lib/postgresql/15/bin"))
INITDB_OPTS = ("-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
# Durability off: the data is thrown away, speed is what matters.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresCluster:
    """Start with `with PostgresCluster() as pg:`; `pg.create_database("x")` returns its SQLAlchemy URL."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.gettempdir()) / f"refnet-pg-{uuid.uuid4().hex[:12]}"  # made by start()
        self.data = self.dir / "data"
        self.startup_seconds: float | None = None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (read from postmaster.pid)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def start(self) -> PostgresCluster:
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.monotonic()
        self.dir.mkdir(mode=0o700)
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, *INITDB_OPTS)
        settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.dir}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._run(PG_BIN / "pg_ctl", "start", "-D", self.data, "-l", self.dir / "postgres.log", "-w", "-t", "30")
        with psycopg.connect(self._dsn(), connect_timeout=10):  # pg_ctl -w saw it ready; prove TCP works
            pass
        self.startup_seconds = time.monotonic() - started
        print(f"postgres: ready at 127.0.0.1:{self.port} in {self.startup_seconds:.1f}s", file=sys.stderr)

    def stop(self) -> None:
        """Idempotent: fast shutdown bounded to 10 s, then SIGKILL the postmaster; removes the dir."""
        atexit.unregister(self.stop)
        pid = self.pid
        if pid is not None:
            # If pg_ctl fails or hangs, the SIGKILL below is the fallback.
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                self._run(PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", "10", timeout=15)
            if not wait_gone(pid, 1):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, *cmd: str | Path, timeout: float = 60) -> None:
        argv = [str(c) for c in cmd]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # cwd: the postgres user may not be allowed into ours (e.g. /root).
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}\n{tail(self.dir / 'postgres.log')}"
            )
