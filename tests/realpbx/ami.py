"""The PBX's own account of what happened: a second AMI connection to the
lab (the lab's ``dirigent-novarset`` user, not Dirigent's), recording every
event with its arrival time.

Why a watcher of our own: the tier asserts from the PBX's side, never only
from Dirigent's view of itself.  Channel creations (``Newchannel``), dialplan
steps (``Newexten``), bridge entries and UserEvents tell what Asterisk did,
whatever Dirigent believes.  The watcher logs in again by itself when the
PBX restarts (``core restart now``, a kill -9), so one watcher spans a whole
scenario; its own logins never touch Dirigent's session.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: the lab's second AMI user (../shared/asterisk/conf/manager.conf)
WATCHER_USER = ("dirigent-novarset", "secret")


@dataclass(frozen=True)
class AmiEvent:
    """One event as it arrived: monotonic arrival time and its headers (the
    first value of a repeated header, as Asterisk's channel block comes first)."""

    at: float
    headers: dict[str, str]

    @property
    def name(self) -> str:
        return self.headers.get("Event", "")

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


def parse_message(raw: bytes) -> dict[str, str]:
    """``Key: value`` lines of one AMI message (CRLF-separated, blank line removed)."""
    msg: dict[str, str] = {}
    for line in raw.decode(errors="replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in msg:
            msg[key] = value
    return msg


class AmiWatcher:
    """Reads the lab's AMI events in a thread; :meth:`events` filters them.

    ``logins`` counts the watcher's own successful logins (one per PBX boot
    it saw), so a test can tell it was connected across a restart."""

    def __init__(self, port: int, username: str = WATCHER_USER[0], secret: str = WATCHER_USER[1]):
        self.port = port
        self.logins = 0
        self._events: list[AmiEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._user, self._secret = username, secret
        self._thread = threading.Thread(target=self._run, name="ami-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(0.5)
                    s.sendall(
                        f"Action: Login\r\nUsername: {self._user}\r\n"
                        f"Secret: {self._secret}\r\n\r\n".encode()
                    )
                    buf = b""
                    while not self._stop.is_set():
                        try:
                            chunk = s.recv(65536)
                        except TimeoutError:
                            continue
                        if not chunk:
                            break  # the PBX went away: log in again once it is back
                        buf += chunk
                        while b"\r\n\r\n" in buf:
                            raw, buf = buf.split(b"\r\n\r\n", 1)
                            msg = parse_message(raw)
                            if msg.get("Response") == "Success" and "Event" not in msg:
                                self.logins += 1
                            elif "Event" in msg:
                                with self._lock:
                                    self._events.append(AmiEvent(time.monotonic(), msg))
            except OSError:
                time.sleep(0.1)

    def wait_logged_in(self, timeout: float = 10.0, logins: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.logins < logins:
            if time.monotonic() > deadline:
                raise AssertionError(f"the AMI watcher could not log in to port {self.port}")
            time.sleep(0.05)

    def events(
        self, name: str | None = None, where: Callable[[AmiEvent], bool] | None = None
    ) -> list[AmiEvent]:
        """Events so far (of ``name``, matching ``where``), in arrival order."""
        with self._lock:
            found = list(self._events)
        return [
            e for e in found if (name is None or e.name == name) and (where is None or where(e))
        ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def __enter__(self) -> AmiWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def agent_legs(watcher: AmiWatcher, endpoint: str, agent: str) -> list[AmiEvent]:
    """Nail-ups of ``agent`` as the PBX ran them: the phone's channel
    (``PJSIP/<endpoint>-…``) entering ``dirigent-agent,<agent>,1`` (the
    context every nail-up Originate targets)."""
    return watcher.events(
        "Newexten",
        lambda e: (
            e.get("Channel").startswith(f"PJSIP/{endpoint}-")
            and e.get("Context") == "dirigent-agent"
            and e.get("Exten") == agent
            and e.get("Priority") == "1"
        ),
    )
