"""A co-hosted process (refnet-cohost): each role's loop answers for itself in /healthz, so a worker going round
cannot hide its relay's hang; the process's side door has a port variable of its own; a role that registers its
stop after the process began stopping stops at once."""

from __future__ import annotations

import threading
import time

import pytest

from refnet_platform import metrics
from refnet_platform.health_http import HealthServer, metrics_port
from refnet_platform.runtime import _Cohost


def _beat_on(thread_name: str) -> None:
    thread = threading.Thread(target=metrics.heartbeat, name=thread_name)
    thread.start()
    thread.join()


def test_one_co_hosted_loop_going_round_does_not_hide_the_other_stalling() -> None:
    server = HealthServer("127.0.0.1", 0, {}, stall_s=0.2, loops=["svc-worker", "svc-relay"]).start()
    try:
        _beat_on("svc-worker")
        _beat_on("svc-relay")
        assert server.alive() == (True, "ok")
        time.sleep(0.3)
        _beat_on("svc-worker")  # the worker goes on; the relay is stuck
        alive, reason = server.alive()
        assert not alive and reason.startswith("svc-relay loop stalled")
        _beat_on("svc-relay")
        assert server.alive() == (True, "ok")
    finally:
        server.stop()


def test_a_co_hosted_process_reads_its_own_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_WORKER_RELAY_METRICS_PORT", "9465")
    assert metrics_port("intake", "worker+relay") == 9465


def test_a_role_registering_its_stop_after_the_process_began_stopping_stops_at_once() -> None:
    host = _Cohost("svc", ["api", "worker", "relay"])
    early, late = threading.Event(), threading.Event()
    host.on_stop("api", early.set)
    host.stop()  # a SIGTERM during start-up: the worker is still opening its database
    assert early.is_set() and not late.is_set()
    host.on_stop("worker", late.set)
    assert late.is_set()
