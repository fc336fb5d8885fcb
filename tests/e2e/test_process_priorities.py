"""On one machine (make run, the bench, chaos) the background processes run at a lower CPU priority than those
people and the broker wait on (refnet_dev.network.BACKGROUND_NICE): checked on the running network's processes."""

from __future__ import annotations

import pytest

from refnet_dev.network import BACKGROUND_NICE, Network
from refnet_dev.util import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


def test_workers_relays_and_the_collector_run_below_the_apis_web_and_console(network: Network) -> None:
    names = set(network.added_nice())
    background = {name for name in names if name.endswith(("-worker", "-relay", "-collector"))}
    assert {"intake-worker", "referral-relay", "ops-worker", "ops-collector"} <= background
    assert {"intake-api", "shelter-api", "web", "ops-console"} <= names - background
    # Set by `nice` as it starts the process: a moment after a (re)started process's pid exists.
    expected = {name: BACKGROUND_NICE if name in background else 0 for name in names}
    eventually(lambda: network.added_nice() == expected,
               "the workers, relays and collector below the apis, web and console")
