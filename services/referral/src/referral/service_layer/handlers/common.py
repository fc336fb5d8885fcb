"""What every handler shares: the policy, the unit of work's factory, retrying a change that lost a race."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from referral.adapters.repository import Conflict
from referral.domain.model import Referral
from referral.domain.sla import SlaPolicy
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.clock import Clock, system_clock
from refnet_platform.errors import FailedPrecondition

UowFactory = Callable[[], ReferralUnitOfWork]
# The actor recorded for transitions referral makes itself (timers, consent, shelter's answers).
SYSTEM = "referral"


@dataclass(frozen=True)
class Policy:
    sla: SlaPolicy
    bed_hold: timedelta
    clock: Clock = system_clock


H = TypeVar("H", bound=Callable[..., Any])


def retry_on_conflict(handler: H) -> H:
    """Runs the handler again (from a fresh read) if a referral changed under it."""

    @wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(3):
            try:
                return handler(*args, **kwargs)
            except Conflict:
                if attempt == 2:
                    raise FailedPrecondition("the referral changed meanwhile; try again") from None
        raise AssertionError("unreachable")

    return run  # type: ignore[return-value]


def ids(referral: Referral) -> dict[str, object]:
    """A referral's ids, for log lines."""
    return {"referral_id": referral.referral_id, "case_id": referral.case_id, "provider_id": referral.provider_id,
            "attempt": referral.attempt}
