"""Who may call what: each service's one table of RPC → {role: scope}, read by its handlers (the
role check), by the role by method by scope matrix test, and rendered into the service's README.

A role missing from a method's row is refused with PERMISSION_DENIED before anything is read (roles
are public, so saying so reveals nothing). Within an allowed role the service's own `Scope` decides
which records the caller reaches; a record out of scope answers exactly as a missing one does
(NOT_FOUND with the same words) and lists leave it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from refnet_platform.caller import Caller, Role
from refnet_platform.errors import PermissionDenied

S = TypeVar("S", bound=StrEnum)

# Every identity a call can carry: a front door (gateway) always acts as the person it forwards.
EVERY_ROLE = tuple(role for role in Role if role is not Role.GATEWAY)


@dataclass(frozen=True)
class Rule(Generic[S]):
    service: str
    method: str
    # The roles the method is open to, each with the scope of what it may see or change.
    scopes: Mapping[Role, S]
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.service}.{self.method}"


class Table(Generic[S]):
    def __init__(self, rules: Iterable[Rule[S]], scopes: type[S]) -> None:
        self.rules = tuple(rules)
        self.scopes = scopes
        self.by_method = {rule.method: rule for rule in self.rules}

    def authorize(self, method: str, caller: Caller) -> S:
        """The caller's scope for this RPC; PERMISSION_DENIED if it is not open to the caller's role."""
        scope = self.by_method[method].scopes.get(caller.role)
        if scope is None:
            raise PermissionDenied(f"{method} is not open to the {caller.role} role")
        return scope

    def markdown(self) -> str:
        """The table as the service's README shows it, under "Who may call what"."""
        lines = ["| RPC | roles (scope) | notes |", "|---|---|---|"]
        for rule in self.rules:
            by_scope: dict[S, list[str]] = {}
            for role, scope in rule.scopes.items():
                by_scope.setdefault(scope, []).append(str(role))
            who = "; ".join(f"{', '.join(roles)} ({scope})" for scope, roles in by_scope.items())
            lines.append(f"| `{rule.name}` | {who} | {rule.note} |")
        lines.append("")
        lines.extend(f"- **{scope}**: {getattr(scope, 'meaning', '')}." for scope in self.scopes)
        lines.append("- A role not listed gets `PERMISSION_DENIED`, before anything is read. A record outside the "
                     "scope answers exactly as one that does not exist: `NOT_FOUND` with the same words, or left "
                     "out of a list.")
        return "\n".join(lines) + "\n"
