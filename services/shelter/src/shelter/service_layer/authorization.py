"""Who may call what: shelter's one authorization table.

Each RPC lists the roles it is open to and, for each role, the scope that decides which shelters'
records the caller may see or change. A handler asks `authorize(method, caller)` before it reads
anything (a role not listed is refused with PERMISSION_DENIED), then `Scope.allows` for the shelter
concerned. A reservation at another shelter answers exactly as one that does not exist (NOT_FOUND with
the same words), so shelter staff cannot learn where a survivor is from a referral id.

Confidential fields of a shelter (`FIELDS`) are shown only to their audiences and blank for everyone
else: `may_see(caller, field, shelter_id)`. The README's "Who may call what" is
`authorization_table_markdown()`'s output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from refnet_platform.authorization import EVERY_ROLE, Rule, Table
from refnet_platform.caller import Caller, Role

# Referral's routing calls as refnet service "referral" (certificate OU=service, CN=referral).
ROUTING_SUBJECT = "referral"
# The SMS door (services/notifications) calls as refnet service "notifications".
SMS_DOOR_SUBJECT = "notifications"


def acts_for(caller: Caller, shelter_id: str) -> bool:
    """The caller is that shelter's own staff: role shelter, and the shelter is its organisation (a
    machine's CN, a person's `shelter_id` claim). Never `subject_id`: that names who acts."""
    return caller.role is Role.SHELTER and bool(caller.organisation_id) and caller.organisation_id == shelter_id


def is_routing(caller: Caller) -> bool:
    return caller.role is Role.SERVICE and caller.subject_id == ROUTING_SUBJECT


class Scope(StrEnum):
    OWN_SHELTER = "own shelter"
    SMS_DOOR = "sms door"
    ANY = "any"

    @property
    def meaning(self) -> str:
        return SCOPE_MEANING[self]

    def allows(self, caller: Caller, shelter_id: str) -> bool:
        """Whether a record of this shelter is within the caller's remit."""
        if self is Scope.OWN_SHELTER:
            return acts_for(caller, shelter_id)
        if self is Scope.SMS_DOOR:
            return caller.role is Role.SERVICE and caller.subject_id == SMS_DOOR_SUBJECT
        return True


SCOPE_MEANING = {
    Scope.OWN_SHELTER: "the shelter is the caller's organisation (the shelter id: a machine's CN, a person's "
                       "`shelter_id` claim)",
    Scope.SMS_DOOR: f"refnet service `{SMS_DOOR_SUBJECT}` (the SMS door) only, any other service is "
                     "`PERMISSION_DENIED`; the shelter is the one whose staff record holds the sender's phone, never "
                     "one the caller names",
    Scope.ANY: "not scoped: bed counts and a shelter's public profile, nothing about a survivor; the "
               "confidential fields below only to their audience",
}



_OWN_STAFF = {Role.SHELTER: Scope.OWN_SHELTER}
_EVERYONE = dict.fromkeys(EVERY_ROLE, Scope.ANY)

RULES: tuple[Rule[Scope], ...] = (
    Rule("ShelterService", "ListAvailability", _EVERYONE,
         "a shelter's `commune_code` is blank unless the caller is in its audience (below), and its `proximity` "
         "then at most `same_province`"),
    Rule("ShelterService", "UpdateAvailability", _OWN_STAFF,
         "another shelter's `shelter_id` is `PERMISSION_DENIED`, decided before any lookup"),
    Rule("ShelterService", "GetShelter", _EVERYONE, "`address` and `commune_code` only to their audience"),
    Rule("ShelterService", "ListReservations", _OWN_STAFF,
         "`shelter_id` empty: the caller's own; another shelter's is `PERMISSION_DENIED`"),
    Rule("ShelterService", "ConfirmArrival", _OWN_STAFF,
         "a referral reserved at another shelter is `NOT_FOUND`, word for word as an unknown referral id"),
    Rule("ShelterService", "CheckOut", _OWN_STAFF,
         "a referral reserved at another shelter is `NOT_FOUND`, word for word as an unknown referral id"),
    Rule("ShelterService", "WatchAvailability", _EVERYONE, "as `ListAvailability`, for the snapshot and every change"),
    Rule("ShelterService", "ReportBySms", {Role.SERVICE: Scope.SMS_DOOR},
         "a phone on no shelter's staff record is `NOT_FOUND`; the report then acts as that shelter's own staff "
         "(`UpdateAvailability`, `ConfirmArrival`, `CheckOut`)"),
)

TABLE = Table(RULES, Scope)
AUTHORIZATION = TABLE.by_method
authorize = TABLE.authorize


# --- confidential fields -------------------------------------------------------------------------


class Audience(StrEnum):
    OWN_STAFF = "own staff"
    ROUTING = "referral's routing"

    @property
    def meaning(self) -> str:
        return AUDIENCE_MEANING[self]

    def includes(self, caller: Caller, shelter_id: str) -> bool:
        if self is Audience.OWN_STAFF:
            return acts_for(caller, shelter_id)
        return is_routing(caller)


AUDIENCE_MEANING = {
    Audience.OWN_STAFF: "role `shelter` acting for that shelter (as `own shelter` above)",
    Audience.ROUTING: f"role `service`, subject `{ROUTING_SUBJECT}` (certificate OU=service, CN={ROUTING_SUBJECT})",
}


@dataclass(frozen=True)
class Confidential:
    field: str
    shown_to: frozenset[Audience]
    where: str


FIELDS: tuple[Confidential, ...] = (
    Confidential("address", frozenset({Audience.OWN_STAFF}), "`Shelter.address` (`GetShelter`)"),
    Confidential("commune_code", frozenset({Audience.OWN_STAFF, Audience.ROUTING}),
                 "`Shelter.commune_code` and `Availability.commune_code` (`GetShelter`, `ListAvailability`, "
                 "`UpdateAvailability`, `WatchAvailability`)"),
)

_FIELD: dict[str, Confidential] = {f.field: f for f in FIELDS}


def may_see(caller: Caller, field: str, shelter_id: str) -> bool:
    """Whether the caller is shown a shelter's confidential field; everyone else gets it blank."""
    return any(audience.includes(caller, shelter_id) for audience in _FIELD[field].shown_to)


def authorization_table_markdown() -> str:
    """The table as the README shows it, under "Who may call what"."""
    lines = [TABLE.markdown().rstrip("\n")]
    lines.append("")
    lines.append("| confidential field | shown to | in | everyone else |")
    lines.append("|---|---|---|---|")
    for f in FIELDS:
        shown = ", ".join(str(a) for a in Audience if a in f.shown_to)
        lines.append(f"| `{f.field}` | {shown} | {f.where} | blank |")
    lines.append("")
    lines.extend(f"- **{audience}**: {audience.meaning}." for audience in Audience)
    return "\n".join(lines) + "\n"
