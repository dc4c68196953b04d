"""A throwaway PostgreSQL server (Debian's packages) on a free loopback port,
for the tests and the benchmarks: initdb in a temporary directory, trust
authentication, no fsync; everything is removed when the block ends.

The server is the postmaster itself as our child (not daemonised by
``pg_ctl``), set to die with the process that started it: a test run
killed with SIGKILL leaves no PostgreSQL behind."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def temporary_postgres(database: str = "dirigent_test") -> Iterator[str]:
    """Start a server, yield the URL of an empty database, stop and remove it."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed")
    _remove_abandoned()
    base = Path(tempfile.mkdtemp(prefix=PREFIX))
    data = base / "data"
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "dirigent", "-A", "trust", "--no-sync"]
    subprocess.run([*as_user, *initdb], check=True, capture_output=True)
    postgres = [str(bindir / "postgres"), "-D", str(data), "-k", str(base), "-F"]
    with (base / "log").open("ab") as log_file:
        server = subprocess.Popen(
            [*postgres, "-h", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),  # as postgres already
            user="postgres" if as_user else None,
            group="postgres" if as_user else None,
        )
    try:
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        deadline = time.monotonic() + 60
        while subprocess.run(ready).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                log = (base / "log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start: {log}")
            time.sleep(0.1)
        createdb = [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dirigent"]
        subprocess.run([*createdb, database], check=True, capture_output=True)
        yield f"postgresql://dirigent@127.0.0.1:{port}/{database}"
    finally:
        server.send_signal(signal.SIGINT)  # "fast" shutdown
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(base, ignore_errors=True)


#: looked up in the parent: the child runs as the postgres user, who may not
#: read our Python's files to import ctypes
_prctl = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In the child before exec: the kernel sends SIGINT (a fast shutdown)
    when the process that started it dies, however it died
    (PR_SET_PDEATHSIG; only from the main thread: the signal follows the
    thread that forked).  A parent already gone before the call: no server."""
    if _prctl(PR_SET_PDEATHSIG, signal.SIGINT) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


#: the data folders of our servers (a run killed with SIGKILL leaves its own behind)
PREFIX = "dirigent-pg-"


def _remove_abandoned(older_than: float = 3600.0) -> None:
    """Data folders of servers that are gone (no live postmaster), left by
    killed runs; only old ones: a folder of a run starting now has no
    postmaster yet."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime < older_than:
                continue
            pid_file = folder / "data" / "postmaster.pid"
            pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
            if pid is not None and Path(f"/proc/{pid}").exists():
                continue
        except (OSError, ValueError, IndexError):
            continue
        shutil.rmtree(folder, ignore_errors=True)
