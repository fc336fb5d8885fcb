"""One bus, many doors: gRPC calls, Kafka records and timers all become commands handled here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class MessageBus:
    def __init__(self, handlers: Mapping[type, Callable[[Any], Any]]) -> None:
        self._handlers = dict(handlers)

    def handle(self, command: object) -> Any:
        try:
            handler = self._handlers[type(command)]
        except KeyError:
            raise LookupError(f"no handler for {type(command).__name__}") from None
        return handler(command)
