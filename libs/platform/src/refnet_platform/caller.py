"""Who is calling, and within what remit: the one `Caller` every service's domain and handlers use.

grpc-free on purpose: domains import it. How a caller is established (a machine's certificate, a
person's access token) lives in `refnet_platform.identity`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from refnet_platform.errors import PermissionDenied

# In a person's `provinces` claim: every province (the national 111 line, the operations team).
ALL_PROVINCES = "*"


class Role(StrEnum):
    OPERATOR = "operator"  # a hotline operator or case worker: people only
    SUPERVISOR = "supervisor"  # may override, sees escalations: people only
    AGENCY = "agency"  # a partner agency's staff (a person) or its own system (a machine)
    SHELTER = "shelter"  # a shelter's own staff (a person) or its system (a machine)
    SERVICE = "service"  # another refnet service: machines only
    OPS = "ops"  # the operations team: flows and ids, never personal data; people only
    GATEWAY = "gateway"  # a front door (web, CLI, SMS) that acts only as the person it forwards


# Roles a client certificate may carry. Operators, supervisors and the operations team are people:
# they sign in through the identity provider, so no certificate grants their power.
MACHINE_ROLES = frozenset({Role.AGENCY, Role.SHELTER, Role.SERVICE, Role.GATEWAY})
PERSON_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.AGENCY, Role.SHELTER, Role.OPS})


@dataclass(frozen=True)
class Caller:
    """`subject_id` names who acts (a person's user name, a machine's certificate CN) and goes into
    audit rows; `organisation_id` is the agency (provider id) or shelter they act for; `provinces`
    the remit of operators, supervisors and the operations team."""

    subject_id: str
    role: Role
    organisation_id: str = ""
    provinces: frozenset[str] = field(default_factory=frozenset)
    person: bool = False

    def require(self, *roles: Role) -> Caller:
        if self.role not in roles:
            raise PermissionDenied(f"this call is not open to the {self.role} role")
        return self

    @property
    def national(self) -> bool:
        return ALL_PROVINCES in self.provinces

    def covers(self, province_code: str) -> bool:
        """Whether a province is in this caller's remit (operators, supervisors, ops)."""
        return self.national or province_code in self.provinces

    @property
    def audit_name(self) -> str:
        return f"{self.role}:{self.subject_id}"


def machine(subject_id: str, role: Role) -> Caller:
    """A machine identity: agencies' and shelters' own systems act for their own id."""
    return Caller(subject_id, role, organisation_id=subject_id if role in (Role.AGENCY, Role.SHELTER) else "")
