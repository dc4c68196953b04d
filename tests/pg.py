"""A throwaway PostgreSQL server (Debian's packages) on a free loopback port,
for the tests and the benchmarks: initdb in a temporary directory, trust
authentication, no fsync; everything is removed when the block ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
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
    base = Path(tempfile.mkdtemp(prefix="dirigent-pg-"))
    data = base / "data"
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "dirigent", "-A", "trust", "--no-sync"]
    subprocess.run([*as_user, *initdb], check=True, capture_output=True)
    options = f"-p {port} -k {base} -h 127.0.0.1 -F"
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o", options]
    subprocess.run([*as_user, *start, "start"], check=True, capture_output=True)
    try:
        createdb = [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dirigent"]
        subprocess.run([*createdb, database], check=True, capture_output=True)
        yield f"postgresql://dirigent@127.0.0.1:{port}/{database}"
    finally:
        stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]
        subprocess.run([*as_user, *stop], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
