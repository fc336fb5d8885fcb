"""What the current piece of work is part of: the flow's correlation id and its direct cause."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Causation:
    correlation_id: str
    causation_id: str


current_causation: ContextVar[Causation | None] = ContextVar("current_causation", default=None)


@dataclass(frozen=True)
class Delivery:
    """A Kafka record being handled by a consumer: its inbox key."""

    consumer: str
    event_id: str


current_delivery: ContextVar[Delivery | None] = ContextVar("current_delivery", default=None)
