"""What a RegisterCase costs intake-api: the real process (its console script, migrations, master key, mutual TLS)
on a SQLite file, called as the bench's operator calls it, through a front door's certificate with the person's
access token.

    python bench/intake_registration.py [--cases 2000] [--in-flight 32] [--rate 50 --seconds 10]
                                        [--worker-hold-ms 0]

A local identity provider stands in for Keycloak (a signing key of its own, its JWKS served on 127.0.0.1): the api
verifies the token exactly as it verifies Keycloak's (signature, issuer, audience, expiry, then remembered). First
`--cases` registrations with `--in-flight` calls at once (as the bench registers its backlog), then `--rate` cases a
second for `--seconds`, open loop (latency from when each call was due, as `make bench` counts it). With
`--worker-hold-ms N` another connection takes SQLite's write lock for N ms every 100 ms during the open-loop phase,
as intake-worker's batch transactions do, so RegisterCase's wait for the lock shows in its p99.

Printed per phase: the api process's CPU ms per case (utime + stime from /proc), SQL statements per case (counted
inside the api by a `before_cursor_execute` listener this script installs through sitecustomize; transaction control
included; when calls queue, as in the closed loop, the api writes registrations in batches of up to 8, whose shared
statements count a fraction per case), the api's time in Python's garbage collector per case and its pauses over
20 ms (a call caught in one waits it out), and latency p50/p99. Runs as a file, so the same script measures another
checkout's api with that checkout's venv (the api is the console script next to the running python).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench package, whichever venv runs this

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.load import OPERATOR, case_request
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_dev.network import DEV_GATEWAY, Network
from refnet_platform.caller import Role
from refnet_platform.identity import bearer, channel_credentials

# Loaded by the api's interpreter at start-up (PYTHONPATH): counts every statement any engine sends and writes the
# count to a file every 100 ms, so the bench reads it between phases.
SITECUSTOMIZE = """
import gc, json, os, threading, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
_path = os.environ["BENCH_STATEMENTS_FILE"]
_seen = {"statements": 0, "gc_ms": 0.0, "gc_pauses_over_20ms": 0}
_started = [0.0]
def _statement(*_args):
    _seen["statements"] += 1
event.listen(Engine, "before_cursor_execute", _statement)
def _gc(phase, _info):
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1000
    _seen["gc_ms"] += ms
    _seen["gc_pauses_over_20ms"] += ms > 20
gc.callbacks.append(_gc)
def _write():
    while True:
        time.sleep(0.1)
        with open(_path + ".tmp", "w") as out:
            out.write(json.dumps(_seen))
        os.replace(_path + ".tmp", _path)
threading.Thread(target=_write, daemon=True, name="bench-counts").start()
"""

ISSUER = "http://127.0.0.1/realms/refnet-bench"
KEY_ID = "bench-key"


class IdentityProvider:
    """A signing key and its JWKS on a local port: tokens like Keycloak's for the bench's operator."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}).encode()

        class Jwks(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/certs"

    def token(self, username: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "refnet-api", "sub": str(uuid.uuid4()), "iat": now, "exp": now + 3600,
                  "preferred_username": username, "realm_access": {"roles": [Role.OPERATOR.value]},
                  "provinces": ["22", "42", "92"]}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})

    def stop(self) -> None:
        self.server.shutdown()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counts(path: Path) -> dict[str, float]:
    time.sleep(0.25)  # the api writes its counts every 100 ms
    return dict(json.loads(path.read_text()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Api:
    def __init__(self, network: Network, pid: int, counted: Path, token: str) -> None:
        cert, key = network.pki.client(DEV_GATEWAY, Role.GATEWAY)
        credentials = channel_credentials(network.pki.ca, cert, key)
        self.channel = grpc.aio.secure_channel(network.address("intake"), credentials)
        self.stub = intake_grpc.IntakeServiceStub(self.channel)
        self.metadata = bearer(token)
        self.pid, self.counted = pid, counted
        self.run = uuid.uuid4().hex[:8]
        self.sent = 0

    async def register(self) -> float:
        n = self.sent
        self.sent += 1
        started = time.perf_counter()
        reply = await self.stub.RegisterCase(case_request(n, run=self.run), metadata=self.metadata, timeout=30)
        assert reply.created and reply.case.case_id
        return (time.perf_counter() - started) * 1000

    async def closed_loop(self, cases: int, in_flight: int) -> list[float]:
        latencies: list[float] = []
        remaining = iter(range(cases))

        async def caller() -> None:
            for _ in remaining:
                latencies.append(await self.register())

        await asyncio.gather(*(caller() for _ in range(in_flight)))
        return latencies

    async def open_loop(self, rate: float, seconds: float) -> list[float]:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def due_at(due: float) -> float:
            await self.register()
            return (loop.time() - due) * 1000  # from when it was due: a late sender counts as latency

        tasks = []
        for i in range(round(rate * seconds)):
            due = start + i / rate
            if (delay := due - loop.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(due_at(due)))
        return list(await asyncio.gather(*tasks))

    async def phase(self, name: str, run: Any) -> dict[str, float]:
        cpu0, seen0 = cpu_s(self.pid), counts(self.counted)
        latencies = await run
        time.sleep(0.05)
        cpu1, seen1 = cpu_s(self.pid), counts(self.counted)
        n = len(latencies)
        figures = {"cases": n, "cpu_ms_per_case": (cpu1 - cpu0) * 1000 / n,
                   "statements_per_case": (seen1["statements"] - seen0["statements"]) / n,
                   "gc_ms_per_case": (seen1["gc_ms"] - seen0["gc_ms"]) / n,
                   "gc_pauses_over_20ms": seen1["gc_pauses_over_20ms"] - seen0["gc_pauses_over_20ms"],
                   "p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99)}
        print(f"{name:<18} cases {n:>5}  api CPU ms/case {figures['cpu_ms_per_case']:5.2f}  "
              f"statements/case {figures['statements_per_case']:4.1f}  GC ms/case {figures['gc_ms_per_case']:5.2f}  "
              f"GC pauses > 20 ms {figures['gc_pauses_over_20ms']:3.0f}  p50 {figures['p50_ms']:6.1f} ms  "
              f"p99 {figures['p99_ms']:6.1f} ms", flush=True)
        return figures


def hold_write_lock(db: Path, hold_ms: float, stop: threading.Event) -> None:
    """Another writer of intake's SQLite file (as intake-worker's batch transactions): the write lock for
    `hold_ms` every 100 ms."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        while not stop.wait(0.1):
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(hold_ms / 1000)
            conn.execute("COMMIT")
    finally:
        conn.close()


async def measure(args: argparse.Namespace, network: Network, pid: int, counted: Path, token: str) -> None:
    api = Api(network, pid, counted, token)
    try:
        await api.closed_loop(args.warmup, min(args.in_flight, args.warmup))
        spy = None
        if args.py_spy:  # where the api's Python time goes while the cases are registered (--gil: Python only)
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "--gil",
                                    "-r", "200", "-f", "raw", "-o", str(args.py_spy), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await api.phase(f"{args.in_flight} in flight", api.closed_loop(args.cases, args.in_flight))
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
        if args.rate:
            stop = threading.Event()
            holder = threading.Thread(target=hold_write_lock, args=(network.data_dir / "intake.db",
                                                                    args.worker_hold_ms, stop))
            if args.worker_hold_ms:
                holder.start()
            try:
                await api.phase(f"{args.rate:g}/s open loop", api.open_loop(args.rate, args.seconds))
            finally:
                stop.set()
                if args.worker_hold_ms:
                    holder.join()
    finally:
        await api.channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/intake_registration.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50, help="open-loop cases a second after (0: none)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--worker-hold-ms", type=float, default=0,
                        help="another writer holds SQLite's write lock this long every 100 ms in the open loop")
    parser.add_argument("--py-spy", type=Path, help="record the api with py-spy (raw) while the cases are registered")
    args = parser.parse_args(argv)
    identity = IdentityProvider()
    with tempfile.TemporaryDirectory(prefix="intake-registration-") as tmp:
        data_dir = Path(tmp)
        (data_dir / "site").mkdir()
        (data_dir / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        counted = data_dir / "statements"
        counted.write_text(json.dumps({"statements": 0, "gc_ms": 0.0, "gc_pauses_over_20ms": 0}))
        network = Network("127.0.0.1:9", data_dir)
        env = {**network.env(), "INTAKE_DATABASE_URL": f"sqlite:///{data_dir / 'intake.db'}",
               "OIDC_ISSUER": ISSUER, "OIDC_JWKS_URL": identity.jwks_url,
               "PYTHONPATH": str(data_dir / "site"), "BENCH_STATEMENTS_FILE": str(counted)}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        try:
            process = network.start_process("intake-api", env)
            deadline = time.monotonic() + 120
            while not network.healthy("intake"):
                network.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(network.log_tail("intake-api"))
                time.sleep(0.1)
            print(f"api {sys.executable}  load average {os.getloadavg()[0]:.2f}", flush=True)
            asyncio.run(measure(args, network, process.popen.pid, counted, identity.token(OPERATOR)))
            print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            network.stop()
            identity.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
