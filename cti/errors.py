"""Errors as the HTTP API answers them: one table from exception type to status.

Handlers and their callees raise; nothing in between catches.  The one
error handler of the klein app (``cti.http.app``) asks :func:`answer` for
the status, the field and the reason, and writes ``{"error": "<field>:
<reason>", "field": "<field>"}``.  The status comes from the exception's
*type* (its first class in :data:`STATUS` along its MRO), never from its
message, so rewording a message cannot turn a 404 into a 400.

Only domain errors (``core.errors``) are in the table: a built-in
``ValueError`` or ``KeyError`` that reaches the handler is a bug, not a
bad request, and is answered 500, logged with its traceback and counted
(``dirigent_http_errors_total``), never passed off as a 400 or a 404.
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


#: domain error type -> HTTP status; the first class of an error's MRO found here wins
STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    DomainError: 400,
}


def status_of(exc: DomainError) -> int:
    """The status for ``exc`` by its type."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return STATUS[DomainError]  # not reached: DomainError is in every MRO


def answer(exc: BaseException) -> tuple[int, str, str] | None:
    """``(status, field, reason)`` for an exception the API knows, else None
    (a server error: anything that is neither an ``ApiError`` nor a domain
    error, a built-in ``ValueError`` or ``KeyError`` included)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.field, exc.reason
    if isinstance(exc, DomainError):
        return status_of(exc), exc.field, exc.reason
    return None


def error_body(field: str, reason: str) -> bytes:
    return json.dumps({"error": f"{field}: {reason}", "field": field}).encode()
