from __future__ import annotations

from dataclasses import dataclass

from notifications.domain.notices import Notice


@dataclass(frozen=True)
class NotificationSent:
    notice: Notice
