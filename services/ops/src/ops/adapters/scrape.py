"""Watches every refnet process through its HTTP side door (/healthz, /readyz, /metrics) and keeps a short
history of what it saw, so the console can show rates and plot them."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# What the console reads off each process: the sum of all samples of each metric.
SUMS: dict[str, str] = {
    "consumed": "refnet_events_consumed_total",
    "produced": "refnet_events_produced_total",
    "dead_letters": "refnet_dead_letters_total",
    "retries": "refnet_event_retries_total",
    "grpc": "refnet_grpc_requests_total",
    "lag": "refnet_consumer_lag",
    "backlog": "refnet_outbox_backlog",
    "oldest_age": "refnet_outbox_oldest_age_seconds",
}


@dataclass(frozen=True)
class Sample:
    at: float
    alive: bool | None  # None: no answer at all
    ready: bool | None
    checks: dict[str, str]
    values: dict[str, float]
    grpc_errors: float = 0.0
    error: str = ""


@dataclass
class ProcessView:
    name: str
    url: str
    alive: bool | None
    ready: bool | None
    checks: dict[str, str]
    error: str
    values: dict[str, float]
    rates: dict[str, float]  # per second, from the last two samples
    history: dict[str, list[float]] = field(default_factory=dict)  # per-second rates, oldest first

    @property
    def service(self) -> str:
        return self.name.rsplit("-", 1)[0]

    @property
    def role(self) -> str:
        return self.name.rsplit("-", 1)[-1]

    @property
    def state(self) -> str:
        if self.alive is None:
            return "down"
        if not self.alive:
            return "stalled"
        return "ready" if self.ready else "not ready"


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:  # 503 still carries the JSON that says why
        return exc.code, exc.read()


def parse_metrics(text: str) -> tuple[dict[str, float], float]:
    values = dict.fromkeys(SUMS, 0.0)
    grpc_errors = 0.0
    wanted = {metric: key for key, metric in SUMS.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = wanted.get(sample.name)
            if key is None:
                continue
            values[key] += sample.value
            if key == "grpc" and sample.labels.get("code", "OK") != "OK":
                grpc_errors += sample.value
    return values, grpc_errors


def sample(url: str, timeout: float = 1.5) -> Sample:
    now = time.time()
    try:
        live_status, _ = _get(f"{url}/healthz", timeout)
        ready_status, ready_body = _get(f"{url}/readyz", timeout)
        _, metrics_body = _get(f"{url}/metrics", timeout)
    except (OSError, ValueError) as exc:
        return Sample(now, None, None, {}, {}, error=str(getattr(exc, "reason", exc))[:200])
    try:
        checks = {str(k): str(v) for k, v in json.loads(ready_body).get("checks", {}).items()}
    except ValueError:
        checks = {}
    values, grpc_errors = parse_metrics(metrics_body.decode(errors="replace"))
    return Sample(now, live_status == 200, ready_status == 200, checks, values, grpc_errors)


RATE_KEYS = ("consumed", "produced", "grpc", "dead_letters")


class Scraper:
    def __init__(self, targets: dict[str, str], keep: int = 120) -> None:
        self.targets = targets
        self._history: dict[str, deque[Sample]] = {name: deque(maxlen=keep) for name in targets}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(min(len(targets), 16), 1), thread_name_prefix="scrape")

    def scrape_once(self) -> None:
        results = dict(zip(self.targets, self._pool.map(sample, self.targets.values()), strict=True))
        with self._lock:
            for name, got in results.items():
                self._history[name].append(got)

    def views(self) -> list[ProcessView]:
        with self._lock:
            histories = {name: list(h) for name, h in self._history.items()}
        return [self._view(name, histories[name]) for name in self.targets]

    def _view(self, name: str, samples: list[Sample]) -> ProcessView:
        if not samples:
            return ProcessView(name, self.targets[name], None, None, {}, "not sampled yet", {}, {})
        last = samples[-1]
        answered = [s for s in samples if s.alive is not None]
        history: dict[str, list[float]] = {k: [] for k in (*RATE_KEYS, "lag", "backlog")}
        for before, after in itertools.pairwise(answered):
            dt = max(after.at - before.at, 1e-3)
            for key in RATE_KEYS:  # a restarted process starts its counters again at zero
                history[key].append(max(after.values.get(key, 0) - before.values.get(key, 0), 0) / dt)
            history["lag"].append(after.values.get("lag", 0))
            history["backlog"].append(after.values.get("backlog", 0))
        rates = {key: values[-1] if values else 0.0 for key, values in history.items() if key in RATE_KEYS}
        if len(answered) >= 2 and last.alive is not None:
            prev = answered[-2]
            rates["grpc_errors"] = max(last.grpc_errors - prev.grpc_errors, 0) / max(last.at - prev.at, 1e-3)
        return ProcessView(name, self.targets[name], last.alive, last.ready, last.checks, last.error,
                           last.values, rates, history)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
