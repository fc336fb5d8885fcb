"""Idempotent requests, the same way in every service: the `requests` table beside the outbox and inbox, and
the one answer for a request id used again for something else.

A client chooses a `client_request_id` per change and repeats it on a retry. The service records, in the
change's own transaction, what the id did: its operation, the record it acted on (`subject_id`, empty when
it made a new one) and the id of what it made or changed (`result_id`). A repeat of the same operation on
the same subject changes nothing and answers with the first result; the id used for anything else is
ALREADY_EXISTS naming the field, and never says what the id was used for (that may be a record the caller
may not see).

`scope` says whose ids they are: a service whose ids are shared by all its callers uses one scope for all
(intake: `SHARED`), one whose ids belong to each caller or agency uses theirs (referral).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, bindparam, insert, select

from refnet_platform.errors import AlreadyExists, InvalidArgument

__all__ = ["FIELD", "MAX_LENGTH", "REUSED", "SHARED", "PriorRequest", "RequestLog", "request_metadata",
           "requests", "require_request_id", "reused"]

FIELD = "client_request_id"
MAX_LENGTH = 100
REUSED = f"{FIELD}: already used for another request"
SHARED = "*"  # the scope of a service whose request ids all its callers share

# Its own MetaData: the services' first migrations create the outbox and inbox (platform_metadata) as they
# were; this table comes with a later migration of each service that keeps requests.
request_metadata = MetaData()

requests = Table(
    "requests", request_metadata,
    Column("scope", String(120), primary_key=True),
    Column("request_id", String(MAX_LENGTH), primary_key=True),
    Column("operation", String(40), nullable=False),
    Column("subject_id", String(36), nullable=False),
    Column("result_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class PriorRequest:
    operation: str
    subject_id: str
    result_id: str

    def repeats(self, operation: str, subject_id: str) -> bool:
        """Whether a request for `operation` on `subject_id` is this one again."""
        return (self.operation, self.subject_id) == (operation, subject_id)


def reused() -> AlreadyExists:
    """The one answer for a request id already used for another operation or another record."""
    return AlreadyExists(REUSED)


def require_request_id(request_id: str, field: str = FIELD) -> None:
    if not request_id:
        raise InvalidArgument(field, "required: choose one per change and repeat it on a retry")
    if len(request_id) > MAX_LENGTH:
        raise InvalidArgument(field, f"at most {MAX_LENGTH} characters")


_GET = select(requests.c.operation, requests.c.subject_id, requests.c.result_id).where(
    requests.c.scope == bindparam("scope"), requests.c.request_id == bindparam("request_id"))
_ADD = insert(requests)


class RequestLog:
    """What each request id did, in the unit of work's connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, scope: str, request_id: str) -> PriorRequest | None:
        row = self.conn.execute(_GET, {"scope": scope, "request_id": request_id}).first()
        return PriorRequest(row.operation, row.subject_id, row.result_id) if row else None

    def add(self, scope: str, request_id: str, operation: str, subject_id: str, result_id: str,
            at: datetime) -> None:
        self.conn.execute(_ADD, {"scope": scope, "request_id": request_id, "operation": operation,
                                 "subject_id": subject_id, "result_id": result_id, "created_at": at})

    def check(self, scope: str, request_id: str, operation: str, subject_id: str) -> PriorRequest | None:
        """The earlier request this one repeats, or None if the id is new; ALREADY_EXISTS if it did
        something else."""
        prior = self.get(scope, request_id)
        if prior is not None and not prior.repeats(operation, subject_id):
            raise reused()
        return prior
