"""The bench starts on a quiet machine: it waits, a bounded time, for the load average to settle."""

from __future__ import annotations

from bench import report
from bench.run import wait_for_quiet


class FakeMachine:
    """A load average that falls by `step` each second slept; time passes only in sleep."""

    def __init__(self, load: float, step: float) -> None:
        self.load, self.step, self.now = load, step, 0.0

    def loadavg(self) -> float:
        return self.load

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.load = max(self.load - self.step * seconds, 0.0)

    def monotonic(self) -> float:
        return self.now


def test_a_quiet_machine_starts_at_once() -> None:
    machine = FakeMachine(load=0.2, step=0.1)
    assert wait_for_quiet(0.5, 180, machine.loadavg, machine.sleep, machine.monotonic) == (0.0, 0.2)


def test_it_waits_until_the_load_falls_below_the_threshold() -> None:
    machine = FakeMachine(load=2.0, step=0.1)
    waited, load = wait_for_quiet(0.5, 180, machine.loadavg, machine.sleep, machine.monotonic)
    assert load < 0.5 and 15 <= waited <= 16


def test_it_gives_up_after_the_most_it_may_wait() -> None:
    machine = FakeMachine(load=4.0, step=0.01)
    waited, load = wait_for_quiet(0.5, 30, machine.loadavg, machine.sleep, machine.monotonic)
    assert waited == 30 and load > 0.5


def test_the_report_says_how_long_it_waited_for_the_load() -> None:
    results = {"started_at": "2026-12-07T04:00:00+00:00", "database": "SQLite", "config": {},
               "machine": {"cpus": 2, "load_start": 0.41, "quiet_wait_s": 95.0, "load_end": 3.2}}
    header = report.render(results).splitlines()[0]
    assert "load average 0.41 at start (after 95 s waiting for it to settle), 3.20 at end" in header
    results["machine"]["quiet_wait_s"] = 0.0
    assert "at start, 3.20 at end" in report.render(results).splitlines()[0]
