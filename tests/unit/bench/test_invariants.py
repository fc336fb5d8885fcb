"""Chaos's "every event processed" invariant: a record in flight when it looks is not a lost one, a stuck group is."""

from __future__ import annotations

from typing import Any

import pytest

from bench import invariants


class FakeView:
    """Consumer lag as read one call after another (the last reading repeats)."""

    readings: list[dict[str, dict[str, int]]] = []

    def __init__(self, bootstrap: str) -> None:
        self.calls = 0

    def lag(self) -> dict[str, dict[str, int]]:
        reading = FakeView.readings[min(self.calls, len(FakeView.readings) - 1)]
        self.calls += 1
        return reading

    def close(self) -> None:
        pass


@pytest.fixture
def lag_readings(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(invariants, "KafkaView", FakeView)
    return FakeView


def test_records_a_timer_wrote_just_before_the_check_are_waited_for(lag_readings: Any) -> None:
    lag_readings.readings = [{"intake-worker": {"referral.referrals.v1": 15}, "referral-worker": {}},
                             {"intake-worker": {"referral.referrals.v1": 0}, "referral-worker": {}}]
    held, detail = invariants.events_processed("127.0.0.1:1", [], settle_s=5)
    assert held and detail.startswith("every group caught up; 0 dead letters")


def test_a_group_that_stays_behind_is_reported_with_its_lag(lag_readings: Any) -> None:
    lag_readings.readings = [{"intake-worker": {"referral.referrals.v1": 15}, "referral-worker": {}}]
    held, detail = invariants.events_processed("127.0.0.1:1", [], settle_s=1)
    assert not held and detail == "records not consumed: intake-worker referral.referrals.v1: 15"
