"""Who may call what: referral's one authorization table.

Each RPC lists the roles it is open to and, for each role, the scope that decides which records the
caller may see or change. A handler asks `authorize(method, caller)` before it reads anything (a role
not listed is refused with PERMISSION_DENIED), then `Scope.allows` for each record: a record outside
the caller's remit answers exactly as a record that does not exist (NOT_FOUND with the same words, or
left out of a list). The README's "Who may call what" is `authorization_table_markdown()`'s output.
"""

from __future__ import annotations

from enum import StrEnum

from refnet_platform.authorization import EVERY_ROLE, Rule, Table
from refnet_platform.caller import Caller, Role


class Scope(StrEnum):
    PROVINCE = "province"
    OWN_AGENCY = "own agency"
    SMS_DOOR = "sms door"
    ANY = "any"

    @property
    def meaning(self) -> str:
        return SCOPE_MEANING[self]

    def allows(self, caller: Caller, *, province_code: str = "", provider_id: str = "") -> bool:
        """Whether a record of this province and provider is within the caller's remit."""
        if self is Scope.PROVINCE:
            # A record that names no province is the national line's alone.
            covered: bool = caller.covers(province_code) if province_code else caller.national
            return covered
        if self is Scope.SMS_DOOR:
            return caller.role is Role.SERVICE and caller.subject_id == "notifications"
        if self is Scope.OWN_AGENCY:
            # An agency with no organisation owns nothing (never the referrals that found no provider).
            return bool(caller.organisation_id) and provider_id == caller.organisation_id
        return True


SCOPE_MEANING = {
    Scope.PROVINCE: "the referral's province (the case's) is one of the caller's provinces; `*` (the national "
                    "line) covers all",
    Scope.OWN_AGENCY: "the referral is assigned to the caller's organisation (the provider id: a machine's CN, "
                      "a person's `agency_id` claim)",
    Scope.SMS_DOOR: "refnet service `notifications` (the SMS door) only, any other service is `PERMISSION_DENIED`; "
                    "the provider is the one whose directory duty contact holds the sender's phone, never one the "
                    "caller names",
    Scope.ANY: "not scoped: public directory data, nothing about a survivor",
}



_CASE_READERS = {Role.AGENCY: Scope.OWN_AGENCY, Role.OPERATOR: Scope.PROVINCE, Role.SUPERVISOR: Scope.PROVINCE,
                 Role.OPS: Scope.PROVINCE}
_AGENCY = {Role.AGENCY: Scope.OWN_AGENCY}
_EVERYONE = dict.fromkeys(EVERY_ROLE, Scope.ANY)

RULES: tuple[Rule[Scope], ...] = (
    Rule("ReferralService", "ListReferrals", _CASE_READERS,
         "an agency lists its own referrals; other roles one case's (`case_id` required). Another agency's "
         "`provider_id`, or a case outside the caller's provinces, lists nothing"),
    Rule("ReferralService", "WatchReferrals", _AGENCY),
    Rule("ReferralService", "GetReferral", _CASE_READERS),
    Rule("ReferralService", "AcceptReferral", _AGENCY),
    Rule("ReferralService", "DeclineReferral", _AGENCY),
    Rule("ReferralService", "StartService", _AGENCY),
    Rule("ReferralService", "ReportProgress", _AGENCY),
    Rule("ReferralService", "CompleteReferral", _AGENCY),
    Rule("ReferralService", "ReportFailure", _AGENCY),
    Rule("ReferralService", "GetSurvivorContact", _AGENCY,
         "only once accepted (accepted or in service), while consent covers the agency's sector"),
    Rule("ReferralService", "AnswerBySms", {Role.SERVICE: Scope.SMS_DOOR},
         "a phone on no duty contact is `NOT_FOUND`; the answer is then that agency's `AcceptReferral` or "
         "`DeclineReferral` on its own referrals only"),
    Rule("EscalationService", "ListEscalations", {Role.SUPERVISOR: Scope.PROVINCE, Role.OPS: Scope.PROVINCE},
         "a province outside the caller's lists nothing"),
    Rule("EscalationService", "AssignProvider", {Role.SUPERVISOR: Scope.PROVINCE},
         "only to a provider that serves the case's area (as routing reaches: her commune, her province, a "
         "neighbouring province or a declared service area), else `INVALID_ARGUMENT` naming `provider_id`"),
    Rule("DirectoryService", "ListProviders", _EVERYONE),
    Rule("DirectoryService", "GetProvider", _EVERYONE),
    Rule("DirectoryService", "RankProviders", _EVERYONE, "survivor attributes in, providers out"),
)

TABLE = Table(RULES, Scope)
AUTHORIZATION = TABLE.by_method
authorize = TABLE.authorize


def authorization_table_markdown() -> str:
    """The table as the README shows it, under "Who may call what"."""
    lines = ["| RPC | roles (scope) | notes |", "|---|---|---|"]
    for rule in RULES:
        by_scope: dict[Scope, list[str]] = {}
        for role, scope in rule.scopes.items():
            by_scope.setdefault(scope, []).append(str(role))
        who = "; ".join(f"{', '.join(roles)} ({scope})" for scope, roles in by_scope.items())
        lines.append(f"| `{rule.name}` | {who} | {rule.note} |")
    lines.append("")
    lines.extend(f"- **{scope}**: {scope.meaning}." for scope in Scope)
    lines.append("- A role not listed gets `PERMISSION_DENIED`. A record outside the scope answers exactly as one "
                 "that does not exist: `NOT_FOUND` with the same words, or left out of a list.")
    return "\n".join(lines) + "\n"
