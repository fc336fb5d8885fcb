from __future__ import annotations

from dataclasses import dataclass

from intake.domain.model import Case


@dataclass(frozen=True)
class CaseRegistered:
    case: Case
