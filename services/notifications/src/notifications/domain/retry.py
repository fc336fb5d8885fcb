"""Delivery outcomes and what to do next: done, retry after a backoff, or dead-letter. No I/O.

Backoff is exponential with full jitter (AWS "Exponential Backoff And Jitter"): before attempt n+1
wait a uniformly random time in [0, min(cap, base * 2**(n-1))], so a gateway that comes back is not
hit by every worker at once. A permanent failure is dead-lettered at once; a transient one is
retried until the channel's attempts are used up, then dead-lettered with the last error.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from notifications.domain.messages import Channel
from refnet_platform.vocabulary import DeliveryFailureReason


class Outcome(StrEnum):
    SENT = "sent"  # handed over (SMTP relay accepted it, SMS gateway queued it)
    DELIVERED = "delivered"  # the recipient system has it (webhook 2xx, in-app feed)
    TRANSIENT = "transient"  # may work later: timeouts, 5xx, 4xx SMTP replies, 429
    PERMANENT = "permanent"  # will never work as it is: 4xx HTTP, 5xx SMTP, bad address


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    detail: str = ""  # a short, data-free description: "http 503", "smtp 550 5.1.1"
    provider_ref: str = ""  # the gateway's or relay's id for the message, if it gave one
    retry_after: float | None = None  # seconds, when the other side asked for it

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.SENT, Outcome.DELIVERED)

    @classmethod
    def sent(cls, provider_ref: str = "", detail: str = "") -> DeliveryResult:
        return cls(Outcome.SENT, detail, provider_ref)

    @classmethod
    def delivered(cls, provider_ref: str = "", detail: str = "") -> DeliveryResult:
        return cls(Outcome.DELIVERED, detail, provider_ref)

    @classmethod
    def transient(cls, detail: str, retry_after: float | None = None) -> DeliveryResult:
        return cls(Outcome.TRANSIENT, detail, retry_after=retry_after)

    @classmethod
    def permanent(cls, detail: str) -> DeliveryResult:
        return cls(Outcome.PERMANENT, detail)


@dataclass(frozen=True)
class RetryPolicy:
    base: float  # seconds: the ceiling of the first wait
    cap: float  # seconds: no wait is ever longer
    max_attempts: int  # attempts in all, the first included

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base and self.max_attempts >= 1):
            raise ValueError("need base > 0, cap >= base and max_attempts >= 1")


DEFAULT_POLICIES: Mapping[Channel, RetryPolicy] = {
    Channel.EMAIL: RetryPolicy(base=5.0, cap=900.0, max_attempts=8),
    Channel.SMS: RetryPolicy(base=2.0, cap=300.0, max_attempts=8),
    Channel.WEBHOOK: RetryPolicy(base=1.0, cap=600.0, max_attempts=10),
}  # the in-app feed is written with the notice: nothing to retry


def policy_for(channel: Channel, overrides: Mapping[Channel, RetryPolicy] | None = None) -> RetryPolicy:
    if overrides and channel in overrides:
        return overrides[channel]
    return DEFAULT_POLICIES[channel]


Jitter = random.Random | Callable[[], float]  # a Random, or a function returning [0, 1)


def backoff_ceiling(policy: RetryPolicy, attempts_made: int) -> float:
    """min(cap, base * 2**(attempts_made - 1)): the longest wait after that many attempts."""
    if attempts_made < 1:
        raise ValueError("attempts_made starts at 1")
    exponent = min(attempts_made - 1, 64)  # 2**64 * base is past any cap; no float overflow
    return min(policy.cap, policy.base * float(2**exponent))


def backoff(policy: RetryPolicy, attempts_made: int, jitter: Jitter | None = None) -> float:
    """Full jitter: a uniformly random wait in [0, backoff_ceiling)."""
    draw = jitter.random if isinstance(jitter, random.Random) else (jitter or random.random)
    fraction = min(max(draw(), 0.0), 1.0)
    return fraction * backoff_ceiling(policy, attempts_made)


@dataclass(frozen=True)
class Done:
    result: DeliveryResult


@dataclass(frozen=True)
class Retry:
    attempt: int  # the number of the next attempt (2 after the first failure)
    delay: float  # seconds
    at: datetime


@dataclass(frozen=True)
class DeadLetter:
    reason: DeliveryFailureReason
    detail: str  # the last result's detail
    attempts: int


NextStep = Done | Retry | DeadLetter


def next_step(
    policy: RetryPolicy,
    attempts_made: int,
    result: DeliveryResult,
    now: datetime,
    jitter: Jitter | None = None,
) -> NextStep:
    """After attempt number ``attempts_made`` ended in ``result``: done, retry when, or dead-letter.
    A Retry-After from the other side is honoured, up to the policy's cap."""
    if attempts_made < 1:
        raise ValueError("attempts_made starts at 1")
    if result.ok:
        return Done(result)
    if result.outcome is Outcome.PERMANENT:
        return DeadLetter(DeliveryFailureReason.PERMANENT_FAILURE, result.detail, attempts_made)
    if attempts_made >= policy.max_attempts:
        return DeadLetter(DeliveryFailureReason.RETRIES_EXHAUSTED, result.detail, attempts_made)
    delay = backoff(policy, attempts_made, jitter)
    if result.retry_after is not None and result.retry_after > 0:
        delay = max(delay, min(result.retry_after, policy.cap))
    return Retry(attempt=attempts_made + 1, delay=delay, at=now + timedelta(seconds=delay))
