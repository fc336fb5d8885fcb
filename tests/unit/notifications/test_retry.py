"""Exponential backoff with full jitter, per channel; permanent failures and exhausted retries dead-letter."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.domain.messages import Channel
from notifications.domain.retry import (
    DEFAULT_POLICIES,
    DeadLetter,
    DeliveryResult,
    Done,
    Outcome,
    Retry,
    RetryPolicy,
    backoff,
    backoff_ceiling,
    next_step,
    policy_for,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
POLICY = RetryPolicy(base=2.0, cap=60.0, max_attempts=5)


def test_the_ceiling_doubles_until_the_cap() -> None:
    assert [backoff_ceiling(POLICY, n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff_ceiling(POLICY, 10_000) == 60  # no overflow however many attempts


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert backoff(POLICY, 3, lambda: 0.0) == 0.0
    assert backoff(POLICY, 3, lambda: 0.5) == 4.0
    assert backoff(POLICY, 3, lambda: 0.999999) == pytest.approx(8.0, rel=1e-5)
    rng = random.Random(42)
    draws = [backoff(POLICY, 4, rng) for _ in range(4000)]
    assert min(draws) >= 0 and max(draws) < 16
    assert statistics.mean(draws) == pytest.approx(8.0, rel=0.05)  # uniform on [0, 16)
    assert len({round(d, 3) for d in draws}) > 3000  # spread out, not synchronised


@given(
    base=st.floats(0.001, 100),
    factor=st.floats(1, 1000),
    attempts=st.integers(1, 100_000),
    fraction=st.floats(0, 1),
)
def test_backoff_is_always_within_bounds(base: float, factor: float, attempts: int, fraction: float) -> None:
    policy = RetryPolicy(base=base, cap=base * factor, max_attempts=3)
    delay = backoff(policy, attempts, lambda: fraction)
    assert 0 <= delay <= min(policy.cap, base * 2 ** min(attempts - 1, 1000))


def test_success_is_done() -> None:
    for result in (DeliveryResult.sent("gw-1"), DeliveryResult.delivered()):
        assert next_step(POLICY, 1, result, NOW) == Done(result)


def test_a_permanent_failure_is_dead_lettered_at_once() -> None:
    step = next_step(POLICY, 1, DeliveryResult.permanent("http 400"), NOW)
    assert step == DeadLetter("permanent_failure", "http 400", 1)


def test_transient_failures_retry_until_attempts_run_out_then_dead_letter() -> None:
    rng = random.Random(1)
    failure = DeliveryResult.transient("http 503")
    for attempt in range(1, POLICY.max_attempts):
        step = next_step(POLICY, attempt, failure, NOW, rng)
        assert isinstance(step, Retry)
        assert step.attempt == attempt + 1
        assert 0 <= step.delay <= backoff_ceiling(POLICY, attempt)
        assert step.at == NOW + timedelta(seconds=step.delay)
    assert next_step(POLICY, POLICY.max_attempts, failure, NOW, rng) == DeadLetter(
        "retries_exhausted", "http 503", POLICY.max_attempts
    )


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    step = next_step(POLICY, 1, DeliveryResult.transient("http 429", retry_after=30), NOW, lambda: 0.0)
    assert isinstance(step, Retry) and step.delay == 30
    step = next_step(POLICY, 1, DeliveryResult.transient("http 503", retry_after=3600), NOW, lambda: 0.0)
    assert isinstance(step, Retry) and step.delay == POLICY.cap


def test_every_channel_the_dispatcher_sends_on_has_a_policy_and_overrides_win() -> None:
    assert set(DEFAULT_POLICIES) == set(Channel) - {Channel.IN_APP}  # the feed is written with the notice
    fast = RetryPolicy(0.01, 0.05, 3)
    assert policy_for(Channel.SMS, {Channel.SMS: fast}) is fast
    assert policy_for(Channel.EMAIL, {Channel.SMS: fast}) is DEFAULT_POLICIES[Channel.EMAIL]


@pytest.mark.parametrize(("base", "cap", "attempts"), [(0, 1, 1), (2, 1, 1), (1, 2, 0)])
def test_policies_are_validated(base: float, cap: float, attempts: int) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base, cap, attempts)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        next_step(POLICY, 0, DeliveryResult.transient("x"), NOW)


def test_outcomes() -> None:
    assert DeliveryResult.sent().ok and DeliveryResult.delivered().ok
    assert not DeliveryResult.transient("t").ok and not DeliveryResult.permanent("p").ok
    assert DeliveryResult.transient("t", 5).outcome is Outcome.TRANSIENT
