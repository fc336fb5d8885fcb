"""Every process's HTTP side door on <SVC>_<ROLE>_METRICS_PORT (or <SVC>_METRICS_PORT; 0 picks a free port):

  /metrics  Prometheus text (refnet_platform.metrics and the client's process metrics)
  /healthz  liveness: 200 while the process's main loop goes round (worker, relay), else 503
  /readyz   readiness: 200 when the database and Kafka answer, else 503; JSON says which check failed

gRPC servers answer grpc.health.v1 as well; this door serves the workers and relays, which have no gRPC,
and Kubernetes probes and Prometheus alike.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine, text

from refnet_platform.engine import read_connection
from refnet_platform.metrics import seconds_since_heartbeat

log = logging.getLogger(__name__)

# A check returns normally when the dependency answers and raises when it does not.
Check = Callable[[], None]


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with read_connection(engine) as conn:
            conn.execute(text("SELECT 1"))

    return check


def kafka_check(bootstrap: str, timeout_s: float = 1.0) -> Check:
    """Ready when at least one bootstrap broker accepts a connection."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]

    def check() -> None:
        errors = []
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                    return
            except OSError as exc:
                errors.append(f"{server}: {exc.strerror or exc}")
        raise ConnectionError("; ".join(errors) or "no bootstrap servers")

    return check


def metrics_port(service: str, role: str) -> int:
    """<SVC>_<ROLE>_METRICS_PORT, else <SVC>_METRICS_PORT (one process per pod), else 0 (a free port).
    A co-hosted process's role is its roles joined: "worker+relay" reads <SVC>_WORKER_RELAY_METRICS_PORT."""
    prefix = service.upper()
    for name in (f"{prefix}_{role.replace('+', '_').upper()}_METRICS_PORT", f"{prefix}_METRICS_PORT"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


class HealthServer:
    def __init__(self, host: str, port: int, checks: Mapping[str, Check], stall_s: float | None = None,
                 check_timeout_s: float = 2.0, cache_s: float = 1.0, loops: Sequence[str] = ()) -> None:
        self.checks = dict(checks)
        self.stall_s = stall_s
        # The threads whose loops must each go round (co-hosted roles); none: the process's one loop.
        self.loops = list(loops)
        self.check_timeout_s = check_timeout_s
        self.cache_s = cache_s
        self._cached: tuple[float, dict[str, str]] | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(len(self.checks), 1), thread_name_prefix="readyz")
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics http listening", extra={"fields": {"port": self.port}})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def alive(self) -> tuple[bool, str]:
        if self.stall_s is None:
            return True, "ok"
        loops: list[str | None] = [*self.loops] or [None]
        for loop in loops:
            since = seconds_since_heartbeat(loop)
            if since is not None and since > self.stall_s:
                return False, f"{loop or 'main'} loop stalled for {since:.0f}s"
        return True, "ok"

    def readiness(self) -> dict[str, str]:
        """Each check's result: "ok" or the error. Cached briefly so probes never pile onto the database."""
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            futures = {name: self._pool.submit(check) for name, check in self.checks.items()}
            results = {}
            for name, future in futures.items():
                try:
                    future.result(timeout=self.check_timeout_s)
                    results[name] = "ok"
                except FutureTimeout:
                    results[name] = f"no answer within {self.check_timeout_s:g}s"
                except Exception as exc:
                    results[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            self._cached = (time.monotonic(), results)
            return results

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok, reason = server.alive()
                    self._json(200 if ok else 503, {"alive": ok, "reason": reason})
                elif path == "/readyz":
                    checks = server.readiness()
                    ready = all(v == "ok" for v in checks.values())
                    self._json(200 if ready else 503, {"ready": ready, "checks": checks})
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not worth a line
                pass

        return Handler
