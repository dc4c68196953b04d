"""Shared fixtures: the asyncio reactor, a simulated PBX on real TCP, and a
real PostgreSQL server (started here unless DIRIGENT_TEST_PG_URL is given)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from dirigent import reactor as reactor_setup
from tests import pg

LOOP = reactor_setup.install()

from twisted.internet import reactor  # noqa: E402

# The tests drive the asyncio loop directly instead of reactor.run(), so the
# reactor's thread pool (deferToThread: database work) is started by hand.
_POOL = reactor.getThreadPool()
_POOL.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the pool's (non-daemon) workers, or the interpreter waits for them."""
    _POOL.stop()


from asterisk.session import AmiSession, PbxSettings  # noqa: E402
from sim.ami_server import SimAmiServer  # noqa: E402
from sim.pbx import SimPbx  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
TRANSCRIPTS = FIXTURES / "asterisk"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run a coroutine on the shared loop (Twisted I/O runs on it too)."""
    return LOOP.run_until_complete(asyncio.wait_for(coro, timeout))


def settle(seconds: float) -> None:
    run(asyncio.sleep(seconds))


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.01)


@pytest.fixture
def sim() -> Iterator[tuple[SimPbx, SimAmiServer]]:
    pbx = SimPbx(reactor, seed=7, agents=5, agent_answer_delay=0.05)
    server = SimAmiServer(pbx, reactor, auth_fail_delay=0.1)
    server.listen(0)
    yield pbx, server
    stop_sim(pbx, server)


def stop_sim(pbx: SimPbx, server: SimAmiServer) -> None:
    """End a simulated PBX a test started: no more calls, no timers, port closed."""
    pbx.stop_inbound()
    for chan in list(pbx.channels.values()):
        for timer in chan.timers:
            if timer.active():
                timer.cancel()
    d = server.stop()
    if d is not None:
        run(d.asFuture(LOOP))


@pytest.fixture
def session_factory() -> Iterator[Callable[..., AmiSession]]:
    sessions: list[AmiSession] = []

    def make(address: tuple[str, int], secret: str = "secret", **kw: Any) -> AmiSession:
        options = {"backoff_initial": 0.05, "backoff_max": 0.2, "keepalive_interval": 5.0, **kw}
        session = AmiSession(PbxSettings("pbx1", address[0], address[1], secret=secret, **options))
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        run(session.stop())


# -- PostgreSQL -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get("DIRIGENT_TEST_PG_URL")
    if given:
        yield given
        return
    if pg.pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run must install it")
        pytest.skip("PostgreSQL is not installed")
    with pg.temporary_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    from sqlalchemy import create_engine, text

    base = request.getfixturevalue("postgres_url")
    name = f"t_{os.getpid()}_{int(time.monotonic() * 1e6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
