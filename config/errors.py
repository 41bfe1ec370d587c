"""The one base class of domain errors. The API turns them into RFC 9457 problem
details and htmx views into messages, in one place each."""

from __future__ import annotations


class ApplicationError(Exception):
    """A refusal a person can act on: `message` says what and why, `field` what is at fault."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    """The request is valid but the object's current state does not allow it."""

    status = 409
    code = "conflict"
