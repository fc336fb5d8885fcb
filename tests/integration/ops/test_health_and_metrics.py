"""Every process's HTTP side door (/metrics, /healthz, /readyz); the gRPC metrics interceptor is tested with the
platform's other interceptors (tests/integration/platform/test_grpc_server.py)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from refnet_dev.kafka import KafkaBroker
from refnet_dev.util import free_port
from refnet_platform import metrics
from refnet_platform.engine import make_engine
from refnet_platform.health_http import HealthServer, database_check, kafka_check, metrics_port

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_readiness_reflects_kafka_and_the_database(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    up = HealthServer("127.0.0.1", 0, {"database": database_check(engine),
                                       "kafka": kafka_check(kafka_broker.bootstrap)}).start()
    down = HealthServer("127.0.0.1", 0, {"database": database_check(engine),
                                         "kafka": kafka_check(f"127.0.0.1:{free_port()}")}).start()
    try:
        status, body = get(f"http://127.0.0.1:{up.port}/readyz")
        assert status == 200 and json.loads(body) == {"ready": True, "checks": {"database": "ok", "kafka": "ok"}}
        status, body = get(f"http://127.0.0.1:{down.port}/readyz")
        report = json.loads(body)
        assert status == 503 and report["checks"]["database"] == "ok"
        assert "refused" in report["checks"]["kafka"].lower()
        metrics.EVENTS_CONSUMED.labels("intake.cases.v1", "refnet.intake.v1.CaseRegistered", "handled").inc()
        status, body = get(f"http://127.0.0.1:{up.port}/metrics")
        assert status == 200
        assert b'refnet_events_consumed_total{outcome="handled",topic="intake.cases.v1"' in body
        assert get(f"http://127.0.0.1:{up.port}/nothing")[0] == 404
    finally:
        up.stop()
        down.stop()
        engine.dispose()


def test_liveness_fails_when_the_main_loop_stops_going_round() -> None:
    server = HealthServer("127.0.0.1", 0, {}, stall_s=0.2).start()
    try:
        metrics.heartbeat()
        assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
        time.sleep(0.4)
        status, body = get(f"http://127.0.0.1:{server.port}/healthz")
        assert status == 503 and b"stalled" in body
        metrics.heartbeat()
        assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
    finally:
        server.stop()


def test_the_metrics_port_comes_from_the_process_or_the_service_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_METRICS_PORT", "9464")
    assert metrics_port("intake", "worker") == 9464
    monkeypatch.setenv("INTAKE_WORKER_METRICS_PORT", "9101")
    assert metrics_port("intake", "worker") == 9101
    assert metrics_port("shelter", "relay") == 0
