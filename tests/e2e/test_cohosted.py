"""refnet co-hosted (Network(cohost="worker+relay"): each service's worker and relay in one process,
refnet-cohost) on real Kafka and SQLite: cases flow through to the providers' notices; a co-hosted process
killed with SIGKILL mid-flow and started again loses nothing and repeats nothing; SIGTERM stops one within
a bound; its side door answers for both roles."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as notifications_grpc
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import SERVICES, Network
from refnet_dev.util import eventually

pytestmark = pytest.mark.e2e

QUANG_NINH, BAI_CHAY, POLICE = "22", "06673", "qn-police-baichay"
# Separate processes stop within the harness's 15 s; a co-hosted one stops its roles together, as fast.
STOP_BOUND_S = 15.0


@pytest.fixture
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, tmp_path: Path) -> Iterator[Network]:
    net = Network(kafka_broker.bootstrap, tmp_path / "var", keycloak=keycloak, cohost="worker+relay")
    try:
        net.start()
        yield net
    finally:
        net.stop()


def _case(run: str, i: int) -> intake_pb.RegisterCaseRequest:
    return intake_pb.RegisterCaseRequest(
        client_request_id=f"cohost-{run}-{i}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=30, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True)],
        case_worker_id="qn-worker-7")


def _get(url: str) -> tuple[int, dict[str, Any] | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = reply.read().decode()
            return reply.status, json.loads(body) if "json" in reply.headers["Content-Type"] else body
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())
    except OSError as exc:  # not listening yet: the side door opens once every role is up
        return 0, str(exc)


def test_co_hosted_worker_and_relay_killed_mid_flow_lose_and_repeat_nothing(network: Network) -> None:
    assert network.process_names() == [*(f"{s}-api" for s in SERVICES), *(f"{s}-worker+relay" for s in SERVICES)]
    assert network.host_of("referral", "relay") == "referral-worker+relay"
    # One side door per co-hosted process: ready with both roles up; alive while both loops go round.
    door = network.metrics_url("referral-worker+relay")
    eventually(lambda: _get(f"{door}/readyz")[0] == 200, "the co-hosted process ready")
    assert _get(f"{door}/healthz") == (200, {"alive": True, "reason": "ok"})
    eventually(lambda: "refnet_relay_active 1.0" in str(_get(f"{door}/metrics")[1]), "the relay leading")

    run, count = uuid.uuid4().hex[:8], 12
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", POLICE, "agency") as police_ch, \
            network.channel("notifications", POLICE, "agency") as notifications_ch:
        intake = intake_grpc.IntakeServiceStub(intake_ch)
        referrals = referral_grpc.ReferralServiceStub(police_ch)
        notices = notifications_grpc.NotificationsServiceStub(notifications_ch)
        case_ids = [intake.RegisterCase(_case(run, i), timeout=10).case.case_id for i in range(count // 2)]

        # Mid-flow: referral's worker and relay die together while the first half is on its way.
        network.stop_process("referral-worker+relay", signal.SIGKILL)
        case_ids += [intake.RegisterCase(_case(run, i), timeout=10).case.case_id for i in range(count // 2, count)]
        network.start_process("referral-worker+relay")

        def referrals_of(case_id: str) -> list[Any]:
            request = referral_pb.ListReferralsRequest(provider_id=POLICE, case_id=case_id)
            return list(referrals.ListReferrals(request).referrals)

        def notices_of(case_id: str) -> list[Any]:
            request = notifications_pb.ListNoticesRequest(recipient_id=POLICE, case_id=case_id)
            return list(notices.ListNotices(request).notices)

        eventually(lambda: all(notices_of(c) for c in case_ids), f"a notice to the police for all {count} cases",
                   timeout=120)
        time.sleep(6)  # longer than the relay lease: a redelivery after the restart has arrived by now
        assert [len(referrals_of(c)) for c in case_ids] == [1] * count  # nothing lost, nothing repeated
        assert [len(notices_of(c)) for c in case_ids] == [1] * count
    door = network.metrics_url("referral-worker+relay")  # the restarted process's: the worker's metrics too
    assert "refnet_events_consumed_total{" in str(_get(f"{door}/metrics")[1])

    # SIGTERM stops both roles, cleanly and within the bound.
    process = next(p for p in network.processes if p.name == "notifications-worker+relay")
    started = time.monotonic()
    network.stop_process(process.name, signal.SIGTERM, timeout=STOP_BOUND_S)
    took = time.monotonic() - started
    assert process.popen.returncode == 0, network.log_tail(process.name)
    assert took < STOP_BOUND_S
    log = network.log_tail(process.name, 200)
    assert "relay stopped" in log and '"service": "notifications-worker+relay"' in log
    print(f"\n{count} cases, each one referral and one notice across a SIGKILL; SIGTERM stopped it in {took:.1f}s")


def test_all_three_roles_in_one_process_serve_a_case(kafka_broker: KafkaBroker, keycloak: Keycloak,
                                                     tmp_path: Path) -> None:
    """`make run COHOST=all`: the api's gRPC server (on uvloop) on a thread beside the worker's loop and the relay."""
    net = Network(kafka_broker.bootstrap, tmp_path / "var", keycloak=keycloak, cohost="all")
    try:
        net.start()
        assert net.process_names() == [f"{s}-api+worker+relay" for s in SERVICES]
        with net.channel("intake", "qn-worker-7", "operator") as intake_ch, \
                net.channel("notifications", POLICE, "agency") as notifications_ch:
            case_id = intake_grpc.IntakeServiceStub(intake_ch).RegisterCase(_case("all", 0), timeout=10).case.case_id
            notices = notifications_grpc.NotificationsServiceStub(notifications_ch)
            request = notifications_pb.ListNoticesRequest(recipient_id=POLICE, case_id=case_id)
            eventually(lambda: list(notices.ListNotices(request).notices), "a notice to the police", timeout=60)
        assert _get(f"{net.metrics_url('intake-api+worker+relay')}/readyz")[0] == 200
        processes = list(net.processes)
    finally:
        net.stop()
    assert [p.popen.returncode for p in processes] == [0] * len(SERVICES)  # SIGTERM stopped every role cleanly
