"""Who may call what: intake's one authorization table.

Each RPC lists the roles it is open to and the scope that decides which records the caller may see or
change. A handler asks `authorize(method, caller)` before it reads anything (a role not listed is
refused with PERMISSION_DENIED), then checks each record against the scope: a case or call outside
the caller's provinces answers exactly as one that does not exist (NOT_FOUND, same words). The
README's "Who may call what" is `authorization_table_markdown()`'s output.
"""

from __future__ import annotations

from enum import StrEnum

from intake.domain.contact_reads import CONTACT_PURPOSES, REFERRAL_STATUSES
from intake.domain.model import DATA_CATEGORIES, SAFE_TIMES
from refnet_platform.authorization import Rule, Table
from refnet_platform.caller import Caller, Role


class Scope(StrEnum):
    PROVINCE = "province"
    PURPOSE = "purpose"
    SMS_DOOR = "sms door"

    @property
    def meaning(self) -> str:
        return SCOPE_MEANING[self]


SCOPE_MEANING = {
    Scope.PROVINCE: "the case's province (where it happened; a call's: the line's) is one of the caller's "
                    "provinces; `*` (the national line) covers all",
    Scope.PURPOSE: "the calling service (its certificate CN) and `purpose` are in `CONTACT_PURPOSES`, and intake's "
                   "own record of the referral allows the read (see \"Contact purposes\")",
    Scope.SMS_DOOR: "refnet service `notifications` (the SMS door) only, any other service is `PERMISSION_DENIED`; "
                    "the cases are those whose contact holds the sender's number (by its keyed hash), never ones "
                    "the caller names",
}


_CASE_WORK = {Role.OPERATOR: Scope.PROVINCE, Role.SUPERVISOR: Scope.PROVINCE}
_SUPERVISOR = {Role.SUPERVISOR: Scope.PROVINCE}

RULES: tuple[Rule[Scope], ...] = (
    Rule("IntakeService", "LogCall", _CASE_WORK,
         "a call in another province: `PERMISSION_DENIED` naming `province_code`; a follow-up's `case_id` outside "
         "the caller's provinces: `NOT_FOUND`"),
    Rule("IntakeService", "RegisterCase", _CASE_WORK,
         "`province_code` and `reported_in.province_code` must be the caller's, else `PERMISSION_DENIED` naming "
         "the field"),
    Rule("IntakeService", "GetCase", _CASE_WORK),
    Rule("IntakeService", "AddNeed", _CASE_WORK),
    Rule("IntakeService", "UpdateRisk", _CASE_WORK),
    Rule("IntakeService", "GiveConsent", _CASE_WORK),
    Rule("IntakeService", "WithdrawConsent", _CASE_WORK),
    Rule("IntakeService", "CloseCase", _CASE_WORK),
    Rule("IntakeService", "OverrideConsent", _SUPERVISOR, "audited"),
    Rule("IntakeService", "EraseCase", _SUPERVISOR, "audited"),
    Rule("CaseWorkService", "RecordAssessment", _CASE_WORK),
    Rule("CaseWorkService", "RecordCasePlan", _CASE_WORK),
    Rule("CaseWorkService", "AddFollowUp", _CASE_WORK, "the note is sealed; never in an event, log, span or metric"),
    Rule("CaseWorkService", "ReviewCase", _CASE_WORK),
    Rule("CaseWorkService", "ReassignCase", _SUPERVISOR),
    Rule("CaseWorkService", "CompleteStep", _CASE_WORK),
    Rule("CaseWorkService", "GetCaseFile", _CASE_WORK, "audited (notes, goals and assessments are personal data)"),
    Rule("CaseWorkService", "ListCases", _CASE_WORK,
         "only cases in the caller's provinces are listed; another province's filter lists nothing"),
    Rule("IntakeService", "ImportHistory", _SUPERVISOR,
         "past records of the caller's own line: a provincial line's province (`reported_in.province_code`, else "
         "`province_code`) must be the caller's; a national-line case or a call, its `province_code`; else "
         "`PERMISSION_DENIED` naming the row's field"),
    Rule("CaseContactService", "GetCaseContact", {Role.SERVICE: Scope.PURPOSE},
         "every read and every refusal of an existing case is audited"),
    Rule("CaseContactService", "SetSmsPreference", {Role.SERVICE: Scope.SMS_DOOR},
         "a number on no case is `NOT_FOUND`; every change is audited"),
)

TABLE = Table(RULES, Scope)
AUTHORIZATION = TABLE.by_method


def authorize(method: str, caller: Caller) -> Scope:
    """The caller's scope for this RPC; PERMISSION_DENIED if the method is not open to the caller's role."""
    return TABLE.authorize(method, caller)


def authorization_table_markdown() -> str:
    """The tables as the README shows them, under "Who may call what": the platform's rendering of the
    rules, then the contact purposes."""
    lines = [TABLE.markdown().rstrip("\n"),
             "- For intake, a repeated `client_request_id` whose case or call is outside the scope is "
             "`ALREADY_EXISTS`, naming neither."]
    lines += ["", "### Contact purposes", "",
              "| service (CN) | `purpose` | may read (never more than the consent covers) | referral on intake's "
              "record | `recipient_id` |", "|---|---|---|---|---|"]
    for service, purposes in CONTACT_PURPOSES.items():
        for code, purpose in purposes.items():
            fields = ", ".join(f"`{c}`" for c in (*DATA_CATEGORIES, SAFE_TIMES) if c in purpose.categories)
            statuses = ", ".join(s for s in REFERRAL_STATUSES if s in purpose.statuses)
            recipient = "the referral's provider" if purpose.for_provider else "not checked (she is the recipient)"
            lines.append(f"| `{service}` | `{code}` | {fields} | accepted by its provider, now {statuses} "
                         f"| {recipient} |")
    lines.append("")
    lines.append(f"`{SAFE_TIMES}` is her safe times without her note (both are under the consent's `safe_contact`); "
                 "`phone` brings `phone_is_safe`.")
    return "\n".join(lines) + "\n"
