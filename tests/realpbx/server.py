"""``dirigent serve`` as a process against the lab PBX, as an operator runs
it: a TOML written here, the secret in ``DIRIGENT_PBX_LAB_SECRET``, users
added with ``dirigent user add``, lists with ``dirigent lists import``, and
Dirigent's view read through ``/api``, ``/healthz`` and its SQLite file."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.realpbx.lab import Lab, free_tcp_port

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]
SUPERVISOR = ("super", "super-pass-1")

# ---------------------------------------------------------------- numbers

#: Fictional numbers per time zone.  The calling window (08:00-21:00 in the
#: called party's local time, dialer/policies) is closed in the UK and the
#: whole US from about 07:00 to 08:00 UTC in winter, so a test campaign
#: takes its numbers from a zone where it is day *now*: London (Ofcom drama
#: range), New York, Los Angeles, Honolulu, Guam (555-01xx).  The US and its
#: territories leave 11:00-12:00 UTC uncovered, so London stays in the list,
#: and a campaign dials under the rules of its numbers' country (a number of
#: another country is refused, F3): :func:`country_of`.
ZONES = (
    ("Europe/London", "+4420794600{:02d}"),
    ("America/New_York", "+121255501{:02d}"),
    ("America/Los_Angeles", "+121355501{:02d}"),
    ("Pacific/Honolulu", "+180855501{:02d}"),
    ("Pacific/Guam", "+167155501{:02d}"),
)
#: a campaign's caller ID, in its own country
CALLER_ID = {"US": "+12125550100", "GB": "+442079460999"}
#: how long a scenario that is not about the nail-up waits for one: the first
#: INVITE's ring (30 s) and the retry a second later.  CI saw a farm phone
#: miss a nail-up INVITE once (no answer, cause 19); Dirigent rings it again,
#: as it should, and a 15 s wait failed a scenario about something else
NAILED_WITHIN = 70.0
_used: dict[str, int] = {}


def open_zone(margin_minutes: int = 30) -> tuple[str, str]:
    """A zone where 08:00-21:00 local holds for the next ``margin`` minutes."""
    now = dt.datetime.now(dt.UTC)
    for zone, template in ZONES:
        local = now.astimezone(ZoneInfo(zone))
        start = local.replace(hour=8, minute=0, second=0, microsecond=0)
        end = local.replace(hour=21, minute=0, second=0, microsecond=0)
        if start + dt.timedelta(minutes=5) <= local <= end - dt.timedelta(minutes=margin_minutes):
            return zone, template
    raise AssertionError("no zone with an open calling window found (the ZONES cover every hour)")


def fresh_numbers(n: int) -> list[str]:
    """``n`` numbers never used before in this session, in a zone open now."""
    zone, template = open_zone()
    first = _used.get(zone, 0)
    if first + n > 100:
        raise AssertionError(f"out of fictional numbers in {zone}")
    _used[zone] = first + n
    return [template.format(i) for i in range(first, first + n)]


def country_of(numbers: Sequence[str]) -> str:
    """The rules a campaign dialing ``numbers`` is under: the UK's for London's,
    the US's for the others (Guam's too: the US pack governs its territories);
    with no numbers, those of the zone open now."""
    first = numbers[0] if numbers else open_zone()[1].format(0)
    return "GB" if first.startswith("+44") else "US"


# ---------------------------------------------------------------- config


@dataclass
class AgentSpec:
    id: str
    endpoint: str
    mode: str  # ring | nailed
    queues: Sequence[str]


@dataclass
class CampaignSpec:
    name: str
    mode: str = "progressive"
    machine_action: str = "hangup"
    wrap_up: float = 3.0
    ring_timeout: float = 15.0
    extra: dict[str, Any] = field(default_factory=dict)


def toml_value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")


def write_config(
    folder: Path,
    lab: Lab,
    agents: Sequence[AgentSpec],
    queues: Sequence[str] = ("sales",),
    campaigns: Sequence[CampaignSpec] = (),
    pbx_name: str = "lab",
    lists: dict[str, Sequence[str]] | None = None,
) -> tuple[Path, int]:
    http = free_tcp_port()
    lines = [
        "[http]",
        'host = "127.0.0.1"',
        f"port = {http}",
        "[database]",
        f'url = "sqlite:///{folder / "store.db"}"',
        "[[pbx]]",
        f'name = "{pbx_name}"',
        'host = "127.0.0.1"',
        f"port = {lab.ami_port}",
        'username = "dirigent"',
        "backoff_initial = 0.2",
        "backoff_max = 1.0",
        "keepalive_interval = 2.0",
        "keepalive_timeout = 2.0",
        "[routing]",
        "offer_timeout = 15",
        "wrap_up = 1",
    ]
    for q in queues:
        lines += ["[[queue]]", f'name = "{q}"']
    for c in campaigns:
        country = country_of((lists or {}).get(c.name, ()))
        lines += [
            "[[campaign]]",
            f'name = "{c.name}"',
            f'country = "{country}"',
            f'caller_id = "{CALLER_ID[country]}"',
            f'mode = "{c.mode}"',
            f'machine_action = "{c.machine_action}"',
            f"wrap_up = {c.wrap_up}",
            f"ring_timeout = {c.ring_timeout}",
            "amd_false_positive = 0.0",
            "auto_start = true",
        ]
        lines += [f"{k} = {toml_value(v)}" for k, v in c.extra.items()]
    for a in agents:
        lines += [
            "[[agent]]",
            f'id = "{a.id}"',
            f"endpoint = {toml_value(a.endpoint)}",  # escaped: a test may give a bad one
            f'mode = "{a.mode}"',
            f"queues = {json.dumps(list(a.queues))}",
            "auto_login = true",
        ]
    path = folder / "dirigent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, http


# ---------------------------------------------------------------- the process


def run_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    r = subprocess.run(
        [*DIRIGENT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    if r.returncode != 0:
        raise AssertionError(f"dirigent {' '.join(args)} failed: {r.stdout}{r.stderr}")
    return r.stdout


class Dirigent:
    """One ``dirigent serve`` process (its log in ``folder/serve.log``)."""

    def __init__(self, folder: Path, config: Path, http: int, secret: str, pbx_name: str = "lab"):
        self.folder = folder
        self.config = config
        self.http = http
        self.base = f"http://127.0.0.1:{http}"
        self.db = folder / "store.db"
        self.env = {f"DIRIGENT_PBX_{pbx_name.upper().replace('-', '_')}_SECRET": secret}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "serve.log"
        self._token: str | None = None

    # -------------------------------------------------------- set-up

    def prepare(self, lists: dict[str, Sequence[str]] | None = None) -> None:
        """Database, the supervisor user, and each campaign's list."""
        run_cli("db", "upgrade", "--config", str(self.config), env=self.env)
        run_cli(
            "user",
            "add",
            SUPERVISOR[0],
            "--role",
            "supervisor",
            "--config",
            str(self.config),
            stdin=SUPERVISOR[1] + "\n",
            env=self.env,
        )
        for campaign, numbers in (lists or {}).items():
            csv = self.folder / f"{campaign}.csv"
            csv.write_text(
                "name,phone\n" + "".join(f"Person {i},{n}\n" for i, n in enumerate(numbers))
            )
            run_cli(
                "lists",
                "import",
                str(csv),
                "--campaign",
                campaign,
                "--config",
                str(self.config),
                env=self.env,
            )

    def start(self) -> None:
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*DIRIGENT, "serve", "--config", str(self.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        self._token = None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                # a clean stop waits for the lines in progress: up to a ring
                # time-out (15 s here), AMD's time and the connect limit, + 3 s
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -------------------------------------------------------- HTTP

    def request(
        self, method: str, path: str, body: Any = None, auth: bool = True
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if auth:
            req.add_header("authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                raw = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read().decode(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def token(self) -> str:
        if self._token is None:
            status, body = self.request(
                "POST",
                "/api/login",
                {"username": SUPERVISOR[0], "password": SUPERVISOR[1]},
                auth=False,
            )
            assert status == 200, f"login failed: {status} {body}"
            self._token = body["token"]
        return self._token

    def health(self) -> tuple[int, Any]:
        return self.request("GET", "/healthz", auth=False)

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"dirigent serve exited {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                status, body = self.health()
                if status == 200:
                    return body
                last = (status, body)
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(
            f"/healthz never said ok within {timeout} s: {last}\n{self.log()[-3000:]}"
        )

    def agent(self, agent_id: str) -> dict[str, Any]:
        status, body = self.request("GET", f"/api/agents/{agent_id}")
        assert status == 200, body
        return body

    def campaign(self, name: str) -> dict[str, Any]:
        status, body = self.request("GET", f"/api/campaigns/{name}")
        assert status == 200, body
        return body

    # -------------------------------------------------------- database

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        con.row_factory = sqlite3.Row
        try:
            return list(con.execute(sql, args))
        finally:
            con.close()


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; else fail saying ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, OSError) as exc:  # not yet / not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what} (within {timeout:g} s; last seen: {last!r})")
