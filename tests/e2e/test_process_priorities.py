"""On one machine (make run, the bench, chaos) each process runs in a session of its own. Linux's autogroup scheduler
then shares the CPU equally between the processes, whatever their threads' nice: a worker's normal lane (nice +10)
yields to its own process's urgent lane and loop, not to other processes. In the caller's session the normal lanes'
priority counts against every process, and the bench measured that worse (README, "Priorities")."""

from __future__ import annotations

import os

import pytest

from refnet_dev.network import Network

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


def test_every_process_runs_in_a_session_of_its_own_at_the_starters_priority(network: Network) -> None:
    running = {p.name: p.popen.pid for p in network.processes if p.popen.poll() is None}
    assert {"intake-api", "referral-worker", "notifications-relay", "ops-collector", "web"} <= set(running)
    assert {name: os.getsid(pid) for name, pid in running.items()} == running
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert {name: os.getpriority(os.PRIO_PROCESS, pid) for name, pid in running.items()} == dict.fromkeys(running, own)
