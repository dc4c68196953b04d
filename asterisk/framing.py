"""Sans-IO framing of the Asterisk Manager Interface byte stream.

Written in the style of h11: :meth:`AmiFramer.receive_data` only buffers,
:meth:`AmiFramer.next_message` returns the next complete item or
:data:`NEED_DATA`.  No socket, no loop, no clock, so every edge case is a
unit test of a few lines and a property test can throw arbitrary bytes at it.

What a real Asterisk sends (see ``tests/fixtures/asterisk/*.ami``): one banner
line ``Asterisk Call Manager/11.0.0``, then messages made of ``Key: Value``
lines ending in CRLF, each message ended by an empty line.  What a broken
link or a buggy peer may send instead, and what we do about it:

* LF-only line ends: accepted (a trailing CR is stripped).
* Invalid UTF-8, also split across reads: lines are decoded only once they
  are complete, with replacement characters, so a multi-byte character that
  arrives in two TCP segments is decoded whole.
* A missing blank line between two messages: a new ``Event:`` line while the
  current message already has an ``Event`` or ``Response``, or a new
  ``Response:`` line while it already has a ``Response``, starts a new
  message.  (``OriginateResponse`` legitimately carries ``Event`` first and
  ``Response`` later, so ``Response`` after ``Event`` does not split.)
* Lines without a colon, over-long lines and over-large messages: the message
  is reported as :class:`BadMessage` with the reason and skipped; framing
  resynchronises at the next blank line.  Memory stays bounded whatever the
  peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Longest line we buffer.  Asterisk's own limit for one header is 1 KiB of
#: value in most places, but ``Command`` output and ``UserEvent`` bodies can be
#: longer; 64 KiB is generous and still bounds memory per connection.
MAX_LINE_BYTES: Final = 64 * 1024

#: Most header lines in one message.  ``Command`` answers with one ``Output:``
#: header per line of CLI output; ``core show channels`` on a busy PBX stays
#: well under this.
MAX_HEADERS: Final = 20_000

#: Largest message in bytes (sum of its lines).  4 MiB holds any list item
#: and any CLI output we ask for, and stops a peer from exhausting memory.
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024

BANNER_PREFIX: Final = "Asterisk Call Manager/"


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`AmiFramer.next_message` when more bytes are needed.
NEED_DATA: Final = _NeedData()

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line a server sends first, e.g. ``11.0.0``."""

    version: str


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: its headers in wire order, duplicates kept.

    ``Variable`` and ``Output`` headers legitimately repeat, so this is not a
    dict.  :meth:`get` returns the first value of a header, case-insensitively
    (AMI header names are case-insensitive on input; Asterisk itself always
    sends the canonical spelling, which we match first for speed).
    """

    headers: Headers

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def as_dict(self) -> dict[str, str]:
        """First value of every header, keyed by its wire spelling."""
        out: dict[str, str] = {}
        for key, value in self.headers:
            out.setdefault(key, value)
        return out

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A message that could not be framed; the reason says why."""

    reason: str
    headers: Headers = ()


FramerItem = Banner | AmiMessage | BadMessage


class AmiFramer:
    """Turns a byte stream from an AMI peer into :data:`FramerItem` objects.

    ``expect_banner`` is true on the client side: the first line of a
    connection is the server's banner.  A server-side framer (the simulated
    PBX reading actions) passes ``False``.
    """

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buffer = bytearray()
        self._expect_banner = expect_banner
        self._headers: list[tuple[str, str]] = []
        self._size = 0
        self._bad: str | None = None
        self._skipping_long_line = False
        self._has_event = False
        self._has_response = False
        self._ready: list[FramerItem] = []

    # -- input ---------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Buffer bytes; they are framed lazily by :meth:`next_message`."""
        self._buffer += data

    def feed(self, data: bytes) -> list[FramerItem]:
        """Convenience: buffer ``data`` and return every complete item."""
        self.receive_data(data)
        out = []
        while (item := self.next_message()) is not NEED_DATA:
            out.append(item)
        return out

    # -- output --------------------------------------------------------------
    def next_message(self) -> FramerItem | _NeedData:
        while not self._ready:
            line = self._next_line()
            if line is None:
                return NEED_DATA
            self._take_line(line)
        return self._ready.pop(0)

    # -- internals -----------------------------------------------------------
    def _next_line(self) -> bytes | None:
        buf = self._buffer
        idx = buf.find(b"\n")
        if idx < 0:
            if len(buf) > MAX_LINE_BYTES:
                # Drop what we have and keep dropping until the line ends.
                del buf[:]
                if not self._skipping_long_line:
                    self._skipping_long_line = True
                    self._mark_bad(f"line longer than {MAX_LINE_BYTES} bytes")
            return None
        line = bytes(buf[:idx])
        del buf[: idx + 1]
        if self._skipping_long_line:
            self._skipping_long_line = False
            return b"\x00"  # sentinel: the tail of an over-long line, ignored
        if len(line) > MAX_LINE_BYTES:
            self._mark_bad(f"line longer than {MAX_LINE_BYTES} bytes")
            return b"\x00"
        if line.endswith(b"\r"):
            line = line[:-1]
        return line

    def _mark_bad(self, reason: str) -> None:
        if self._bad is None:
            self._bad = reason

    def _take_line(self, raw: bytes) -> None:
        if raw == b"\x00":
            return
        text = raw.decode("utf-8", "replace")
        if self._expect_banner:
            self._expect_banner = False
            if text.startswith(BANNER_PREFIX):
                self._ready.append(Banner(text[len(BANNER_PREFIX) :].strip()))
                return
        if not text.strip():
            self._finish()
            return
        key, sep, value = text.partition(":")
        if not sep or not key or key != key.strip():
            self._mark_bad(f"header line without 'Name: value': {text[:80]!r}")
            return
        if value.startswith(" "):
            value = value[1:]
        if (key == "Event" and (self._has_event or self._has_response)) or (
            key == "Response" and self._has_response
        ):
            self._finish()  # a blank line was missing: start a new message
        self._size += len(raw) + 2
        if self._size > MAX_MESSAGE_BYTES:
            self._mark_bad(f"message larger than {MAX_MESSAGE_BYTES} bytes")
            return
        if len(self._headers) >= MAX_HEADERS:
            self._mark_bad(f"more than {MAX_HEADERS} headers")
            return
        if key == "Event":
            self._has_event = True
        elif key == "Response":
            self._has_response = True
        self._headers.append((key, value))

    def _finish(self) -> None:
        headers = tuple(self._headers)
        if self._bad is not None:
            self._ready.append(BadMessage(self._bad, headers))
        elif headers:
            self._ready.append(AmiMessage(headers))
        self._headers = []
        self._size = 0
        self._bad = None
        self._has_event = False
        self._has_response = False


def encode_message(headers: list[tuple[str, str]] | Headers) -> bytes:
    """Serialise headers as one AMI message (CRLF lines, blank line after).

    Callers are responsible for validation (see :mod:`asterisk.actions`);
    this only formats.
    """
    parts = [f"{key}: {value}\r\n" for key, value in headers]
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
