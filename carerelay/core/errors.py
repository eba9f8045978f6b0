"""Errors services raise; adapters map them to their protocol (HTTP status, HL7 ACK code…)."""

from __future__ import annotations


class CarerelayError(Exception):
    """Base for errors a caller can act on. ``message`` is shown to the user as is."""

    def __init__(self, message: str, *, field: str | None = None, keep_changes: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # A refusal that is itself a fact to keep (a failed sign-in's audit entry and throttle
        # count): the unit of work commits what was written before raising.
        self.keep_changes = keep_changes


class NotFound(CarerelayError):
    pass


class Conflict(CarerelayError):
    pass


class Invalid(CarerelayError):
    pass


class Forbidden(CarerelayError):
    pass


class Unauthenticated(CarerelayError):
    pass


class TooManyAttempts(CarerelayError):
    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
