"""Shared fixtures: the asyncio reactor, a simulated PBX on real TCP, and a
real PostgreSQL server (started here unless DIRIGENT_TEST_PG_URL is given)."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from dirigent import reactor as reactor_setup
from tests import pg

LOOP = reactor_setup.install()

# No timing assertions (COMMON.md), hypothesis's 200 ms deadline per example
# included: on a loaded machine (CI, two cores shared) it fails correct code.
settings.register_profile("dirigent", deadline=None)
# The fast tier (``scripts/test.sh --fast`` passes ``--hypothesis-profile=fast``):
# fewer examples for the property tests that take hypothesis's default count, so a
# developer sees a broken property in seconds; the full run keeps the default
# (100).  A test's own ``@settings(max_examples=...)`` wins over any profile: those
# counts are the same in both runs (the long ones are in SLOW, out of the fast tier).
settings.register_profile("fast", parent=settings.get_profile("dirigent"), max_examples=20)
settings.load_profile("dirigent")

from twisted.internet import reactor  # noqa: E402
from twisted.internet.interfaces import IReactorThreads  # noqa: E402

# The tests drive the asyncio loop directly instead of reactor.run(), so the
# reactor's thread pool (deferToThread: database work) is started by hand.
_POOL = IReactorThreads(reactor).getThreadPool()
_POOL.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the pool's (non-daemon) workers, or the interpreter waits for them."""
    _POOL.stop()


# -- test tiers (README, "Tests") -------------------------------------------------------
#: from fast to slow; every test gets exactly one, so ``-m unit`` is the fast tier
TIERS = ("unit", "protocol", "integration", "realpbx", "browser")

#: fixtures that put a test on a tier (with several, the slowest tier wins)
FIXTURE_TIERS = {
    "sim": "protocol",  # the simulated PBX over real TCP
    "session_factory": "protocol",  # AMI sessions over TCP
    "database_url": "integration",  # a fresh database, SQLite file or PostgreSQL
    "postgres_url": "integration",  # a real PostgreSQL server
    "lab": "realpbx",  # a real Asterisk
    "chromium": "browser",  # Debian's Chromium, headless (tests/browser)
}

#: what a test, a fixture it uses or a test helper it calls does, read from
#: their source: real TCP or SIP over UDP makes it a protocol test; a database or a process
#: of its own (the CLI, ``dirigent serve``, the demo) an integration test
_DOES = (
    (
        "integration",
        re.compile(
            r"\bsubprocess\.|\bPopen\(|\bsys\.executable\b|\bmultiprocessing\b|"
            r"\bdb\.upgrade\(|\bmake_engine\(|\bcreate_engine\(|sqlite:///"
        ),
    ),
    (
        "protocol",
        re.compile(
            r"\bSimAmiServer\(|\.listen\(|\blistenTCP\(|\bconnectTCP\(|\bwebsockets\b|"
            r"\bstart_server\(|\bopen_connection\(|\burlopen\(|\btreq\b|\bhttp\.client\b|"
            r"\bsocket\.socket\(|\bSOCK_DGRAM\b|\bPhoneFarm\(|\bVoIPPhone\("
        ),
    ),
)
#: tests that need none of the above but take seconds of CPU each on a 2-core machine
#: (pytest --durations): the integration tier, so that the fast tier stays under a
#: minute.  Named by file and test (a class for stateful tests); a name the file no
#: longer defines stops the run (``_check_slow``), so a rename cannot move a test back.
SLOW = {
    "tests/test_dialer_runner.py::test_answer_rate_collapse_keeps_abandons_under_the_cap": (
        "two simulated hours of a campaign whose answer rate collapses"
    ),
    "tests/test_dialer_runner.py::test_predictive_keeps_agents_busier_than_progressive_within_the_cap": (
        "two simulated campaign hours, progressive and predictive"
    ),
    "tests/test_framing.py::test_encoded_messages_frame_back_identically_whatever_the_chunking": (
        "300 examples, each fed to the framer in chunks of down to one byte"
    ),
    "tests/test_framing.py::test_garbage_in_the_middle_costs_at_most_the_messages_it_touches": (
        "200 examples of whole streams with a broken message"
    ),
    "tests/test_agent_board.py::test_the_board_says_what_a_recount_of_the_agents_says": (
        "150 runs of 40 router steps, every board recounted after each"
    ),
}
_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
_TIER_OF_CODE: dict[object, str] = {}


def _slowest(tiers: Iterable[str]) -> str:
    return max(tiers, key=TIERS.index, default="unit")


def _code_tier(obj: Any, namespace: dict[str, Any], seen: set[int]) -> str:
    """The tier what ``obj`` (a function, or a class of the tests: a harness
    whose ``__init__`` starts a server) does asks for, following the calls it
    makes to other functions and classes of the tests (helpers, one module
    deep each).  Classes were not followed: a fixture that built a
    ``Server(...)`` harness (the simulated PBX over TCP, a SQLite file) put
    four seconds-long tests of tests/test_clean_stop.py in the fast tier."""
    # a pytest fixture definition wraps its function
    func = inspect.unwrap(getattr(obj, "_get_wrapped_function", lambda: obj)())
    if id(func) in seen:
        return "unit"
    seen.add(id(func))
    if func in _TIER_OF_CODE:
        return _TIER_OF_CODE[func]
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return "unit"
    found = [tier for tier, pattern in _DOES if pattern.search(source)]
    module = sys.modules.get(getattr(func, "__module__", ""))
    own = getattr(func, "__globals__", vars(module) if module else namespace)
    for name in set(_CALL.findall(source)):
        helper = own.get(name)
        if (inspect.isfunction(helper) or inspect.isclass(helper)) and helper.__module__.startswith(
            "tests"
        ):
            found.append(_code_tier(helper, own, seen))
    tier = _TIER_OF_CODE[func] = _slowest(found)
    return tier


def tier_of(item: pytest.Item) -> str:
    """The tier of one collected test: its own marker, else its folder, else
    the slowest of what its fixtures and its code (with the test helpers and
    fixtures it uses) ask for; a module may say it with ``pytestmark``."""
    marked = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
    if marked:
        return _slowest(marked)
    parts = Path(str(item.fspath)).parts
    for folder in ("realpbx", "browser"):
        if folder in parts:
            return folder
    names = getattr(item, "fixturenames", ())
    found = [FIXTURE_TIERS[name] for name in names if name in FIXTURE_TIERS]
    if any(
        item.nodeid == slow or item.nodeid.startswith((f"{slow}::", f"{slow}[")) for slow in SLOW
    ):
        found.append("integration")
    namespace = vars(item.module) if isinstance(item, pytest.Function) and item.module else {}
    obj = getattr(item, "obj", None)
    if obj is not None:
        found.append(_code_tier(obj, namespace, set()))
    info = getattr(item, "_fixtureinfo", None)
    for name in names:
        for fixture in info.name2fixturedefs.get(name, ()) if info is not None else ():
            if fixture.baseid != "" or fixture.argname in FIXTURE_TIERS:  # not pytest's own
                found.append(_code_tier(fixture.func, namespace, set()))
    return _slowest(found)


def _check_slow(items: list[pytest.Item]) -> None:
    """Stop the run when SLOW names a test its (collected) module no longer defines."""
    modules = {
        item.nodeid.split("::")[0]: item.module
        for item in items
        if isinstance(item, pytest.Function)
    }
    for slow in SLOW:
        path, name = slow.split("::", 1)
        if path in modules and not hasattr(modules[path], name.split("::")[0]):
            raise pytest.UsageError(
                f"tests/conftest.py SLOW names {slow}, which {path} does not define: "
                "rename it there too, or the test lands in the fast tier"
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _check_slow(items)
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


from asterisk.session import AmiSession, PbxSettings  # noqa: E402
from sim.ami_server import SimAmiServer  # noqa: E402
from sim.pbx import SimPbx  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
TRANSCRIPTS = FIXTURES / "asterisk"


def run(coro: Awaitable[Any], timeout: float = 30.0) -> Any:
    """Run a coroutine (or a future) on the shared loop (Twisted I/O runs on it too)."""
    return LOOP.run_until_complete(asyncio.wait_for(coro, timeout))


def settle(seconds: float) -> None:
    run(asyncio.sleep(seconds), timeout=max(30.0, seconds + 10.0))  # never cut short


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


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    """A fresh database of each kind, migrated to the newest revision: its engine."""
    from store import db

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()
