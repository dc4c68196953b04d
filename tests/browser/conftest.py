"""The browser tier: Debian's Chromium, headless, driven by Selenium through
Debian's ChromeDriver (``/usr/bin/chromium``, ``/usr/bin/chromedriver``;
``scripts/test.sh`` installs both as root).  No browser is downloaded.
Without them every test here is skipped with one line saying so.

Selenium's calls block, and the server under test runs on this thread's
event loop: :func:`in_browser` runs each call on a worker thread while the
loop goes on serving the browser."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LOOP, run

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: as root, in a machine with no network but loopback: no sandbox, and none of
#: Chromium's own connections (update checks, sync, QUIC) that would be refused
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def unavailable() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        return (
            f"no {' or '.join(missing)}: apt-get install chromium chromium-driver "
            "(scripts/test.sh does, as root)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    why = unavailable()
    if why is not None and ours:  # one line in the report, not one per test
        ours[0].add_marker(pytest.mark.skip(reason=f"{why} ({len(ours)} tests)"))
        rest = set(ours[1:])
        config.hook.pytest_deselected(items=list(rest))
        items[:] = [item for item in items if item not in rest]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session, with a profile of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dirigent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def in_browser(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` (a Selenium call) on a worker thread, the loop serving meanwhile."""
    return run(LOOP.run_in_executor(None, lambda: call(*args)))


class _Pages(BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:
        page = self.pages.get(self.path.split("?")[0])
        body = (page or "not found").encode()
        self.send_response(200 if page is not None else 404)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[Callable[[str, str], str]]:
    """``pages(path, html)``: serves ``html`` at ``path`` on 127.0.0.1 and
    gives its URL.  A test page must come from the local network like the
    desktop will (served by Dirigent): Chromium blocks a public or blank
    page's connections into the local network (its local network access
    checks: ``net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS``)."""
    served: dict[str, str] = {}
    handler = type("Pages", (_Pages,), {"pages": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(path: str, html: str) -> str:
        served[path] = html
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    yield serve
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
