"""The assembled service in process: several PBXs at once, health, and the
normalisation of events the recordings do not contain."""

from __future__ import annotations

import json
import urllib.request

from prometheus_client import CollectorRegistry
from twisted.internet import reactor

from asterisk.events import Dtmf, PbxShutdown, normalize
from asterisk.framing import AmiMessage
from asterisk.session import PbxSettings
from dirigent.config import DatabaseSettings, HttpSettings, Settings
from dirigent.service import Dirigent
from sim.ami_server import SimAmiServer
from sim.pbx import SimPbx
from store import db
from tests.conftest import LOOP, run, wait_for


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_one_service_drives_several_pbxs_and_reports_each(tmp_path):
    servers = []
    for seed in (1, 2):
        server = SimAmiServer(SimPbx(reactor, seed=seed), reactor, secret=f"s{seed}")
        server.listen(0)
        servers.append(server)
    servers[1].pbx.inbound_call(queue="sales")  # a channel pbx1 has while it is up
    url = f"sqlite:///{tmp_path / 'd.db'}"
    db.upgrade(url)
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=tuple(
            PbxSettings(
                f"pbx{i}", *s.address, secret=f"s{i + 1}", backoff_initial=0.05, backoff_max=0.1
            )
            for i, s in enumerate(servers)
        ),
    )
    app = Dirigent(settings, CollectorRegistry())
    app.service.startService()
    try:
        run(wait_for(lambda: all(s.connected for s in app.sessions.values()), what="both PBXs"))
        status, body = run(
            LOOP.run_in_executor(None, _get, f"http://127.0.0.1:{app.http_port}/healthz")
        )
        assert status == 200 and set(body["pbx"]) == {"pbx0", "pbx1"}
        run(wait_for(lambda: app.pbx_status()["pbx1"]["channels"] == 1, what="its channel"))
        servers[1].drop_connections()
        servers[1].stop()
        run(wait_for(lambda: not app.sessions["pbx1"].connected, what="pbx1 down"))
        status, body = run(
            LOOP.run_in_executor(None, _get, f"http://127.0.0.1:{app.http_port}/healthz")
        )
        assert (
            status == 503
            and body["pbx"]["pbx0"]["connected"]
            and not body["pbx"]["pbx1"]["connected"]
        )
        # a PBX that is down has no channel count we know (it said its last one)
        assert body["pbx"]["pbx1"]["channels"] is None and body["pbx"]["pbx0"]["channels"] == 0
        assert app.registry.get_sample_value("dirigent_pbx_up", {"pbx": "pbx0"}) == 1
        assert app.registry.get_sample_value("dirigent_pbx_up", {"pbx": "pbx1"}) == 0
    finally:
        run(app.service.stopService().asFuture(LOOP))
        servers[0].stop()
    assert servers[0].action_counts.get("logoff") == 1, "stopping logs off"


def test_dtmf_and_shutdown_events_are_normalised():
    begin = AmiMessage(
        (("Event", "DTMFBegin"), ("Uniqueid", "u1"), ("Digit", "5"), ("Direction", "Received"))
    )
    end = AmiMessage(
        (
            ("Event", "DTMFEnd"),
            ("Uniqueid", "u1"),
            ("Digit", "5"),
            ("Direction", "Received"),
            ("DurationMs", "120"),
        )
    )
    assert normalize("p", begin) == Dtmf("p", "u1", "5", "Received", end=False)
    assert normalize("p", end) == Dtmf("p", "u1", "5", "Received", end=True)
    restart = AmiMessage((("Event", "Shutdown"), ("Shutdown", "Cleanly"), ("Restart", "True")))
    assert normalize("p", restart) == PbxShutdown("p", restart=True)
    assert normalize("p", AmiMessage((("Event", "RTCPSent"), ("Channel", "x")))) is None
