"""`make bench`: refnet's latency and throughput at fixed arrival rates, next to a bare Kafka floor.

For each arrival rate (open loop: requests go on schedule whatever is still in flight):
  1. the floor: a bare chain of Kafka forwarders with the same hop count (bench/floor.py);
  2. the gRPC floor: Health/Check on intake's api over the same mTLS connection;
  3. refnet: RegisterCase over mTLS as an operator; from the event topics, intake's commit -> the first
     provider notice, and -> every need's provider notified.
Then the floor saturated; the web front door at 20 concurrent signed-in operators (bench/web.py: page latency,
and a hand-off's commit -> the operator's live page); and the backlog: N normal cases pre-loaded while the
referral worker is stopped, the worker started again, and emergencies sent while that backlog drains.
`--only web` runs the web phase alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2_grpc

from bench import report
from bench.flame import Flames
from bench.floor import OUT_TOPIC, FloorChain
from bench.invariants import KafkaView
from bench.load import (
    NEEDS,
    OPERATOR,
    Call,
    Send,
    aio_channel,
    case_request,
    closed_loop,
    health_sender,
    open_loop,
    register_sender,
)
from bench.stack import Stack, running
from bench.stats import KAFKA, backlog_cpu, cores_used, cpu_seconds, cpu_used, is_refnet, per_item_ms, rate, summarize
from bench.tap import Tap
from bench.web import WebPhase
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# A case's path in four parts, between the times the tap reads: intake's commit, the record's timestamp as intake's
# relay sent it, referral's commit, its relay's send, the provider notice's commit. A worker's part includes Kafka.
HOPS = ("intake relay", "Kafka + referral worker", "referral relay", "Kafka + notifications worker")


class Clock:
    """The run's time budget: each phase asks how much is left."""

    def __init__(self, minutes: float) -> None:
        self.end = time.monotonic() + minutes * 60

    def left(self) -> float:
        return self.end - time.monotonic()


async def wait_for(done: Callable[[], bool], timeout: float, status: Callable[[], str] | None = None,
                   label: str = "") -> bool:
    """Polls `done` until true or the timeout; prints `status` every 2 s. Returns whether it got done."""
    deadline = time.monotonic() + max(timeout, 0)
    shown = time.monotonic()
    while not done():
        if time.monotonic() > deadline:
            return False
        if status and time.monotonic() - shown >= 2:
            shown = time.monotonic()
            progress(f"{label} {status()}")
        await asyncio.sleep(0.05)
    return True


def progress(line: str) -> None:
    print(f"  .. {line}", file=sys.stderr, flush=True)


def wait_for_quiet(below: float, most_s: float, loadavg: Callable[[], float] = lambda: os.getloadavg()[0],
                   sleep: Callable[[float], None] = time.sleep,
                   monotonic: Callable[[], float] = time.monotonic) -> tuple[float, float]:
    """Waits (at most `most_s`) for the 1-minute load average to fall below `below`: the figures are a quiet
    machine's, not the tail of a previous run's (a broker still stopping, a test suite). Returns (seconds
    waited, the load average then)."""
    started = shown = monotonic()
    load = loadavg()
    while load >= below and monotonic() - started < most_s:
        if monotonic() - shown >= 15:
            shown = monotonic()
            progress(f"waiting for a quiet machine: load average {load:.2f}, starting below {below:.2f} "
                     f"(at most {most_s - (monotonic() - started):.0f} s more)")
        sleep(1)
        load = loadavg()
    return monotonic() - started, load


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace, tap: Tap, floor: FloorChain,
                 intake: intake_grpc.IntakeServiceStub, health: health_pb2_grpc.HealthStub,
                 flame_dir: Path | None = None) -> None:
        self.stack, self.args, self.tap, self.floor = stack, args, tap, floor
        self.flame_dir = flame_dir  # --flame: where the py-spy graphs go
        self.notes: list[str] = []
        self.flames: list[Flames] = []  # py-spy recordings under way: stopped even when a phase fails
        self.intake, self.health = intake, health
        self.clock = Clock(args.max_minutes)
        self.run_id = datetime.now(UTC).strftime("%H%M%S")
        self.case_no = 0

    def _register(self, emergency: bool = False) -> Send:
        def make(_: int) -> Any:
            self.case_no += 1
            return case_request(self.case_no, emergency=emergency, run=self.run_id)

        return register_sender(self.intake, make)

    # -- warm-up: every process connected, every consumer group joined, every producer has metadata --

    async def warm_up(self) -> None:
        progress("warming up: waiting for a case to reach a provider and a message through the floor")
        timeline = self.tap.timeline
        send = self._register()
        first: list[Call] = []
        ids: list[int] = []

        async def refnet_ready() -> bool:
            first.append(await send(0, asyncio.get_running_loop().time()))
            return await wait_for(lambda: timeline.notified([c.case_id for c in first]) > 0, 1.0)

        async def floor_ready() -> bool:
            ids.extend(self.floor.new_ids(1))
            await asyncio.to_thread(self.floor.send, ids[-1:], None)
            return await wait_for(lambda: any(i in timeline.floor for i in ids), 1.0)

        deadline = time.monotonic() + 120
        while not await refnet_ready():
            self.stack.network.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("no case reached a provider within 120 s of start-up")
        while not await floor_ready():
            self.floor.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("no message came through the floor chain within 120 s")
        await self.refnet_phase(5, 2, record=False)
        await self.floor_phase(5, 2)
        await open_loop(health_sender(self.health), 20, 1)

    # -- the phases ---------------------------------------------------------------------------------

    async def floor_phase(self, rate_: float, duration_s: float) -> dict[str, Any]:
        ids = self.floor.new_ids(max(1, round(rate_ * duration_s)))
        out = self.tap.timeline.floor
        await asyncio.to_thread(self.floor.send, ids, rate_)
        drained = await wait_for(lambda: all(i in out for i in ids), self.args.drain_timeout,
                                 lambda: f"{sum(i in out for i in ids)}/{len(ids)} through", f"floor {rate_:g}/s")
        got = [out[i] for i in ids if i in out]
        last_sent = max((s for s, _ in got), default=0.0)
        return {
            "sent": len(ids), "received": len(got), "latency_ms": summarize([(t1 - t0) * 1000 for t0, t1 in got]),
            "throughput_mps": rate([t1 for _, t1 in got]),
            "drain_s": max(t1 for _, t1 in got) - last_sent if drained and got else None, "drained": drained,
        }

    async def grpc_floor_phase(self, rate_: float, duration_s: float) -> dict[str, Any]:
        calls = await open_loop(health_sender(self.health), rate_, duration_s)
        return {"calls": len(calls), "errors": sum(1 for c in calls if c.error),
                "latency_ms": summarize([c.latency_ms for c in calls if c.latency_ms is not None])}

    async def refnet_phase(self, rate_: float, duration_s: float, record: bool = True) -> dict[str, Any]:
        self.stack.network.check_alive()
        timeline = self.tap.timeline
        expected = len(NEEDS)
        label = f"refnet {rate_:g}/s"

        def tick(started: int, done: int) -> None:
            if started % max(1, round(rate_ * 2)) == 0:
                progress(f"{label}: {started} sent, {done} answered, {len(timeline.committed)} committed in all")

        cpu_before, started = cpu_seconds(self.stack.pids()), time.monotonic()
        calls = await open_loop(self._register(), rate_, duration_s, on_tick=tick)
        cases = [c.case_id for c in calls if c.case_id]

        def fully() -> int:
            return sum(1 for c in cases if timeline.all_notices(c, expected) is not None)

        drained = await wait_for(lambda: fully() == len(cases), self.args.drain_timeout,
                                 lambda: f"{timeline.notified(cases)}/{len(cases)} notified, {fully()} fully", label)
        if not record:
            return {}
        cpu_after = cpu_seconds(self.stack.pids())
        cpu = cpu_used(cpu_before, cpu_after)
        return {**self.case_figures(calls, cases, drained), "cpu_s": cpu,
                "cores_used": cores_used(cpu_before, cpu_after, time.monotonic() - started),
                "cpu_ms_per_case": per_item_ms(cpu, len(cases))}

    def case_figures(self, calls: list[Call], cases: list[str], drained: bool) -> dict[str, Any]:
        timeline = self.tap.timeline
        expected = len(NEEDS)
        notice, full, full_at = [], [], []
        hops: dict[str, list[float]] = {name: [] for name in HOPS}
        for c in cases:
            committed, first, last = timeline.committed.get(c), timeline.first_notice(c), \
                timeline.all_notices(c, expected)
            if committed and first:
                notice.append((first - committed) * 1000)
            edges = timeline.path(c)
            if edges:  # where the time goes: each relay's and each worker's share
                for name, start, end in zip(HOPS, edges, edges[1:], strict=False):
                    hops[name].append((end - start) * 1000)
            if committed and last:
                full.append((last - committed) * 1000)
                full_at.append(last)
        last_sent = max((call.sent_at for call in calls), default=0.0)
        drain_s = max(full_at) - last_sent if drained and full_at else None
        errors: dict[str, int] = {}
        for call in calls:
            if call.error:
                errors[call.error] = errors.get(call.error, 0) + 1
        return {
            "offered": len(calls), "registered": len(cases), "errors": errors,
            "register_ms": summarize([call.latency_ms for call in calls if call.latency_ms is not None]),
            "sender_late_ms": summarize([call.late_ms for call in calls]),
            "notice_ms": summarize(notice), "full_ms": summarize(full),
            "hops_ms": {name: summarize(times) for name, times in hops.items()},
            "notified": len(notice), "fully_notified": len(full), "throughput_cps": rate(full_at),
            "drain_s": drain_s, "drained": drained,
            "sustained": bool(drained and not errors and drain_s is not None and drain_s <= self.args.slack),
        }

    def floor_pids(self) -> dict[str, int]:
        """The floor chain's processes, its broker and the bench (whose thread is the floor's source)."""
        pids = self.stack.pids()
        return {**self.floor.pids(), **{name: pids[name] for name in (KAFKA, "bench") if name in pids}}

    async def floor_saturation(self) -> dict[str, Any]:
        ids = self.floor.new_ids(self.args.floor_saturation)
        out = self.tap.timeline.floor
        flames = self.start_flames(self.floor.pids(), "floor saturated")
        cpu_before = cpu_seconds(self.floor_pids())
        await asyncio.to_thread(self.floor.send, ids, None)
        await wait_for(lambda: all(i in out for i in ids), min(self.args.drain_timeout, self.clock.left()),
                       lambda: f"{sum(i in out for i in ids)}/{len(ids)} through", "floor saturated")
        cpu = cpu_used(cpu_before, cpu_seconds(self.floor_pids()))
        self.stop_flames(flames)
        through = sum(1 for i in ids if i in out)
        return {"messages": len(ids), "throughput_mps": rate([out[i][1] for i in ids if i in out]),
                "cpu_s": cpu, "cpu_ms_per_message": per_item_ms(cpu, through)}

    # -- CPU accounting and flame graphs --------------------------------------------------------------

    def start_flames(self, pids: dict[str, int], phase: str) -> Flames | None:
        if not self.flame_dir:
            return None
        progress(f"flame graphs: py-spy records {', '.join(pids)} while the {phase} phase runs")
        flames = Flames(self.flame_dir)
        self.flames.append(flames)
        flames.start(pids)
        return flames

    def stop_flames(self, flames: Flames | None) -> None:
        if flames is not None and flames in self.flames:
            self.flames.remove(flames)
            for problem in flames.stop():
                self.notes.append(problem)
                progress(problem)

    async def settled(self, cases: list[str], timeout: float) -> bool:
        """Until every case's every provider was notified and every worker group has read every record the cases
        caused (intake's worker reads referral's events after the first notices went out): the end of the
        work the cases cost."""
        timeline, expected = self.tap.timeline, len(NEEDS)
        if not await wait_for(lambda: all(timeline.all_notices(c, expected) for c in cases), timeout):
            return False
        view = KafkaView(self.stack.broker.bootstrap)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lag = await asyncio.to_thread(view.lag)
            if not any(n for topics in lag.values() for n in topics.values()):
                return True
            await asyncio.sleep(0.5)
        return False

    async def mail_sent(self, timeout: float) -> None:
        """With --email: until the mail server has taken no e-mail for a second (the dispatch rounds are done)."""
        mail = self.stack.mail
        assert mail is not None
        taken, since, deadline = mail.count, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - since < 1.0:
            await asyncio.sleep(0.1)
            if mail.count != taken:
                taken, since = mail.count, time.monotonic()
        self.notes.append(f"--email: the bench's mail server took {mail.count} e-mails (the providers' duty desks)")

    async def backlog(self) -> dict[str, Any]:
        """N normal cases wait on intake.cases while the referral worker is down; then it starts again and
        emergencies are registered while the backlog drains. Their latency is what the urgent lane buys."""
        network, timeline, n = self.stack.network, self.tap.timeline, self.args.backlog
        await asyncio.to_thread(network.stop_process, network.host_of("referral", "worker"))
        cpu_start = cpu_seconds(self.stack.pids())
        progress(f"backlog: referral worker stopped; registering {n} cases as fast as intake answers")
        def tick(done: int) -> None:
            if done % 1000 == 0:
                progress(f"backlog: {done}/{n} registered")

        started = time.monotonic()
        calls = await closed_loop(self._register(), n, self.args.concurrency, tick)
        register_s = time.monotonic() - started
        cases = [c.case_id for c in calls if c.case_id]
        await wait_for(lambda: all(c in timeline.committed for c in cases), self.args.drain_timeout,
                       lambda: f"{sum(c in timeline.committed for c in cases)}/{len(cases)} on intake.cases",
                       "backlog")
        cpu_preloaded = cpu_seconds(self.stack.pids())
        await asyncio.to_thread(network.start_process, network.host_of("referral", "worker"))
        resumed = time.time()
        drain_pids = self.stack.pids()  # the referral worker's new pid: its start-up counts in the drain
        cpu_resumed = cpu_seconds(drain_pids)
        flames = self.start_flames({name: pid for name, pid in drain_pids.items()
                                    if is_refnet(name) and name != "postgres"}, "drain")  # Python's only
        progress(f"backlog: {len(cases)} cases on intake.cases; referral worker started again")
        await wait_for(lambda: timeline.notified(cases) > 0, 120)

        left_at_send: list[float] = []
        send = self._register(emergency=True)

        async def emergency(i: int, due: float) -> Call:
            left_at_send.append(len(cases) - timeline.notified(cases))
            return await send(i, due)

        def sent(k: int, _: int) -> None:
            if k % 10 == 0:
                progress(f"backlog: {k} emergencies sent, {len(cases) - timeline.notified(cases)} cases still waiting")

        stop_below = len(cases) // 10
        emergencies = await open_loop(
            emergency, self.args.emergency_rate, self.args.emergencies / self.args.emergency_rate,
            until=lambda: len(cases) - timeline.notified(cases) <= stop_below, on_tick=sent)
        urgent = [c.case_id for c in emergencies if c.case_id]
        everything = cases + urgent
        drained = await wait_for(lambda: timeline.notified(everything) == len(everything),
                                 min(self.args.backlog_timeout, self.clock.left()),
                                 lambda: f"{timeline.notified(cases)}/{len(cases)} notified", "backlog")
        settled = drained and await self.settled(everything, min(60, self.clock.left()))
        if settled and self.stack.mail:
            await self.mail_sent(min(60, self.clock.left()))
        cpu_drained = cpu_seconds(self.stack.pids())
        self.stop_flames(flames)
        if drained and not settled:
            self.notes.append("the backlog's CPU per case stops before every notice was out and every worker had "
                              "read everything (not within 60 s of the drain): a part of the work is missing")
        firsts = [t for c in cases if (t := timeline.first_notice(c))]
        figures = self.case_figures(emergencies, urgent, drained)
        cpu = backlog_cpu(cpu_used(cpu_start, cpu_preloaded), cpu_used(cpu_resumed, cpu_drained), len(everything))
        return {
            "cases": len(cases), "register_rate": len(calls) / register_s if register_s else None,
            "register_ms": summarize([c.latency_ms for c in calls if c.latency_ms is not None]),
            "drain_rate_cps": rate(firsts), "drain_s": max(firsts) - resumed if drained and firsts else None,
            "drained": drained, "emergencies": len(urgent), "emergency_ms": figures["notice_ms"],
            "emergency_hops_ms": figures["hops_ms"], "emergency_register_ms": figures["register_ms"],
            "backlog_at_send": summarize(left_at_send), "cpu": {**cpu, "settled": settled},
        }

    async def run(self, results: dict[str, Any]) -> None:
        self.notes = results["notes"]
        try:
            await self.phases(results)
        finally:
            for flames in list(self.flames):
                self.stop_flames(flames)

    async def phases(self, results: dict[str, Any]) -> None:
        await self.warm_up()
        d = self.args.phase_seconds
        for r in self.args.rates:
            if self.clock.left() < 3 * d:
                results["notes"].append(f"rate {r:g}/s skipped: the run's time budget (--max-minutes) ran out")
                continue
            print(f"== {r:g}/s for {d:g} s: floor, gRPC floor, refnet", file=sys.stderr, flush=True)
            phase = {"rate": r, "floor": await self.floor_phase(r, d),
                     "grpc_floor": await self.grpc_floor_phase(r, min(d, 5)),
                     "refnet": await self.refnet_phase(r, d)}
            results["phases"].append(phase)
            late = phase["refnet"]["sender_late_ms"]["p99"] or 0
            if late > 10:
                results["notes"].append(f"at {r:g}/s the load generator itself ran {late:.0f} ms late (p99): "
                                        "RegisterCase latency counts from when a call was due, so it includes that")
            print(report.render_table(report.PHASE_HEADERS, report.phase_rows({"phases": [phase]})),
                  file=sys.stderr, flush=True)
        if self.args.floor_saturation and self.clock.left() > 30:
            print("== the floor, saturated", file=sys.stderr, flush=True)
            results["floor_saturation"] = await self.floor_saturation()
        if self.args.web_operators and self.clock.left() > self.args.web_seconds + 60:
            await self.web_phase(results)
        elif self.args.web_operators:
            results["notes"].append("web phase skipped: the run's time budget (--max-minutes) ran out")
        if self.args.backlog and self.clock.left() > 60:
            print(f"== backlog of {self.args.backlog} cases, emergencies while it drains", file=sys.stderr, flush=True)
            results["backlog"] = await self.backlog()
        elif self.args.backlog:
            results["notes"].append("backlog phase skipped: the run's time budget (--max-minutes) ran out")


    async def web_phase(self, results: dict[str, Any]) -> None:
        try:
            await run_web_phase(self.stack, self.args, results, self.run_id)
        except Exception as exc:  # the other phases' figures still count
            results["notes"].append(f"the web phase failed: {type(exc).__name__}: {exc}")
            print(f"bench: the web phase failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


async def run_web_phase(stack: Stack, args: argparse.Namespace, results: dict[str, Any], run_id: str) -> None:
    print(f"== the web front door: {args.web_operators} signed-in operators for {args.web_seconds:g} s",
          file=sys.stderr, flush=True)
    stack.network.check_alive()
    figures = await WebPhase(stack, args.web_operators, args.web_seconds, args.web_interval,
                             args.web_commit_interval, progress).run(f"web{run_id}")
    results["notes"].extend(figures.pop("notes"))
    results["web"] = figures
    print("\n".join(report.web_lines(results)), file=sys.stderr, flush=True)


async def bench(stack: Stack, args: argparse.Namespace, results: dict[str, Any], flame_dir: Path | None) -> None:
    if args.only == "web":
        await run_web_phase(stack, args, results, datetime.now(UTC).strftime("%H%M%S"))
        return
    bootstrap = stack.broker.bootstrap
    with FloorChain(bootstrap, args.floor_hops, stack.network.data_dir / "logs") as floor:
        async with Tap(bootstrap, OPERATOR, floor_topic=OUT_TOPIC) as tap, \
                aio_channel(stack.network, "intake", OPERATOR, "operator") as channel:
            await Bench(stack, args, tap, floor, intake_grpc.IntakeServiceStub(channel),
                        health_pb2_grpc.HealthStub(channel), flame_dir).run(results)


def _commit() -> str:
    """The checkout measured: its commit, "+dirty" when it has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=RESULTS_DIR.parent).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no")
                                                   else "")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=[5, 20, 50, 100, 200],
                        help="arrival rates, cases/s (default 5,20,50,100,200)")
    parser.add_argument("--phase-seconds", type=float, default=15, help="how long each rate is offered")
    parser.add_argument("--drain-timeout", type=float, default=60, help="most to wait for a phase's cases")
    parser.add_argument("--slack", type=float, default=2.0,
                        help="a rate is kept up with if every case is notified within this many s of the last send")
    parser.add_argument("--floor-hops", type=int, default=2, help="Kafka hops in the floor chain (refnet: 2)")
    parser.add_argument("--floor-saturation", type=int, default=20000, help="messages to push through the floor "
                        "as fast as possible (0: skip)")
    parser.add_argument("--backlog", type=int, default=10000, help="normal cases pre-loaded (0: skip)")
    parser.add_argument("--backlog-timeout", type=float, default=300, help="most to wait for the backlog to drain")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight while pre-loading")
    parser.add_argument("--emergency-rate", type=float, default=5, help="emergencies/s while the backlog drains")
    parser.add_argument("--emergencies", type=int, default=200, help="most emergencies to send")
    parser.add_argument("--web-operators", type=int, default=20, help="signed-in operators in the web phase "
                        "(0: skip it)")
    parser.add_argument("--web-seconds", type=float, default=30, help="how long the web phase's load runs")
    parser.add_argument("--web-interval", type=float, default=1.0, help="each operator fetches a page this often (s)")
    parser.add_argument("--web-commit-interval", type=float, default=1.0,
                        help="a referral hand-off committed this often (s) while the pages load")
    parser.add_argument("--only", choices=["web"], help="run only this phase (web: the front door, no Kafka floor)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite files")
    parser.add_argument("--email", action="store_true", help="providers' duty desks e-mailed as in production (the "
                        "notifications worker dispatches to an SMTP server of the bench's that drops the mail)")
    parser.add_argument("--cohost", choices=["worker+relay", "all"],
                        help="run each service's worker and relay (or all three roles) in one process")
    parser.add_argument("--max-minutes", type=float, default=20, help="the whole run's time budget")
    parser.add_argument("--quiet-below", type=float, default=0.5, help="before starting, wait for the 1-minute load "
                        "average to fall below this (the tail of an earlier run settles)")
    parser.add_argument("--quiet-wait", type=float, default=180, help="most seconds to wait for it (0: start at once)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, databases) afterwards")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON and SVG go")
    parser.add_argument("--baseline", type=Path, help="an earlier run's results JSON (e.g. the unchanged code's, "
                        "same session): capacity and CPU per case are compared with it")
    parser.add_argument("--flame", action="store_true", help="py-spy flame graphs of every refnet process while "
                        "the backlog drains (and of the floor's while it is saturated): <out>/<time>-flame/*.svg")
    args = parser.parse_args(argv)
    if args.baseline:
        try:
            args.baseline_results = json.loads(args.baseline.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--baseline {args.baseline}: {exc}")
    if args.only == "web" and args.web_operators <= 0:
        parser.error("--only web needs --web-operators > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    waited_s, load = wait_for_quiet(args.quiet_below, args.quiet_wait)
    data_dir = Path(tempfile.mkdtemp(prefix="refnet-bench-"))
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"), "database": "PostgreSQL" if args.postgres else "SQLite",
        "machine": {"cpus": os.cpu_count(), "load_start": load, "quiet_wait_s": round(waited_s, 1),
                    "commit": _commit()},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "phases": [], "notes": [],
    }
    if load >= args.quiet_below:
        results["notes"].append(f"the machine was not quiet: load average {load:.2f} after waiting {waited_s:.0f} s "
                                f"for it to fall below {args.quiet_below:.2f}; the figures carry that load")
    stem = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    flame_dir = stem.parent / f"{stem.name}-flame" if args.flame else None
    if args.baseline:
        results["config"].pop("baseline_results")
        results["baseline"] = report.baseline_figures(args.baseline_results, str(args.baseline))
    if flame_dir:
        results["notes"].append(f"--flame: py-spy sampled every process while the floor was saturated and while the "
                                f"backlog drained (graphs in {flame_dir}); those phases' throughput and CPU carry "
                                "its load")
    failed = True
    try:
        with running(data_dir, postgres=args.postgres, web=bool(args.web_operators) or args.only == "web",
                     cohost=args.cohost, email=args.email) as stack:
            asyncio.run(bench(stack, args, results, flame_dir))
        failed = False
    except KeyboardInterrupt:
        results["notes"].append("interrupted")
    except Exception as exc:
        results["notes"].append(f"the run failed: {type(exc).__name__}: {exc}")
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        results["machine"]["load_end"] = os.getloadavg()[0]
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        report.write_json(results, stem.with_suffix(".json"))
        stem.with_suffix(".svg").write_text(report.render_svg(results))
        print(report.render(results))
        print(f"\nresults: {stem}.json, plot: {stem}.svg")
        if args.keep or failed:
            print(f"logs and databases kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failed else 0
