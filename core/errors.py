"""Domain errors: what went wrong, in the domain's words, with the field named.

Every face (HTTP, command line, WebSocket) turns these into its own answer
*by type*, never by reading the message: the HTTP API maps them to status
codes in one table (``cti.errors``), the command line to exit codes.  Each
carries ``field`` (the input or thing at fault, e.g. ``"queue"`` or
``"skills.de"``) and ``reason`` (why, for a person); ``str()`` is
``"field: reason"`` as the messages were before, so logs and the CLI read
the same.

The classes also derive from the built-in exception a caller would have
caught before (``Invalid`` is a ``ValueError``, ``NotFound`` a
``LookupError``, ``Forbidden`` a ``PermissionError``), so an existing
``except ValueError`` keeps working.  The reverse does not hold: the
faces map these types only, and a built-in ``ValueError`` or ``KeyError``
reaching one is a bug (the HTTP API's 500), never a bad request.  Pure: no
imports of ours, of Twisted or of SQLAlchemy.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every domain error; ``field`` names the culprit, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class Invalid(DomainError, ValueError):
    """A value that is wrong whatever the state: bad type, range, format."""


class NotFound(DomainError, LookupError):
    """The thing named (an agent, a queue, a campaign, a list) does not exist."""


class Conflict(DomainError):
    """Possible in general, not now: the state of the thing forbids it."""


class Forbidden(DomainError, PermissionError):
    """The actor may not do this to this thing (e.g. another agent's call)."""


class Unavailable(DomainError):
    """A part this needs is not there or not configured (no database, no PBX)."""
