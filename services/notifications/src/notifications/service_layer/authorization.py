"""Who may call what: notifications' one authorization table.

Each RPC lists the roles it is open to and, for each role, the scope that decides which in-app feeds
the caller reads. A handler asks `authorize(method, caller)` before it reads anything (a role not
listed is refused with PERMISSION_DENIED), then `Scope.feed(caller, recipient_id)` for the feeds it
may read. The README's "Who may call what" is `authorization_table_markdown()`'s output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from notifications.domain.messages import Role as Addressee
from refnet_platform.authorization import Rule, Table
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import PermissionDenied


@dataclass(frozen=True)
class Feed:
    """The in-app feeds a caller reads: notices addressed to `addressee` with one of `recipient_ids`, or
    with any recipient id when `recipient_ids` is None (a national supervisor: every province's)."""

    addressee: Addressee
    recipient_ids: tuple[str, ...] | None


class Scope(StrEnum):
    OWN_ORGANISATION = "own organisation"
    OWN = "own"
    PROVINCES = "provinces"

    @property
    def meaning(self) -> str:
        return SCOPE_MEANING[self]

    def feed(self, caller: Caller, requested: str = "") -> Feed:
        """The feeds this caller reads; `requested` (a request's `recipient_id`) may narrow them to one of its
        own, and naming anyone else's is PERMISSION_DENIED."""
        if self is Scope.OWN_ORGANISATION:
            if not caller.organisation_id:
                raise PermissionDenied(f"{caller.subject_id} acts for no organisation")
            feed = Feed(Addressee.PROVIDER, (caller.organisation_id,))
        elif self is Scope.OWN:
            feed = Feed(Addressee.CASE_WORKER, (caller.subject_id,))
        else:
            if not caller.provinces:
                raise PermissionDenied(f"{caller.subject_id} has no province in their remit")
            feed = Feed(Addressee.SUPERVISOR, None if caller.national else tuple(sorted(caller.provinces)))
        if not requested:
            return feed
        if feed.recipient_ids is None or requested in feed.recipient_ids:
            return Feed(feed.addressee, (requested,))
        raise PermissionDenied("a caller sees only its own notices")


SCOPE_MEANING = {
    Scope.OWN_ORGANISATION: "the feed of the caller's organisation (the provider id: a machine's CN, a person's "
                            "`agency_id` or `shelter_id` claim)",
    Scope.OWN: "the caller's own feed, by their user name (`subject_id`: the case worker id notices name)",
    Scope.PROVINCES: "the supervisor feed of every province in the caller's token (`provinces`; `*`, the national "
                     "line: every province); `recipient_id` may name one of them",
}



_FEED_READERS = {Role.AGENCY: Scope.OWN_ORGANISATION, Role.SHELTER: Scope.OWN_ORGANISATION, Role.OPERATOR: Scope.OWN,
                 Role.SUPERVISOR: Scope.PROVINCES}

RULES: tuple[Rule[Scope], ...] = (
    Rule("NotificationsService", "ListNotices", _FEED_READERS,
         "newest first; naming a `recipient_id` outside the scope is `PERMISSION_DENIED`"),
    Rule("NotificationsService", "WatchNotices", _FEED_READERS, "as `ListNotices`, oldest first, as they arrive"),
)

TABLE = Table(RULES, Scope)
AUTHORIZATION = TABLE.by_method
authorize = TABLE.authorize


def authorization_table_markdown() -> str:
    """The table as the README shows it, under "Who may call what"."""
    lines = [TABLE.markdown().rstrip("\n")]
    return "\n".join(lines) + "\n"
