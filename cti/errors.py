"""Errors as the HTTP API answers them: one table from exception type to status.

Handlers and their callees raise; nothing in between catches.  The one
error handler of the klein app (``cti.http.app``) asks :func:`answer` for
the status, the field and the reason, and writes ``{"error": "<field>:
<reason>", "field": "<field>"}``.  The status comes from the exception's
*type* (its first class in :data:`STATUS` along its MRO), never from its
message, so rewording a message cannot turn a 404 into a 400.
"""

from __future__ import annotations

import json

from core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable


class ApiError(Exception):
    """An answer decided at the edge (a missing token, a too-large body):
    the status is given, not derived."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


#: exception type -> HTTP status; the first class of an exception's MRO found here wins
STATUS: dict[type[BaseException], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    DomainError: 400,
    # the built-ins that callees not yet moved to core.errors raise (by the
    # old convention their message reads "field: reason")
    PermissionError: 403,
    LookupError: 404,
    ValueError: 400,
}


def status_of(exc: BaseException) -> int | None:
    """The status for ``exc`` by its type, or None (a server error)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


def answer(exc: BaseException) -> tuple[int, str, str] | None:
    """``(status, field, reason)`` for an exception the API knows, else None."""
    if isinstance(exc, ApiError):
        return exc.status, exc.field, exc.reason
    status = status_of(exc)
    if status is None:
        return None
    if isinstance(exc, DomainError):
        return status, exc.field, exc.reason
    field, sep, reason = str(exc).partition(": ")
    return (status, field, reason) if sep else (status, "request", str(exc))


def error_body(field: str, reason: str) -> bytes:
    return json.dumps({"error": f"{field}: {reason}", "field": field}).encode()
