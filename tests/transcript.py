"""Reading the recorded AMI transcripts (``fixtures/asterisk/*.ami``).

Format (../shared/asterisk/README.md): ``<ms> <<< line`` from Asterisk,
``<ms> >>> line`` from the client, ``<ms> --- note``; a blank ``<<<``/``>>>``
line ends a message; ``--- TCP connect`` starts a connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TRANSCRIPTS = Path(__file__).parent / "fixtures" / "asterisk"
_LINE = re.compile(r"^\s*([\d.]+) (<<<|>>>|---) ?(.*)$")

Msg = list[tuple[str, str]]


@dataclass
class Step:
    """What the client sent, and what Asterisk sent after it (before the next)."""

    sent: Msg | None
    replies: list[Msg] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed: bool = False


@dataclass
class Connection:
    banner: str | None = None
    steps: list[Step] = field(default_factory=list)
    received: list[Msg] = field(default_factory=list)
    sent: list[Msg] = field(default_factory=list)


@dataclass
class Transcript:
    name: str
    connections: list[Connection]


def _pairs(lines: list[str]) -> Msg:
    out = []
    for line in lines:
        key, _, value = line.partition(":")
        out.append((key, value[1:] if value.startswith(" ") else value))
    return out


def load_transcript(name: str) -> Transcript:
    conns: list[Connection] = []
    conn: Connection | None = None
    pending: dict[str, list[str]] = {"<<<": [], ">>>": []}
    for raw in (TRANSCRIPTS / name).read_text().splitlines():
        if raw.startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            continue
        _, direction, text = m.groups()
        if direction == "---":
            if text.startswith("TCP connect"):
                conn = Connection(steps=[Step(None)])
                conns.append(conn)
            elif conn is not None:
                if "connection closed by peer" in text:
                    conn.steps[-1].closed = True
                conn.steps[-1].notes.append(text)
            continue
        assert conn is not None
        if direction == "<<<" and conn.banner is None and text.startswith("Asterisk Call Manager/"):
            conn.banner = text
            continue
        if text == "":
            msg = _pairs(pending[direction])
            pending[direction] = []
            if direction == ">>>":
                conn.sent.append(msg)
                conn.steps.append(Step(msg))
            else:
                conn.received.append(msg)
                conn.steps[-1].replies.append(msg)
        else:
            pending[direction].append(text)
    return Transcript(name, conns)


def all_transcripts() -> list[tuple[str, Transcript]]:
    """Every recorded transcript, by file name."""
    return [(p.name, load_transcript(p.name)) for p in sorted(TRANSCRIPTS.glob("*.ami"))]


def received_bytes(conn: Connection) -> bytes:
    out = (conn.banner or "") + "\r\n"
    for msg in conn.received:
        out += "".join(f"{k}: {v}\r\n" for k, v in msg) + "\r\n"
    return out.encode()
