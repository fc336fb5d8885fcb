"""Kinds of domain error. Services raise these; the gRPC server maps them to status codes in one place."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of refnet's domain refused the request. The message is safe to show the caller."""


class InvalidArgument(DomainError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    pass


class FailedPrecondition(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class Unavailable(DomainError):
    """A service this one depends on cannot be reached just now: the caller may retry."""
