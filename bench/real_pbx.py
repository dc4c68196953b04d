"""Dirigent on a real Asterisk 22 (the real-PBX tier's lab): answer-to-agent
latency against the PBX's own floor, re-nail time after ``core restart now``,
dials per number.

The lab of ``tests/realpbx`` (the relocatable Asterisk, the project's shipped
``asterisk/conf``, pyVoIP agent phones and the scripted far end of the
``customers`` trunk) is started once.  Each run then measures, one after
the other on the same PBX:

* **Dirigent**: one ``dirigent serve`` with two nailed-up agents on a
  progressive campaign whose numbers all answer as persons, and one
  nailed-up agent for inbound callers on DID 4930555100; then
  ``core restart now`` with every agent nailed up.
* **Baseline** (no Dirigent): :class:`DirectClient`, a trivial AMI client
  that nails the same agents up itself, dials the same kind of numbers one
  per agent, and on the shipped dialplan's ``DirigentAMD`` (``HUMAN``) or
  ``DirigentInbound`` UserEvent sends the ``Redirect`` to ``dirigent-join``
  at once: no routing, no database, no pacing.  Its latency is what the PBX,
  the dialplan and an AMI round trip cost by themselves, so the difference
  is Dirigent's own overhead.

A separate AMI connection (the lab's ``dirigent-novarset`` user,
:class:`tests.realpbx.ami.AmiWatcher`) times both the same way, on the
PBX's side (events as they arrive on loopback), never from a client's view
of itself:

* outbound: from the ``DirigentAMD`` UserEvent (``Status: HUMAN``) of a
  customer channel to its ``BridgeEnter`` into an agent's ConfBridge;
* inbound: from the ``DirigentInbound`` UserEvent to the caller's
  ``BridgeEnter``;
* re-nail (Dirigent only): from ``core waitfullybooted`` returning to every
  agent back in its ConfBridge;
* dials per number: INVITEs at the far end / attempt rows (must be 1).

Each figure is the median over ``--runs`` runs (per run: p50 and p99 of its
calls); runs times calls must stay within the 100 fictional numbers per zone.

    python bench/real_pbx.py [--runs 3] [--calls 12] [--inbound 6] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from tests.realpbx.ami import AmiEvent, AmiWatcher, parse_message
from tests.realpbx.callers import InboundCaller
from tests.realpbx.farm import Farm
from tests.realpbx.lab import Lab, LabUnavailable, make_lab
from tests.realpbx.server import (
    AgentSpec,
    CampaignSpec,
    Dirigent,
    fresh_numbers,
    wait_until,
    write_config,
)

#: outbound agents (agent id → phone) and the inbound one, in Dirigent and the baseline alike
OUTBOUND = {"carl": "1003", "dora": "1005"}
INBOUND = ("bert", "1002")
INBOUND_DID = "4930555100"  # the lab routes it to dirigent-inbound,nailed
TALK = 3.0  # seconds a person talks after answering
WRAP = 0.5


# ---------------------------------------------------------------- measuring


def latencies(events: Sequence[AmiEvent], user_event: str) -> list[float]:
    """Seconds from a UserEvent (per Uniqueid) to that channel's BridgeEnter
    into an agent ConfBridge (``BridgeName: agent-...``)."""
    started: dict[str, float] = {}
    out = []
    for e in events:
        if e.name == "UserEvent" and e.get("UserEvent") == user_event:
            if user_event == "DirigentAMD" and "HUMAN" not in e.get("Status"):
                continue
            started.setdefault(e.get("Uniqueid"), e.at)
        elif e.name == "BridgeEnter" and e.get("BridgeName").startswith("agent-"):
            uid = e.get("Uniqueid")
            if uid in started:
                out.append(e.at - started.pop(uid))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "n": 0}
    return {
        "p50_ms": round(1000 * statistics.median(values), 1),
        "p99_ms": round(1000 * percentile(values, 0.99), 1),
        "n": len(values),
    }


def all_nailed(lab: Lab, agents: Sequence[str]) -> bool:
    confs = lab.confbridges()
    return all(confs.get(f"agent-{a}") == 1 for a in agents)


def inbound_calls(lab: Lab, count: int, first: int) -> None:
    """``count`` callers to the nailed inbound agent, one after the other."""
    for i in range(count):
        with InboundCaller(lab, f"4915112349{first + i:03d}") as caller:
            caller.dial(INBOUND_DID)
            wait_until(lambda: lab.bridge_with("customers", INBOUND[1]), 20, "inbound put through")
            time.sleep(1.0)
        time.sleep(1.5)


# ---------------------------------------------------------------- Dirigent


def run_dirigent(
    lab: Lab, farm: Farm, watcher: AmiWatcher, calls: int, inbound: int, folder: Path, run: int
) -> dict[str, Any]:
    numbers = fresh_numbers(calls)
    farm.script(dict.fromkeys(numbers, "human"))
    agents = [AgentSpec(a, p, "nailed", ["out"]) for a, p in OUTBOUND.items()]
    agents.append(AgentSpec(INBOUND[0], INBOUND[1], "nailed", ["nailed"]))
    everyone = [a.id for a in agents]
    config, http = write_config(
        folder, lab, agents, queues=["nailed"], campaigns=[CampaignSpec("out", wrap_up=WRAP)]
    )
    server = Dirigent(folder, config, http, lab.secret)
    server.prepare({"out": numbers})
    lab.forget_lease()  # the previous run's Dirigent (another database) is gone
    mark = len(watcher.events())
    server.start()
    try:
        server.wait_healthy()

        def attempts_closed() -> bool:
            rows = server.query("SELECT outcome FROM attempt")
            return len(rows) >= calls and all(r["outcome"] for r in rows)

        wait_until(lambda: all_nailed(lab, [INBOUND[0]]), 30, "the inbound agent nailed up")
        inbound_calls(lab, inbound, 100 * run)
        wait_until(attempts_closed, 40 + 6 * calls, "the campaign's attempts closed")
        rows = server.query("SELECT e164 FROM attempt")
        per_number = {n: farm.invites(n) for n in numbers}
        attempts = {n: sum(1 for r in rows if r["e164"] == n) for n in numbers}
        wait_until(lambda: all_nailed(lab, everyone), 30, "agents nailed up before the restart")
        events = watcher.events()[mark:]
        lab.cli("core restart now")
        time.sleep(0.5)
        lab.wait_booted()
        back = time.monotonic()
        wait_until(
            lambda: all_nailed(lab, everyone),
            60,
            "every agent re-nailed after core restart now",
            every=0.05,
        )
        renail = time.monotonic() - back
    finally:
        server.stop()
        lab.hangup_all()
    dials = [per_number[n] / attempts[n] for n in numbers if attempts[n]]
    return {
        "outbound": latencies(events, "DirigentAMD"),
        "inbound": latencies(events, "DirigentInbound"),
        "renail": renail,
        "dials_per_attempt_max": max(dials) if dials else None,
        "invites": sum(per_number.values()),
        "attempts": sum(attempts.values()),
    }


# ---------------------------------------------------------------- baseline


class DirectClient:
    """The floor: a trivial AMI client that connects the same calls the way
    the shipped dialplan expects, with nothing between the event and the
    action.  It logs in (as Dirigent's user: Dirigent is not running then),
    nails each agent's phone into ``dirigent-agent,<agent>,1``, dials
    customers into ``dirigent-outbound`` one per agent, and on
    ``DirigentAMD`` HUMAN / ``DirigentInbound`` redirects the channel to
    ``dirigent-join,<agent>,1`` straight from the read loop."""

    def __init__(self, lab: Lab, inbound_agent: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", lab.ami_port), timeout=5)
        self.inbound_agent = inbound_agent
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._agent_of: dict[str, str] = {}  # DIRIGENT_ATTEMPT -> agent
        self._attempt_of: dict[str, str] = {}  # customer Uniqueid -> attempt
        self.ended: dict[str, threading.Event] = {}  # attempt -> its customer hung up
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.send("Login", Username="dirigent", Secret=lab.secret)
        self._thread = threading.Thread(target=self._read, name="direct-client", daemon=True)
        self._thread.start()

    def send(self, action: str, **headers: str) -> None:
        lines = [f"Action: {action}", f"ActionID: direct-{next(self._ids)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        with self._send_lock:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def nail(self, agent: str, phone: str) -> None:
        self.send(
            "Originate",
            Channel=f"PJSIP/{phone}",
            Context="dirigent-agent",
            Exten=agent,
            Priority="1",
            Async="true",
            Timeout="20000",
        )

    def dial(self, number: str, agent: str, attempt: str) -> threading.Event:
        done = threading.Event()
        with self._lock:
            self._agent_of[attempt] = agent
            self.ended[attempt] = done
        self.send(
            "Originate",
            Channel=f"PJSIP/{number}@customers",
            Context="dirigent-outbound",
            Exten="s",
            Priority="1",
            Async="true",
            Timeout="30000",
            CallerID="+12125550100",
            Variable=f"DIRIGENT_ATTEMPT={attempt}",
        )
        return done

    def _read(self) -> None:
        buf = b""
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\r\n\r\n" in buf:
                raw, buf = buf.split(b"\r\n\r\n", 1)
                self._on(parse_message(raw))

    def _on(self, msg: dict[str, str]) -> None:
        event = msg.get("Event")
        if msg.get("Response") == "Error":
            self.errors.append(msg.get("Message", "?"))
        elif event == "UserEvent" and msg.get("UserEvent") == "DirigentAMD":
            attempt = msg.get("Attempt", "")
            with self._lock:
                agent = self._agent_of.get(attempt)
                self._attempt_of[msg.get("Uniqueid", "")] = attempt
            if agent is not None and "HUMAN" in msg.get("Status", ""):
                self.send(
                    "Redirect",
                    Channel=msg["Channel"],
                    Context="dirigent-join",
                    Exten=agent,
                    Priority="1",
                )
        elif event == "UserEvent" and msg.get("UserEvent") == "DirigentInbound":
            self.send(
                "Redirect",
                Channel=msg["Channel"],
                Context="dirigent-join",
                Exten=self.inbound_agent,
                Priority="1",
            )
        elif event == "Hangup":
            with self._lock:
                ended = self._attempt_of.pop(msg.get("Uniqueid", ""), None)
                done = self.ended.get(ended) if ended else None
            if done is not None:
                done.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self.sock.close()


def run_baseline(
    lab: Lab, farm: Farm, watcher: AmiWatcher, calls: int, inbound: int, run: int
) -> dict[str, Any]:
    numbers = [f"+1999555{run:02d}{i:02d}" for i in range(calls)]  # not Dirigent's: no window
    farm.script(dict.fromkeys(numbers, "human"))
    everyone = [*OUTBOUND, INBOUND[0]]
    mark = len(watcher.events())
    client = DirectClient(lab, INBOUND[0])
    try:
        for agent, phone in [*OUTBOUND.items(), INBOUND]:
            client.nail(agent, phone)
        wait_until(lambda: all_nailed(lab, everyone), 30, "baseline: agents nailed up")
        todo = list(numbers)
        todo_lock = threading.Lock()

        def agent_loop(agent: str) -> None:
            while True:
                with todo_lock:
                    if not todo:
                        return
                    number = todo.pop(0)
                done = client.dial(number, agent, f"base-{run}-{number}")
                if not done.wait(30):
                    client.errors.append(f"{number}: no hang-up within 30 s")
                time.sleep(WRAP)

        workers = [threading.Thread(target=agent_loop, args=(a,)) for a in OUTBOUND]
        for w in workers:
            w.start()
        inbound_calls(lab, inbound, 100 * run + 50)
        for w in workers:
            w.join(timeout=60 + 10 * calls)
        time.sleep(0.5)
        events = watcher.events()[mark:]
    finally:
        client.close()
        lab.hangup_all()
    if client.errors:
        print(f"baseline run {run}: {client.errors[:5]}", file=sys.stderr)
    return {
        "outbound": latencies(events, "DirigentAMD"),
        "inbound": latencies(events, "DirigentInbound"),
    }


# ---------------------------------------------------------------- report


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="runs; every figure is their median")
    parser.add_argument("--calls", type=int, default=12, help="outbound numbers per run")
    parser.add_argument("--inbound", type=int, default=6, help="inbound calls per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.runs < 1 or args.runs * args.calls > 100:
        parser.error("--runs times --calls must be between 1 and 100 (fictional numbers per zone)")
    try:
        lab = make_lab()
    except LabUnavailable as exc:
        raise SystemExit(str(exc)) from None
    lab.start()
    farm = Farm(lab)
    farm.phones.start()
    watcher = AmiWatcher(lab.ami_port)
    per_run: list[dict[str, Any]] = []
    try:
        wait_until(farm.registered, 20, "agent phones registered")
        watcher.wait_logged_in()
        version = lab.cli("core show version").split(" built")[0].strip()
        farm.customers.talk = TALK
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                ours = run_dirigent(lab, farm, watcher, args.calls, args.inbound, Path(folder), run)
            base = run_baseline(lab, farm, watcher, args.calls, args.inbound, run)
            row: dict[str, Any] = {}
            for side, measured in (("dirigent", ours), ("baseline", base)):
                for direction in ("outbound", "inbound"):
                    s = summary(measured[direction])
                    row[f"{side}_{direction}_p50_ms"] = s["p50_ms"]
                    row[f"{side}_{direction}_p99_ms"] = s["p99_ms"]
                    row[f"{side}_{direction}_calls"] = s["n"]
            row["renail_after_restart_seconds"] = round(ours["renail"], 2)
            row["dials_per_attempt_max"] = ours["dials_per_attempt_max"]
            row["invites"], row["attempts"] = ours["invites"], ours["attempts"]
            per_run.append(row)
            print(f"run {run + 1}/{args.runs}: {row}", file=sys.stderr)
    finally:
        watcher.close()
        farm.phones.stop()
        lab.stop()
        if os.environ.get("DIRIGENT_TEST_KEEP"):
            print(f"lab run folder kept: {lab.run}", file=sys.stderr)
        else:
            shutil.rmtree(lab.run.parent, ignore_errors=True)
    result: dict[str, Any] = {"runs": args.runs}
    for key in per_run[0]:
        if key.endswith(("_ms", "_seconds")):
            result[key] = median_of(per_run, key)
    for side in ("dirigent", "baseline"):
        for direction in ("outbound", "inbound"):
            result[f"{side}_{direction}_calls"] = sum(
                r[f"{side}_{direction}_calls"] for r in per_run
            )
    for direction in ("outbound", "inbound"):
        ours, floor = result[f"dirigent_{direction}_p50_ms"], result[f"baseline_{direction}_p50_ms"]
        result[f"overhead_{direction}_p50_ms"] = (
            round(ours - floor, 1) if ours is not None and floor is not None else None
        )
    dials = [r["dials_per_attempt_max"] for r in per_run if r["dials_per_attempt_max"] is not None]
    result["dials_per_attempt_max"] = max(dials) if dials else None
    result["invites"] = sum(r["invites"] for r in per_run)
    result["attempts"] = sum(r["attempts"] for r in per_run)
    result["asterisk"] = version
    result["machine"] = machine()
    emit(result, args.json)


if __name__ == "__main__":
    main()
