"""Fixtures of the real-PBX tier: one Asterisk and one phone farm per
session, a fresh ``dirigent serve`` per test.

Without an Asterisk (``DIRIGENT_TEST_ASTERISK`` unset and no archive in
``../shared/asterisk/dist``) every test here is skipped with one line
saying how to enable the tier."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import pytest

from tests.realpbx.farm import PHONES, Farm
from tests.realpbx.lab import Lab, LabUnavailable, make_lab, unavailable
from tests.realpbx.server import AgentSpec, CampaignSpec, Dirigent, wait_until, write_config

#: the servers a scenario started, for its failure report
_SERVERS = pytest.StashKey[list[Dirigent]]()
#: the phone farm and when the scenario began, for its failure report
_FARM = pytest.StashKey[tuple[Farm, float]]()
#: how much of a failed scenario's server log its report shows
LOG_TAIL = 45


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    why = unavailable()
    needing = [item for item in ours if "lab" in getattr(item, "fixturenames", ())]
    if why is not None and needing:
        # one line in the report, not one per scenario: the first is skipped
        # with the reason, the others deselected
        needing[0].add_marker(pytest.mark.skip(reason=f"{why} ({len(needing)} tests)"))
        rest = set(needing[1:])
        config.hook.pytest_deselected(items=list(rest))
        items[:] = [item for item in items if item not in rest]
    for item in ours:
        if item in items:
            item.add_marker(pytest.mark.realpbx)
            # one worker of a parallel run (pytest-xdist --dist loadgroup) takes
            # them all: one Asterisk and one phone farm, on its own ports
            item.add_marker(pytest.mark.xdist_group("realpbx"))
            # pyVoIP 1.6.8 imports audioop (deprecated), and its receive
            # threads raise "Bad file descriptor" once stop() closed their
            # sockets: pyVoIP's own shutdown, not a failure of the test.  Any
            # other exception of a phone's thread stays a warning of the run.
            item.add_marker(pytest.mark.filterwarnings("ignore:'audioop':DeprecationWarning"))
            item.add_marker(
                pytest.mark.filterwarnings(
                    r"ignore:(?s).*Bad file descriptor:pytest.PytestUnhandledThreadExceptionWarning"
                )
            )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed scenario's report ends with the tail of each server's log
    (HTTP access lines left out): on a CI machine the log folder is gone
    when the run ends, and a time-out says nothing of what the server did."""
    report = yield
    if report.when == "call" and report.failed:
        for server in item.stash.get(_SERVERS, []):
            lines = [ln for ln in server.log().splitlines() if "twisted.python.log" not in ln]
            report.sections.append(
                (f"{server.folder.name}/serve.log, last lines", "\n".join(lines[-LOG_TAIL:]))
            )
        if _FARM in item.stash:
            farm, began = item.stash[_FARM]
            said = farm.report(began).splitlines()
            report.sections.append(
                ("phone farm, since the scenario began", "\n".join(said[-LOG_TAIL:]))
            )
    return report


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    try:
        lab = make_lab()
    except LabUnavailable as exc:
        pytest.skip(str(exc))
    lab.start()
    if os.environ.get("DIRIGENT_TEST_SIP_LOG"):
        lab.cli("pjsip set logger on")  # every SIP message into the full log
    yield lab
    lab.stop()
    if os.environ.get("DIRIGENT_TEST_KEEP"):
        print(f"lab run folder kept: {lab.run}")
    else:
        shutil.rmtree(lab.run.parent, ignore_errors=True)


# pyVoIP's threads raise "Bad file descriptor" once stop() closes their sockets
@pytest.fixture(scope="session")
def farm(lab: Lab) -> Iterator[Farm]:
    farm = Farm(lab)
    before = set(threading.enumerate())
    farm.start()
    wait_until(farm.registered, 20, f"agent phones {PHONES} registered at the lab PBX")
    yield farm
    farm.stop()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=3)


@pytest.fixture
def pbx(lab: Lab, farm: Farm, request: pytest.FixtureRequest) -> Lab:
    """The lab PBX, up, phones registered, no call left from an earlier test."""
    request.node.stash[_FARM] = (farm, time.monotonic())
    if lab.proc is None or lab.proc.poll() is not None:
        lab.start()
    lab.wait_booted()
    wait_until(farm.registered, 20, "agent phones registered at the lab PBX")
    lab.hangup_all()
    lab.forget_lease()  # each scenario's Dirigent has its own database: another owner
    return lab


@pytest.fixture
def dirigent(
    pbx: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Dirigent]]:
    """``dirigent(agents, queues=..., campaigns=..., lists=..., secret=...)``:
    a prepared, started server (not yet waited for)."""
    started: list[Dirigent] = []
    request.node.stash[_SERVERS] = started

    def make(
        agents: Sequence[AgentSpec],
        queues: Sequence[str] = ("sales",),
        campaigns: Sequence[CampaignSpec] = (),
        lists: dict[str, Sequence[str]] | None = None,
        secret: str | None = None,
        start: bool = True,
    ) -> Dirigent:
        folder = tmp_path / f"dirigent{len(started)}"
        folder.mkdir()
        config, http = write_config(folder, pbx, agents, queues, campaigns, lists=lists)
        server = Dirigent(folder, config, http, pbx.secret if secret is None else secret)
        server.prepare(lists)
        started.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in started:
        server.stop()
    pbx.hangup_all()
