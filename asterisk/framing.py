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

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final, overload

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


class _NeedData(enum.Enum):
    """A one-member enum, so that ``item is not NEED_DATA`` narrows the type
    of ``item`` to :data:`FramerItem` for the type checker."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`AmiFramer.next_message` when more bytes are needed.
NEED_DATA: Final = _NeedData.NEED_DATA

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line a server sends first, e.g. ``11.0.0``."""

    version: str


class AmiMessage:
    """One AMI message: its headers in wire order, duplicates kept.

    ``Variable`` and ``Output`` headers legitimately repeat, so this is not a
    dict.  :meth:`get` returns the first value of a header, case-insensitively
    (AMI header names are case-insensitive on input; Asterisk itself always
    sends the canonical spelling, which we look up first).  The first
    value of each spelling is indexed on the first look-up: an event is read
    by name five to ten times, and a call event has thirty headers.
    """

    __slots__ = ("_first", "headers")

    def __init__(self, headers: Headers) -> None:
        self.headers = headers
        self._first: dict[str, str] | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AmiMessage) and other.headers == self.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"AmiMessage({self.headers!r})"

    @overload
    def get(self, name: str, default: None = None) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), else ``default``;
        with a string default the result is a string."""
        first = self._first
        if first is None:
            # reversed: the first of repeated headers is the one that stays
            first = self._first = dict(reversed(self.headers))
        value = first.get(name)
        if value is not None:
            return value
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def items(self) -> Headers:
        """Every header in wire order, duplicates kept."""
        return self.headers

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

    Whole messages are located with one ``find`` for the blank line and
    decoded at once; the buffer is consumed by moving an offset, not by
    deleting from its front, so framing is linear in the bytes received.
    """

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._expect_banner = expect_banner
        self._bad: str | None = None  # the message being read is already bad
        self._skip_line = False  # dropping the rest of an over-long line
        self._ready: deque[FramerItem] = deque()

    # -- input ---------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Buffer bytes; they are framed lazily by :meth:`next_message`."""
        if self._pos > 65536 and self._pos * 2 > len(self._buffer):
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    def feed(self, data: bytes) -> list[FramerItem]:
        """Convenience: buffer ``data`` and return every complete item."""
        self.receive_data(data)
        out = []
        while (item := self.next_message()) is not NEED_DATA:
            out.append(item)
        return out

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet framed (bounded by the size limits)."""
        return len(self._buffer) - self._pos

    # -- output --------------------------------------------------------------
    def next_message(self) -> FramerItem | _NeedData:
        while not self._ready:
            if not self._frame_one():
                return NEED_DATA
        return self._ready.popleft()

    # -- internals -----------------------------------------------------------
    def _frame_one(self) -> bool:
        """Frame the next item into ``_ready``; False if more bytes are needed."""
        buf, pos = self._buffer, self._pos
        if self._skip_line:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                self._drop_all()
                return False
            self._pos = pos = nl + 1
            self._skip_line = False
        if self._expect_banner:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return self._check_unterminated()
            line = bytes(buf[pos:nl]).rstrip(b"\r").decode("utf-8", "replace")
            if line.startswith(BANNER_PREFIX):
                self._pos = nl + 1
                self._expect_banner = False
                self._ready.append(Banner(line[len(BANNER_PREFIX) :].strip()))
                return True
            self._expect_banner = False
        # A message ends at an empty line: "\n\n" or "\n\r\n" (or starts with one).
        if buf.startswith(b"\n", pos) or buf.startswith(b"\r\n", pos):
            end, after = pos, pos + (1 if buf[pos] == 10 else 2)
        else:
            # CRLF is what Asterisk sends; look for LF-only endings only before it
            b = buf.find(b"\n\r\n", pos)
            a = buf.find(b"\n\n", pos, b + 2 if b >= 0 else len(buf))
            if a < 0 and b < 0:
                return self._check_unterminated()
            if b < 0 or 0 <= a < b:
                end, after = a + 1, a + 2
            else:
                end, after = b + 1, b + 3
        block = bytes(buf[pos:end])
        self._pos = after
        self._take_block(block)
        return True

    def _check_unterminated(self) -> bool:
        """No complete message yet: enforce the line and message size limits."""
        buf, pos = self._buffer, self._pos
        pending = len(buf) - pos
        last_nl = buf.rfind(b"\n", pos)
        tail = len(buf) - (last_nl + 1 if last_nl >= 0 else pos)
        if tail > MAX_LINE_BYTES:
            self._mark_bad(f"line longer than {MAX_LINE_BYTES} bytes")
            self._drop_all()
            self._skip_line = True
        elif pending > MAX_MESSAGE_BYTES:
            self._mark_bad(f"message larger than {MAX_MESSAGE_BYTES} bytes")
            self._pos = last_nl + 1  # keep reading this message's lines, to its end
        return False

    def _drop_all(self) -> None:
        del self._buffer[:]
        self._pos = 0

    def _mark_bad(self, reason: str) -> None:
        if self._bad is None:
            self._bad = reason

    def _take_block(self, block: bytes) -> None:
        headers: list[tuple[str, str]] = []
        has_event = has_response = False
        bad = self._bad
        self._bad = None
        lines = block.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        if len(lines) > MAX_HEADERS + 1:
            bad = bad or f"more than {MAX_HEADERS} headers"
        check_length = len(block) > MAX_LINE_BYTES
        for line in lines:
            if not line:
                continue
            key, sep, value = line.partition(": ")
            if not sep or ":" in key:  # "Key:" / "Key:value", or a colon in the value
                key, sep, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if not sep:
                    bad = bad or f"header line without 'Name: value': {line[:80]!r}"
                    continue
            if not key or key[0] == " " or key[-1] == " ":
                bad = bad or f"header line without 'Name: value': {line[:80]!r}"
                continue
            if check_length and len(line) > MAX_LINE_BYTES:
                bad = bad or f"line longer than {MAX_LINE_BYTES} bytes"
                continue
            if key == "Event" or key == "Response":
                if has_response or (key == "Event" and has_event):
                    self._emit(headers, bad)  # a blank line was missing: start a new message
                    headers, bad = [], None
                    has_event = has_response = False
                if key == "Event":
                    has_event = True
                else:
                    has_response = True
            headers.append((key, value))
        self._emit(headers, bad)

    def _emit(self, headers: list[tuple[str, str]], bad: str | None) -> None:
        if bad is not None:
            self._ready.append(BadMessage(bad, tuple(headers)))
        elif headers:
            self._ready.append(AmiMessage(tuple(headers)))


def encode_message(headers: list[tuple[str, str]] | Headers) -> bytes:
    """Serialise headers as one AMI message (CRLF lines, blank line after).

    Callers are responsible for validation (see :mod:`asterisk.actions`);
    this only formats.
    """
    parts = [f"{key}: {value}\r\n" for key, value in headers]
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
