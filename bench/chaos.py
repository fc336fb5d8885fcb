"""`make chaos`: faults injected one after another while cases flow, then refnet's invariants checked.

While an open-loop stream of cases is registered (some emergencies, some needing a shelter bed, some
having a consent withdrawn moments later; every call retried with its client_request_id until intake
acknowledges it), in turn:
  - kill -9 each process (api, worker and relay of each service) and start it again;
  - SIGSTOP each process for a few seconds, then SIGCONT;
  - crash each worker after its DB commit and before its offset commit, and each relay after its Kafka
    send and before it marks the outbox rows sent (REFNET_CRASH_AT, refnet_platform.unit_of_work.crash_point);
  - restart the Kafka broker; with --postgres, stop PostgreSQL (immediate mode) and start it again.
After each, the time until the backlog (registrations still being retried + unsent outbox rows + consumer
lag) is back under a threshold. At the end the flow stops, everything drains, and bench/invariants.py
checks the databases and topics. Exit status 0 only if every invariant held.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psycopg
from sqlalchemy import Engine, inspect, text

from bench.invariants import Invariant, KafkaView, Ledger, check_all
from bench.load import OPERATOR, aio_channel, case_request
from bench.report import render_table
from bench.stack import Stack, running
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_dev.network import ROLES, SERVICES
from refnet_dev.postgres import PG_BIN, PostgresCluster

CRASH_POINTS = {"worker": "consumer.after_db_commit", "relay": "relay.after_send"}
# Worth retrying: the api or its database is down or restarting. Anything else is an answer.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED,
             grpc.StatusCode.RESOURCE_EXHAUSTED}
CHAOS_NEEDS = (t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_MEDICAL, t.SERVICE_TYPE_PSYCHOSOCIAL)
# Bed holds expire after 30 s instead of two hours, so beds keep turning over once they are all held:
# shelter's worker, relay and expiry timer stay busy for the whole run.
CHAOS_ENV = {"REFERRAL_BED_HOLD_MINUTES": "0.5"}


def progress(line: str) -> None:
    print(f"  .. {line}", file=sys.stderr, flush=True)


class Flow:
    """Registers `rate` cases a second until stopped, each retried until acknowledged (at most `give_up_s`).
    Every 10th is an emergency, every 4th also needs a shelter bed (half of those then withdraw that consent),
    another of every 4 has its medical consent withdrawn a moment after registration."""

    def __init__(self, intake: intake_grpc.IntakeServiceStub, rate: float, ledger: Ledger, give_up_s: float = 120):
        self.intake, self.rate, self.ledger, self.give_up_s = intake, rate, ledger, give_up_s
        self.run_id = time.strftime("%H%M%S")
        self.pending = 0
        self.retries: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while not self.stopping.is_set():
            self.tasks.append(asyncio.create_task(self._case(n)))
            n += 1
            await asyncio.sleep(max(start + n / self.rate - loop.time(), 0))

    async def finish(self, timeout: float) -> None:
        self.stopping.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        deadline = time.monotonic() + self.give_up_s
        while True:
            try:
                return await method(request, timeout=5)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                    self.refused[exc.code().name] = self.refused.get(exc.code().name, 0) + 1
                    return None
                self.retries[exc.code().name] = self.retries.get(exc.code().name, 0) + 1
                await asyncio.sleep(0.3)

    async def _case(self, n: int) -> None:
        self.pending += 1
        try:
            needs = CHAOS_NEEDS + ((t.SERVICE_TYPE_SHELTER,) if n % 4 == 0 else ())  # in each province in turn
            request = case_request(n, emergency=n % 10 == 0, needs=needs, run=f"chaos-{self.run_id}")
            reply = await self._call(self.intake.RegisterCase, request)
            if reply is None:
                return
            case = reply.case
            self.ledger.cases[case.case_id] = [need.need_id for need in case.needs]
            # A withdrawn shelter need releases its bed: shelter's worker and relay keep working once beds are full.
            withdraw = [x for x in case.needs if (x.service_type == t.SERVICE_TYPE_MEDICAL and n % 4 == 1)
                        or (x.service_type == t.SERVICE_TYPE_SHELTER and n % 8 == 0)]
            if withdraw:
                await asyncio.sleep(0.1 * (n % 7))  # sometimes before referral routes it, sometimes after
            for need in withdraw:
                withdrawn = await self._call(self.intake.WithdrawConsent, intake_pb.WithdrawConsentRequest(
                    client_request_id=f"{request.client_request_id}-withdraw-{need.need_id}", case_id=case.case_id,
                    need_id=need.need_id))
                if withdrawn is not None:
                    self.ledger.withdrawn.add(need.need_id)
        finally:
            self.pending -= 1


class Probe:
    """The backlog in the system (unsent outbox rows + consumer lag), and the worst bed overbooking seen."""

    def __init__(self, stack: Stack) -> None:
        self.engines: dict[str, Engine] = {s: stack.read_engine(s) for s in SERVICES}
        self.outboxes = [e for e in self.engines.values() if inspect(e).has_table("outbox")]
        self.kafka = KafkaView(stack.broker.bootstrap)
        self.worst_overbooking = 0
        self.error = ""  # why the backlog could not be read last time

    def backlog(self) -> int | None:
        """None while it cannot be read (the broker or the database restarting)."""
        try:
            unsent = 0
            for engine in self.outboxes:
                with engine.connect() as conn:
                    unsent += conn.execute(text("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")).scalar_one()
            self._sample_beds()
            return unsent + sum(n for topics in self.kafka.lag().values() for n in topics.values())
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {str(exc)[:100]}"
            return None

    def _sample_beds(self) -> None:
        with self.engines["shelter"].connect() as conn:
            over = conn.execute(text("SELECT COALESCE(MAX(reserved + occupied - capacity), 0) FROM bed_pools"))
            self.worst_overbooking = max(self.worst_overbooking, int(over.scalar_one() or 0))

    def close(self) -> None:
        self.kafka.close()
        for engine in self.engines.values():
            engine.dispose()


@dataclass
class FaultResult:
    fault: str
    outcome: str
    down_s: float | None = None
    drain_s: float | None = None


class Chaos:
    def __init__(self, stack: Stack, args: argparse.Namespace, flow: Flow, probe: Probe) -> None:
        self.stack, self.args, self.flow, self.probe = stack, args, flow, probe
        self.network = stack.network
        self.results: list[FaultResult] = []
        self.deadline = time.monotonic() + args.max_minutes * 60
        # Drained: no more in the system than about two seconds of arrivals.
        self.threshold = args.threshold or max(5, round(2 * args.rate))

    async def backlog(self) -> int | None:
        inside = await asyncio.to_thread(self.probe.backlog)
        return None if inside is None else inside + self.flow.pending

    async def drained(self, timeout: float, threshold: int) -> float | None:
        """Seconds until the backlog is at most `threshold`; None if it is not within `timeout`."""
        started = time.monotonic()
        shown = started
        while time.monotonic() - started < timeout:
            level = await self.backlog()
            if level is not None and level <= threshold:
                return time.monotonic() - started
            if time.monotonic() - shown > 5:
                shown = time.monotonic()
                progress(f"backlog {level}" if level is not None else f"backlog unknown ({self.probe.error})")
            await asyncio.sleep(0.25)
        return None

    def _process(self, name: str) -> Any:
        return next(p for p in self.network.processes if p.name == name)

    async def revive(self) -> list[str]:
        """Starts again every process that died on its own (not part of the plan: reported)."""
        dead = [p for p in self.network.processes if p.popen.poll() is not None]
        for p in dead:
            await asyncio.to_thread(self.network.start_process, p.name)
        return [f"{p.name} exited with {p.popen.returncode}{await self.ready(p.name)}" for p in dead]

    async def ready(self, name: str) -> str:
        """Waits until the process says it is ready (/readyz); "" when it did, else why not."""
        try:
            await asyncio.to_thread(self.network.wait_ready, name, 60)
            return ""
        except Exception as exc:
            return f", not ready: {str(exc).splitlines()[0][:80]}"

    # -- the faults: each returns what happened -------------------------------------------------------

    async def start(self, name: str) -> str:
        await asyncio.to_thread(self.network.start_process, name)
        return "started again" + await self.ready(name)

    async def kill(self, name: str) -> str:
        await asyncio.to_thread(self.network.stop_process, name, signal.SIGKILL)
        return "killed, " + await self.start(name)

    async def pause(self, name: str) -> str:
        pid = self._process(name).popen.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(self.args.stop_seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"stopped {self.args.stop_seconds:g} s, continued"

    async def crash(self, name: str, point: str) -> str:
        await asyncio.to_thread(self.network.stop_process, name)
        env = {**self.network.env(), "REFNET_CRASH_AT": point}
        process = await asyncio.to_thread(self.network.start_process, name, env)
        try:
            code = await asyncio.to_thread(process.popen.wait, 60)
            outcome = f"died at the crash point (exit {code})" if code == 137 else f"exited with {code}"
        except Exception:  # the point was not reached in time: kill it and carry on
            await asyncio.to_thread(self.network.stop_process, name, signal.SIGKILL)
            outcome = "crash point not reached within 60 s"
        return f"{outcome}, " + await self.start(name)

    async def restart_broker(self) -> str:
        started = time.monotonic()
        await asyncio.to_thread(self.stack.broker.restart)
        return f"restarted in {time.monotonic() - started:.0f} s"

    async def interrupt_postgres(self) -> str:
        assert self.stack.postgres is not None
        await asyncio.to_thread(interrupt_postgres, self.stack.postgres, self.args.stop_seconds)
        return f"stopped (immediate), down {self.args.stop_seconds:g} s, started again"

    def plan(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        faults: list[tuple[str, Callable[[], Awaitable[str]]]] = []
        for role in ROLES:
            for service in SERVICES:
                name = self.network.host_of(service, role)  # co-hosted roles share a process: its faults once
                if not any(fault == f"kill -9 {name}" for fault, _ in faults):
                    faults.append((f"kill -9 {name}", partial(self.kill, name)))
                    faults.append((f"SIGSTOP {name}", partial(self.pause, name)))
                if role in CRASH_POINTS:
                    point = CRASH_POINTS[role]
                    faults.append((f"crash {name} at {point}", partial(self.crash, name, point)))
        faults.append(("restart the Kafka broker", self.restart_broker))
        if self.stack.postgres:
            faults.append(("interrupt PostgreSQL", self.interrupt_postgres))
        if self.args.only:
            faults = [f for f in faults if any(word in f[0] for word in self.args.only)]
        return faults

    async def inject_all(self) -> None:
        for fault, inject in self.plan():
            if self.deadline - time.monotonic() < self.args.reserve_s:
                self.results.append(FaultResult(fault, "skipped: the time budget (--max-minutes) ran out"))
                continue
            progress(fault)
            started = time.monotonic()
            outcome = await inject()
            died = await self.revive()  # as an orchestrator would; said in the table
            if died:
                outcome += "; died on its own (started again): " + ", ".join(died)
            down = time.monotonic() - started
            drain = await self.drained(self.args.drain_timeout, self.threshold)
            self.results.append(FaultResult(fault, outcome, down, drain))
            progress(f"{fault}: {outcome}; drained in {'-' if drain is None else f'{drain:.1f}'} s")


def durable_commits(cluster: PostgresCluster) -> None:
    """The throwaway cluster runs with synchronous_commit off, so a crash may lose commits it acknowledged;
    production does not, and chaos must not blame refnet for that. (fsync stays off: a killed postmaster
    does not lose the OS page cache.)"""
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_commit = on")
        conn.execute("SELECT pg_reload_conf()")


def interrupt_postgres(cluster: PostgresCluster, down_s: float) -> None:
    """Stop the cluster as a crash would (immediate mode), then start it on the same data. PostgresCluster has
    no restart() yet; this uses its own pg_ctl runner (which handles running as root)."""
    cluster._run(PG_BIN / "pg_ctl", "stop", "-D", cluster.data, "-m", "immediate", "-w", "-t", "30")
    time.sleep(down_s)
    cluster._run(PG_BIN / "pg_ctl", "start", "-D", cluster.data, "-l", cluster.dir / "postgres.log", "-w", "-t", "60")


async def chaos(stack: Stack, args: argparse.Namespace) -> tuple[list[FaultResult], list[Invariant], Flow, int]:
    if stack.postgres:
        durable_commits(stack.postgres)
    ledger = Ledger()
    probe = Probe(stack)
    try:
        async with aio_channel(stack.network, "intake", OPERATOR, "operator") as channel:
            flow = Flow(intake_grpc.IntakeServiceStub(channel), args.rate, ledger)
            flowing = asyncio.create_task(flow.run())
            run = Chaos(stack, args, flow, probe)
            try:
                progress(f"cases flowing at {args.rate:g}/s; waiting for a steady state")
                await asyncio.sleep(args.warm_up)
                steady = await run.drained(60, run.threshold)
                if steady is None:
                    raise RuntimeError(f"the backlog stayed above {run.threshold} without any fault: refnet does not "
                                       f"keep up with {args.rate:g} cases/s on this machine now (try a lower --rate)")
                progress(f"steady: backlog at most {run.threshold}; faults next")
                await run.inject_all()
            finally:
                progress("stopping the flow; waiting for everything to drain")
                await flow.finish(timeout=flow.give_up_s + 10)
                await flowing
            drain = await run.drained(args.final_drain_timeout, 0)
            left = "" if drain is not None else f"NOT drained: backlog {await run.backlog()} after " \
                                                f"{args.final_drain_timeout:g} s"
            run.results.append(FaultResult("end of run: flow stopped, drain to zero", left, None, drain))
            await asyncio.sleep(2)  # the last notices' own events settle
            invariants = await asyncio.to_thread(check_all, ledger, probe.engines, stack.broker.bootstrap,
                                                 probe.worst_overbooking)
            return run.results, invariants, flow, run.threshold
    finally:
        probe.close()


def render(results: list[FaultResult], invariants: list[Invariant], flow: Flow, stack: Stack,
           threshold: int) -> str:
    faults = render_table(("fault", "what happened", "took s", "drained in s"),
                          [(r.fault, r.outcome, r.down_s, r.drain_s) for r in results])
    held = render_table(("invariant", "", "detail"),
                        [(i.name, {True: "held", False: "BROKEN", None: "not checked"}[i.held], i.detail)
                         for i in invariants])

    def counts(by_code: dict[str, int]) -> str:
        return ", ".join(f"{code} x{n}" for code, n in by_code.items()) or "none"

    warning = ("\nThe backlog did not drain: the invariants below were read from a system still at work, so a case"
               " not yet routed or an event not yet consumed shows as broken.\n" if results[-1].drain_s is None else "")
    return "\n".join([
        "", f"refnet chaos: {stack.database}, {len(flow.ledger.cases)} cases acknowledged at {flow.rate:g}/s",
        f"calls retried: {counts(flow.retries)}; refused or given up: {counts(flow.refused)}",
        "took = the fault until the process is ready again; drained = from then until the backlog (registrations "
        f"being retried + unsent outbox rows + consumer lag) is back to {threshold} (two seconds of arrivals)",
        "", faults, warning, held])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5, help="cases/s while faults are injected")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite (adds its fault)")
    parser.add_argument("--cohost", choices=["worker+relay", "all"],
                        help="run each service's worker and relay (or all three roles) in one process")
    parser.add_argument("--stop-seconds", type=float, default=5, help="how long SIGSTOP / PostgreSQL stay down")
    parser.add_argument("--threshold", type=int, default=0, help="backlog at or below which it counts as drained "
                        "(default: two seconds of arrivals, at least 5)")
    parser.add_argument("--drain-timeout", type=float, default=45, help="most to wait for a drain after a fault")
    parser.add_argument("--final-drain-timeout", type=float, default=90)
    parser.add_argument("--warm-up", type=float, default=10, help="seconds of flow before waiting for a steady state")
    parser.add_argument("--max-minutes", type=float, default=10, help="the whole run's time budget")
    parser.add_argument("--reserve-s", type=float, default=150,
                        help="stop injecting faults when less than this is left of the budget")
    parser.add_argument("--only", nargs="*", help="only faults whose name contains one of these words")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, databases) afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="refnet-chaos-"))
    ok = False
    try:
        with running(data_dir, postgres=args.postgres, extra_env=CHAOS_ENV, cohost=args.cohost) as stack:
            results, invariants, flow, threshold = asyncio.run(chaos(stack, args))
            print(render(results, invariants, flow, stack, threshold))
            ok = all(i.held for i in invariants)
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
    except Exception as exc:
        print(f"chaos: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if args.keep or not ok:
            print(f"logs and databases kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
