"""Dirigent on a real Asterisk 22 (the real-PBX tier's lab): answer-to-agent
latency, re-nail time after ``core restart now``, dials per number.

The lab of ``tests/realpbx`` (the relocatable Asterisk, the project's shipped
``asterisk/conf``, pyVoIP agent phones and the scripted far end of the
``customers`` trunk) runs one ``dirigent serve`` with two nailed-up agents on
a progressive campaign whose numbers all answer as persons, and one nailed-up
agent for inbound callers on DID 4930555100.  A separate AMI connection
(the lab's ``dirigent-novarset`` user) watches the PBX:

* outbound: from the ``DirigentAMD`` UserEvent (``Status: HUMAN``) of a
  customer channel to its ``BridgeEnter`` into an agent's ConfBridge;
* inbound: from the ``DirigentInbound`` UserEvent to the caller's
  ``BridgeEnter``;
* restart: ``core restart now`` with every agent nailed up; from
  ``core waitfullybooted`` returning to every agent back in its ConfBridge;
* dials per number: INVITEs at the far end / attempt rows (must be 1).

Times are measured on the PBX's side (events as they arrive on loopback),
never from Dirigent's own view.

    python bench/real_pbx.py [--calls 12] [--inbound 6] [--json]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from tests.realpbx.callers import InboundCaller
from tests.realpbx.farm import Farm
from tests.realpbx.lab import Lab, LabUnavailable, make_lab
from tests.realpbx.server import AgentSpec, CampaignSpec, Dirigent, wait_until, write_config


class AmiWatcher:
    """Reads AMI events of the lab (own connection) with their arrival time."""

    def __init__(self, port: int, username: str = "dirigent-novarset", secret: str = "secret"):
        self.events: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = False
        self._port, self._user, self._secret = port, username, secret
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=2) as s:
                    s.settimeout(1.0)
                    s.sendall(
                        f"Action: Login\r\nUsername: {self._user}\r\nSecret: {self._secret}\r\n\r\n".encode()
                    )
                    buf = b""
                    while not self._stop:
                        try:
                            chunk = s.recv(65536)
                        except TimeoutError:
                            continue
                        if not chunk:
                            break  # the PBX restarted: log in again
                        buf += chunk
                        while b"\r\n\r\n" in buf:
                            raw, buf = buf.split(b"\r\n\r\n", 1)
                            msg: dict[str, str] = {}
                            for line in raw.decode(errors="replace").split("\r\n"):
                                key, sep, value = line.partition(": ")
                                if sep and key not in msg:
                                    msg[key] = value
                            if "Event" in msg:
                                with self._lock:
                                    self.events.append((time.monotonic(), msg))
            except OSError:
                time.sleep(0.2)

    def snapshot(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=3)


def latencies(events: list[tuple[float, dict[str, str]]], user_event: str) -> list[float]:
    """Seconds from a UserEvent (per Uniqueid) to that channel's BridgeEnter
    into an agent ConfBridge (``BridgeName: agent-...``)."""
    started: dict[str, float] = {}
    out = []
    for t, e in events:
        if e.get("Event") == "UserEvent" and e.get("UserEvent") == user_event:
            if user_event == "DirigentAMD" and "HUMAN" not in e.get("Status", ""):
                continue
            started.setdefault(e.get("Uniqueid", ""), t)
        elif e.get("Event") == "BridgeEnter" and e.get("BridgeName", "").startswith("agent-"):
            uid = e.get("Uniqueid", "")
            if uid in started:
                out.append(t - started.pop(uid))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(lab: Lab, farm: Farm, calls: int, inbound: int, folder: Path) -> dict[str, Any]:
    from tests.realpbx.server import fresh_numbers

    numbers = fresh_numbers(calls)
    farm.customers.talk = 3.0
    farm.script(dict.fromkeys(numbers, "human"))
    agents = [
        AgentSpec("carl", "1003", "nailed", ["out"]),
        AgentSpec("dora", "1005", "nailed", ["out"]),
        AgentSpec("bert", "1002", "nailed", ["nailed"]),
    ]
    config, http = write_config(
        folder, lab, agents, queues=["nailed"], campaigns=[CampaignSpec("out", wrap_up=0.5)]
    )
    server = Dirigent(folder, config, http, lab.secret)
    server.prepare({"out": numbers})
    watcher = AmiWatcher(lab.ami_port)
    server.start()
    try:
        server.wait_healthy()

        def attempts_closed() -> bool:
            rows = server.query("SELECT outcome FROM attempt")
            return len(rows) >= calls and all(r["outcome"] for r in rows)

        # inbound callers to bert, one after the other, while the campaign runs
        for i in range(inbound):
            with InboundCaller(lab, f"49151123499{i:02d}") as caller:
                caller.dial("4930555100")
                wait_until(lambda: lab.bridge_with("customers", "1002"), 20, "inbound put through")
                time.sleep(1.0)
            time.sleep(1.5)
        wait_until(attempts_closed, 40 + 6 * calls, "the campaign's attempts closed")
        rows = server.query("SELECT e164 FROM attempt")
        per_number = {n: farm.invites(n) for n in numbers}
        attempts = {n: sum(1 for r in rows if r["e164"] == n) for n in numbers}
        # restart with every agent nailed up
        wait_until(
            lambda: all(lab.confbridges().get(f"agent-{a}") == 1 for a in ("carl", "dora", "bert")),
            30,
            "agents nailed up before the restart",
        )
        lab.cli("core restart now")
        time.sleep(0.5)
        lab.wait_booted()
        back = time.monotonic()
        wait_until(
            lambda: all(lab.confbridges().get(f"agent-{a}") == 1 for a in ("carl", "dora", "bert")),
            60,
            "every agent re-nailed after core restart now",
            every=0.05,
        )
        renail = time.monotonic() - back
    finally:
        server.stop()
        watcher.close()
    events = watcher.snapshot()
    out_lat = latencies(events, "DirigentAMD")
    in_lat = latencies(events, "DirigentInbound")
    dials = [per_number[n] / attempts[n] for n in numbers if attempts[n]]
    return {
        "outbound_calls": len(out_lat),
        "outbound_answer_to_agent_p50_ms": round(1000 * statistics.median(out_lat), 1),
        "outbound_answer_to_agent_p99_ms": round(1000 * percentile(out_lat, 0.99), 1),
        "inbound_calls": len(in_lat),
        "inbound_announce_to_agent_p50_ms": round(1000 * statistics.median(in_lat), 1)
        if in_lat
        else None,
        "inbound_announce_to_agent_p99_ms": round(1000 * percentile(in_lat, 0.99), 1)
        if in_lat
        else None,
        "renail_after_restart_seconds": round(renail, 2),
        "dials_per_attempt_max": max(dials) if dials else None,
        "invites": sum(per_number.values()),
        "attempts": sum(attempts.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=12, help="outbound numbers (all persons)")
    parser.add_argument("--inbound", type=int, default=6, help="inbound calls to a nailed agent")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        lab = make_lab()
    except LabUnavailable as exc:
        raise SystemExit(str(exc)) from None
    lab.start()
    farm = Farm(lab)
    farm.phones.start()
    try:
        wait_until(farm.registered, 20, "agent phones registered")
        version = lab.cli("core show version").split(" built")[0].strip()
        with tempfile.TemporaryDirectory() as folder:
            result = run(lab, farm, args.calls, args.inbound, Path(folder))
    finally:
        farm.phones.stop()
        lab.stop()
    result["asterisk"] = version
    result["machine"] = machine()
    emit(result, args.json)


if __name__ == "__main__":
    main()
