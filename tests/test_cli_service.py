"""The command line and the server as real processes: start, serve
/healthz and /metrics, log in the chosen format, stop cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.pg import free_port

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def poll(url: str, want: int, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = get(url)
            if status == want:
                return body
            last = (status, body)
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered {want}: {last}")


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*DIRIGENT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=15)
    return proc.returncode, out


def write_config(tmp_path: Path, ami_port: int, http_port: int, **pbx: object) -> Path:
    lines = [
        "[http]",
        f"port = {http_port}",
        "[database]",
        f'url = "sqlite:///{tmp_path / "d.db"}"',
        "[[pbx]]",
        'name = "main"',
        f"port = {ami_port}",
        "backoff_initial = 0.1",
        "backoff_max = 0.5",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in pbx.items()]
    path = tmp_path / "dirigent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def sim_pbx():
    port = free_port()
    proc = spawn(
        "sim", "pbx", "--listen", f"127.0.0.1:{port}", "--secret", "top-s3cret", "--agents", "3"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield port, proc
    stop(proc)


def test_serve_connects_serves_health_and_metrics_and_logs_off_on_sigterm(tmp_path, sim_pbx):
    ami_port, sim_proc = sim_pbx
    http = free_port()
    config = write_config(tmp_path, ami_port, http)
    proc = spawn(
        "--log-format",
        "json",
        "serve",
        "--config",
        str(config),
        env={"DIRIGENT_PBX_MAIN_SECRET": "top-s3cret"},
    )
    try:
        health = json.loads(poll(f"http://127.0.0.1:{http}/healthz", 200))
        assert health == {
            "status": "ok",
            "database": "ok",
            "pbx": {"main": {"connected": True, "channels": 0, "connects": 1}},
        }
        # logged in first; the resync follows the login's FullyBooted
        resynced = (
            'dirigent_ami_actions_total{action="CoreShowChannels",pbx="main",result="success"}'
        )
        deadline = time.monotonic() + 15
        while True:
            status, metrics = get(f"http://127.0.0.1:{http}/metrics")
            if resynced in metrics or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
        assert 'dirigent_pbx_up{pbx="main"} 1.0' in metrics
        assert 'dirigent_ami_events_total{event="FullyBooted",pbx="main"} 1.0' in metrics
        assert (
            'dirigent_ami_actions_total{action="CoreShowChannels",pbx="main",result="success"}'
            in metrics
        )
    finally:
        code, out = stop(proc)
    assert code == 0, out
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all({"time", "level", "namespace", "message"} <= r.keys() for r in records)
    assert any("logged in" in r["message"] for r in records)
    assert "top-s3cret" not in out
    _, sim_out = stop(sim_proc)
    assert "AMI client logged off" in sim_out, "SIGTERM sends Logoff to the PBX"


def test_serve_starts_without_a_reachable_pbx_and_reports_degraded(tmp_path):
    http = free_port()
    config = write_config(tmp_path, free_port(), http, secret="x")
    proc = spawn("serve", "--config", str(config))
    try:
        health = json.loads(poll(f"http://127.0.0.1:{http}/healthz", 503))
        assert health["status"] == "degraded" and health["pbx"]["main"]["connected"] is False
        _, metrics = get(f"http://127.0.0.1:{http}/metrics")
        assert 'dirigent_pbx_up{pbx="main"} 0.0' in metrics
        assert 'dirigent_ami_connect_failures_total{pbx="main",reason="unreachable"}' in metrics
    finally:
        code, out = stop(proc)
    assert code == 0, out


def test_bad_configuration_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[http]\nport = 8080\nhots = "x"\n')
    result = subprocess.run(
        [*DIRIGENT, "serve", "--config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "http.hots: unknown key" in result.stderr


def test_db_upgrade_on_both_databases(tmp_path, postgres_url):
    for url in (f"sqlite:///{tmp_path / 'x.db'}", postgres_url):
        result = subprocess.run(
            [*DIRIGENT, "db", "upgrade", "--db", url], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "database at revision 0013" in result.stdout


def test_demo_runs_on_embedded_defaults_and_ends_by_itself():
    http = free_port()
    # the duration counts from start-up; on a loaded machine start-up alone took
    # seconds, and a 6 s demo had ended before its metrics were read
    proc = spawn("demo", "--http-port", str(http), "--duration", "12", "--inbound-rate", "3600")
    try:
        health = json.loads(poll(f"http://127.0.0.1:{http}/healthz", 200))
        assert health["pbx"]["sim"]["connected"] is True

        def answered(metrics: str) -> float:
            lines = [
                line
                for line in metrics.splitlines()
                if line.startswith("dirigent_interactions_answered_total")
            ]
            return float(lines[0].split()[-1]) if lines else 0.0

        deadline = time.monotonic() + 8
        _, metrics = get(f"http://127.0.0.1:{http}/metrics")
        while answered(metrics) < 1 and time.monotonic() < deadline:
            time.sleep(0.3)
            _, metrics = get(f"http://127.0.0.1:{http}/metrics")
        assert 'dirigent_ami_events_total{event="Newchannel",pbx="sim"}' in metrics, (
            "inbound calls arrive"
        )
        assert answered(metrics) >= 1, "simulated agents take the calls"
    finally:
        code, out = proc.wait(timeout=20), proc.stdout.read()
    assert code == 0, out
    assert f"http://127.0.0.1:{http}/healthz" in out


def test_ctrl_c_waits_for_the_lines_in_progress_and_a_second_one_stops_at_once(tmp_path):
    """QA5 F10: the first Ctrl-C (SIGINT) of a dialing server stops new dials
    and waits for the lines already placed; the second stops at once, saying
    so, and the rest of the stop (Logoff) still runs."""
    http = free_port()
    data = str(tmp_path / "demo")
    proc = spawn("demo", "--http-port", str(http), "--duration", "120", "--data", data)
    lines: list[str] = []  # read as they come: the stop is seen in them
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        poll(f"http://127.0.0.1:{http}/healthz", 200)
        in_use = 'dirigent_dialer_lines_in_use{campaign="demo-outbound"}'
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _, metrics = get(f"http://127.0.0.1:{http}/metrics")
            found = [x for x in metrics.splitlines() if x.startswith(in_use)]
            if found and float(found[0].split()[-1]) > 0:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if any("no new dials; waiting for" in line for line in lines):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the first Ctrl-C waits for the lines in progress"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        out = "".join(lines)
    assert code == 0, out
    assert "Received SIGINT, shutting down" in out, out
    assert "no new dials; waiting for" in out and "to resolve, at most" in out, out
    assert "Received SIGINT while stopping: stopping at once" in out, out
    assert "still in progress after" in out and "left to the PBX" in out, out
    assert "PBX sim: logged off" in out, "the rest of the stop runs: Logoff"


def test_sighup_is_logged_and_ignored_and_sigterm_then_stops_cleanly(tmp_path, sim_pbx):
    """QA5 F12: SIGHUP killed the server at once, unlogged (no Logoff, no lease
    release, no drain of the report writer).  There is no configuration
    reload: SIGHUP says so in the log and the server goes on."""
    ami_port, sim_proc = sim_pbx
    http = free_port()
    config = write_config(tmp_path, ami_port, http)
    proc = spawn("serve", "--config", str(config), env={"DIRIGENT_PBX_MAIN_SECRET": "top-s3cret"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        poll(f"http://127.0.0.1:{http}/healthz", 200)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not any("SIGHUP" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "SIGHUP does not stop the server"
        status, body = get(f"http://127.0.0.1:{http}/healthz")
        assert status == 200, body
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        reader.join(timeout=5)
        out = "".join(lines)
    assert code == 0, out
    assert "Received SIGHUP: ignored, still running (no configuration reload" in out, out
    assert "restart the server to apply a change" in out
    assert "Received SIGTERM, shutting down" in out and "PBX main: logged off" in out, out
    _, sim_out = stop(sim_proc)
    assert "AMI client logged off" in sim_out, "SIGTERM after SIGHUP still logs off"


def test_a_second_server_on_the_same_database_is_refused_before_it_touches_it(tmp_path, sim_pbx):
    """Found trying two `dirigent serve` on one configuration: the second
    died of its HTTP port in use (a 20-line traceback), but first closed the
    running server's open agent states as "left open by the last run"; with
    another HTTP port it would have driven the same PBX under the same lease
    name.  Now it stops before anything, in one line naming the holder."""
    ami_port, _sim = sim_pbx
    http = free_port()
    config = write_config(tmp_path, ami_port, http)
    with config.open("a") as f:
        f.write('[[queue]]\nname = "sales"\n')
        f.write('[[agent]]\nid = "anna"\nendpoint = "1001"\nqueues = ["sales"]\n')
        f.write("auto_login = true\n")
    env = {"DIRIGENT_PBX_MAIN_SECRET": "top-s3cret"}
    first = spawn("serve", "--config", str(config), env=env)
    try:
        poll(f"http://127.0.0.1:{http}/healthz", 200)
        db_file = tmp_path / "d.db"

        def anna_states() -> list[tuple[str, str | None]]:
            with sqlite3.connect(db_file) as con:
                return list(
                    con.execute(
                        "SELECT state, reason FROM agent_state_log WHERE agent_code = 'anna'"
                        " ORDER BY id"
                    )
                )

        deadline = time.monotonic() + 15
        while not anna_states() and time.monotonic() < deadline:
            time.sleep(0.1)
        before = anna_states()
        assert before and before[-1][0] != "logged_out", before
        for port in (http, free_port()):  # the same configuration, and one with another port
            other = tmp_path / f"other-{port}.toml"
            other.write_text(config.read_text().replace(f"port = {http}", f"port = {port}"))
            result = subprocess.run(
                [*DIRIGENT, "serve", "--config", str(other)],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, **env},
            )
            said = result.stdout + result.stderr
            assert result.returncode == 1, said
            assert f"database {db_file} is in use by another Dirigent server" in said, said
            assert f"pid {first.pid}" in said, said
            assert "Traceback" not in said and "logged in" not in said, said
        assert anna_states() == before  # the running server's rows are untouched
        status, _ = get(f"http://127.0.0.1:{http}/healthz")
        assert status == 200
    finally:
        code, out = stop(first)
    assert code == 0, out
