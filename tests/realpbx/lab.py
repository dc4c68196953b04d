"""A real Asterisk for the tests: found, unpacked, configured, started on
free loopback ports and stopped again, all from Python.

Why our own harness and not the lab's ``run.sh``: the tier must run on any
machine with the relocatable tree (``DIRIGENT_TEST_ASTERISK``, or the
archive in ``../shared/asterisk/dist``), run in parallel with other checks
(free ports, its own folder), and install the project's files exactly as an
operator does (``asterisk/conf/*.conf`` copied unchanged, the sounds under
``<astdatadir>/sounds/dirigent/``), so the tier checks what the docs say.

What the lab adds on top of the shipped files is lab configuration, never
the product: the base configuration (phones ``1001``…, the ``customers``
trunk, DIDs), an endpoint ``alice``, extra phones and DIDs for the tests.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "asterisk"
ARCHIVE = SHARED / "dist" / "asterisk-22.10.1-debian12-amd64.tar.zst"
#: the lab's base configuration (DIRIGENT_TEST_ASTERISK_CONF: another one)
BASE_CONF = Path(os.environ.get("DIRIGENT_TEST_ASTERISK_CONF") or SHARED / "conf")
#: the project's shipped files: copied into the run folder unchanged
SHIPPED_CONF = REPO / "asterisk" / "conf"

HOW_TO_ENABLE = (
    "real-PBX tier skipped: no Asterisk found; set DIRIGENT_TEST_ASTERISK to an unpacked "
    "relocatable Asterisk 22 tree (sbin/asterisk, lib/asterisk/modules) or its .tar.zst, "
    f"or put the archive at {ARCHIVE}"
)

#: lab phones: the base has 1001-1004; the tier adds these (lab config).
#: 1007 is not registered by the session's farm (a phone that is off)
EXTRA_PHONES = ("1005", "1006", "1007", "alice")
PASSWORDS = {ext: f"pw{ext}" for ext in ("1001", "1002", "1003", "1004", *EXTRA_PHONES)}


class LabUnavailable(RuntimeError):
    """No Asterisk to test against (the tier is skipped, with HOW_TO_ENABLE)."""


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the process
    that started it dies (PR_SET_PDEATHSIG), however it died.  The setting
    survives exec and Asterisk's ``core restart`` (an exec in place).  Only
    from the main thread: the signal follows the thread that forked."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class LabError(RuntimeError):
    """The lab PBX did not start or answer as it should."""


def find_asterisk() -> Path:
    """The tree or archive to test against, or :class:`LabUnavailable`."""
    given = os.environ.get("DIRIGENT_TEST_ASTERISK")
    if given:
        path = Path(given).expanduser()
        if not path.exists():
            raise LabUnavailable(
                f"real-PBX tier skipped: DIRIGENT_TEST_ASTERISK={given}: no such file or folder "
                "(give an unpacked relocatable Asterisk 22 tree or its .tar.zst)"
            )
        return path
    if ARCHIVE.exists():
        return ARCHIVE
    raise LabUnavailable(HOW_TO_ENABLE)


def unavailable() -> str | None:
    """Why the tier cannot run here (the one skip line), or None."""
    try:
        find_asterisk()
    except LabUnavailable as exc:
        return str(exc)
    if not BASE_CONF.is_dir():
        return (
            f"real-PBX tier skipped: the lab base configuration {BASE_CONF} is missing "
            "(set DIRIGENT_TEST_ASTERISK_CONF to a folder like ../shared/asterisk/conf)"
        )
    return None


def unpack(source: Path, into: Path) -> Path:
    """The install prefix (has ``sbin/asterisk``) of a tree or an archive."""
    if source.is_dir():
        tree = source
    else:
        into.mkdir(parents=True, exist_ok=True)
        if source.name.endswith((".zst", ".zstd")):
            if not shutil.which("zstd"):
                raise LabError("the Asterisk archive is zstd-packed: apt-get install zstd")
            subprocess.run(
                ["tar", "-I", "zstd", "-xf", str(source), "-C", str(into)],
                check=True,
                capture_output=True,
            )
        else:
            with tarfile.open(source) as tar:
                tar.extractall(into, filter="data")
        candidates = [p.parent.parent for p in into.glob("*/sbin/asterisk")]
        if not candidates:
            raise LabError(f"{source}: no */sbin/asterisk inside")
        tree = candidates[0]
    if not (tree / "sbin" / "asterisk").exists():
        raise LabError(f"{tree}: no sbin/asterisk (not an Asterisk install prefix)")
    return tree


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_range_free(low: int, high: int) -> bool:
    for port in range(low, high + 1, 7):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def rtp_range() -> tuple[int, int]:
    """Asterisk's RTP ports: 12000-19999, away from the farm's (30000+)."""
    for _ in range(50):
        low = 12000 + 200 * secrets.randbelow(40)
        if _udp_range_free(low, low + 199):
            return low, low + 199
    raise LabError("no free RTP port range for Asterisk in 12000-19999")


# ---------------------------------------------------------------- sounds


def tone_wav(path: Path, segments: Iterable[tuple[float, int, int]]) -> None:
    """An 8 kHz 16-bit mono WAV of (frequency, ms, amplitude) segments; 0 Hz is silence."""
    frames = bytearray()
    for freq, ms, amp in segments:
        for i in range(int(8000 * ms / 1000)):
            v = int(amp * math.sin(2 * math.pi * freq * i / 8000)) if freq else 0
            frames += struct.pack("<h", v)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(frames))


def lab_sounds(data: Path) -> None:
    """The lab's own tones (the base dialplan's [sim] and MOH play them)."""
    lab = data / "sounds" / "lab"
    tone_wav(lab / "hello.wav", [(440, 700, 8000)])
    tone_wav(
        lab / "greeting-long.wav",
        [(330, 1200, 8000), (0, 40, 0), (392, 1200, 8000), (0, 40, 0), (440, 1800, 8000)],
    )
    tone_wav(lab / "hello-then-silence.wav", [(440, 700, 8000), (0, 4000, 0)])
    tone_wav(lab / "silence-6s.wav", [(0, 6000, 0)])
    tone_wav(data / "moh" / "tone.wav", [(523, 400, 3000), (0, 600, 0), (659, 400, 3000)] * 5)


#: the operator docs' install table: | `asterisk/...` | `/etc/asterisk/...` | ...
OPERATOR_DOCS = SHIPPED_CONF / "README.md"
_INSTALL_ROW = re.compile(r"^\|\s*`(asterisk/[^`]+)`\s*\|\s*`(/[^`]+)`\s*\|", re.MULTILINE)


def install_table() -> list[tuple[Path, str]]:
    """(file in the repository, where the operator docs say to install it).
    The tier installs exactly this, so the docs cannot drift from what works."""
    rows = [(REPO / src, dst) for src, dst in _INSTALL_ROW.findall(OPERATOR_DOCS.read_text())]
    if not rows:
        raise LabError(f"{OPERATOR_DOCS}: no 'Files to install' table rows found")
    return rows


def install_as_documented(etc: Path, data: Path) -> list[str]:
    """Install the shipped files where the operator docs say: ``/etc/asterisk/X``
    into the run folder's etc, ``/var/lib/asterisk/Y`` (astdatadir) into its
    data folder.  Returns the sounds installed (``dirigent/abandon``...)."""
    sounds = []
    for src, dst in install_table():
        if not src.exists():
            raise LabError(f"{OPERATOR_DOCS}: {src.relative_to(REPO)} is listed but does not exist")
        if dst.startswith("/etc/asterisk/"):
            target = etc / dst.removeprefix("/etc/asterisk/")
        elif dst.startswith("/var/lib/asterisk/"):
            target = data / dst.removeprefix("/var/lib/asterisk/")
        else:
            raise LabError(
                f"{OPERATOR_DOCS}: install target {dst} is not under /etc/asterisk or astdatadir"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)  # unchanged, exactly what an operator installs
        if target.suffix == ".wav":
            rel = target.relative_to(data / "sounds")
            sounds.append(str(rel.with_suffix("")))
    return sounds


# ---------------------------------------------------------------- the PBX


def _sub(text: str, pattern: str, repl: str, what: str) -> str:
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if n == 0:
        raise LabError(f"lab configuration: {what} not found to rewrite")
    return new


@dataclass
class Lab:
    """One running Asterisk in its own run folder, on its own ports."""

    tree: Path
    run: Path
    ami_port: int = field(default_factory=free_tcp_port)
    sip_port: int = field(default_factory=free_udp_port)
    http_port: int = field(default_factory=free_tcp_port)
    #: where the far end of the ``customers`` trunk listens
    trunk_port: int = field(default_factory=free_udp_port)
    rtp: tuple[int, int] = field(default_factory=rtp_range)
    secret: str = field(default_factory=lambda: "lab-" + secrets.token_hex(8))
    sounds: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def etc(self) -> Path:
        return self.run / "etc"

    @property
    def data(self) -> Path:
        return self.run / "data"

    @property
    def full_log(self) -> Path:
        return self.run / "log" / "full"

    # ------------------------------------------------------------ build

    def build(self) -> None:
        for sub in ("etc", "data", "lib", "db", "spool", "run", "log", "agi-bin"):
            (self.run / sub).mkdir(parents=True, exist_ok=True)
        if not BASE_CONF.is_dir():
            raise LabUnavailable(
                f"real-PBX tier skipped: the lab base configuration {BASE_CONF} is missing"
            )
        for src in BASE_CONF.iterdir():
            shutil.copy(src, self.etc / src.name)
        for f in self.etc.iterdir():
            f.chmod(0o644)
        prefix = self.tree / "var" / "lib" / "asterisk"
        if prefix.is_dir():
            shutil.copytree(prefix, self.data, dirs_exist_ok=True)
        self.sounds = install_as_documented(self.etc, self.data)
        self._write_asterisk_conf()
        self._rewrite()
        lab_sounds(self.data)

    def _write_asterisk_conf(self) -> None:
        r, t = self.run, self.tree
        (self.etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {r}/etc\nastmoddir => {t}/lib/asterisk/modules\n"
            f"astvarlibdir => {r}/lib\nastdbdir => {r}/db\nastkeydir => {r}/lib\n"
            f"astdatadir => {r}/data\nastagidir => {r}/agi-bin\nastspooldir => {r}/spool\n"
            f"astrundir => {r}/run\nastlogdir => {r}/log\nastsbindir => {t}/sbin\n"
            "[options]\nverbose = 3\ndebug = 0\ndocumentation_language = en_US\n"
            "hideconnect = no\n"
        )

    def _edit(self, name: str, *subs: tuple[str, str, str]) -> None:
        path = self.etc / name
        text = path.read_text()
        for pattern, repl, what in subs:
            text = _sub(text, pattern, repl, f"{name}: {what}")
        path.write_text(text)

    def _rewrite(self) -> None:
        self._edit(
            "manager.conf",
            (r"^(\s*bindaddr\s*=).*$", r"\1 127.0.0.1", "bindaddr"),
            (r"^(\s*port\s*=).*$", rf"\g<1> {self.ami_port}", "port"),
        )
        self._edit(
            "manager_dirigent.conf",
            (r"^(\s*secret\s*=\s*)\S+", rf"\g<1>{self.secret}", "the dirigent user's secret"),
        )
        self._edit(
            "http.conf",
            (r"^(\s*bindaddr\s*=).*$", r"\1 127.0.0.1", "bindaddr"),
            (r"^(\s*bindport\s*=).*$", rf"\g<1> {self.http_port}", "bindport"),
        )
        self._edit(
            "rtp.conf",
            (r"^(\s*rtpstart\s*=).*$", rf"\g<1> {self.rtp[0]}", "rtpstart"),
            (r"^(\s*rtpend\s*=).*$", rf"\g<1> {self.rtp[1]}", "rtpend"),
        )
        self._edit(
            "pjsip.conf",
            (r"^(\s*bind\s*=\s*)127\.0\.0\.1:\d+", rf"\g<1>127.0.0.1:{self.sip_port}", "bind"),
            (
                r"^(\s*contact\s*=\s*sip:127\.0\.0\.1:)\d+",
                rf"\g<1>{self.trunk_port}",
                "customers contact",
            ),
        )
        extra = ["", "; ---- added by the real-PBX test tier (lab config) ----"]
        for ext in EXTRA_PHONES:
            extra += [
                f"[{ext}](agent-endpoint)",
                f"auth = {ext}",
                f"aors = {ext}",
                f'callerid = "Agent {ext}" <{ext}>',
                f"[{ext}](agent-auth)",
                f"username = {ext}",
                f"password = {PASSWORDS[ext]}",
                f"[{ext}](agent-aor)",
            ]
        with (self.etc / "pjsip.conf").open("a") as fh:
            fh.write("\n".join(extra) + "\n")
        # DIDs for the tier's own queues (lab config, exact matches before _X.)
        self._edit(
            "extensions.conf",
            (
                r"^\[from-customers\]\n",
                "[from-customers]\n"
                "exten => 4930555100,1,Goto(dirigent-inbound,nailed,1)\n"
                "exten => 4930555102,1,Goto(dirigent-inbound,alice,1)\n",
                "[from-customers]",
            ),
        )
        # absolute /var/lib/asterisk paths (MOH folder, SOUNDS) into the run folder
        for f in self.etc.glob("*.conf"):
            if f.name == "asterisk.conf":
                continue
            text = f.read_text()
            text = text.replace("/var/lib/asterisk/moh", str(self.data / "moh"))
            text = text.replace("/var/lib/asterisk/sounds", str(self.data / "sounds"))
            text = text.replace("/var/lib/asterisk", str(self.data))
            f.write_text(text)

    # ------------------------------------------------------------ run

    def env(self) -> dict[str, str]:
        lib = str(self.tree / "lib")
        old = os.environ.get("LD_LIBRARY_PATH")
        return {**os.environ, "LD_LIBRARY_PATH": f"{lib}:{old}" if old else lib}

    def _ast(self, *args: str) -> list[str]:
        return [str(self.tree / "sbin" / "asterisk"), "-C", str(self.etc / "asterisk.conf"), *args]

    def start(self, timeout: float = 30.0) -> None:
        out = (self.run / "log" / "startup.out").open("ab")
        # -f: stay in the foreground, so the PID is ours (a `core restart`
        # re-executes in place and keeps it); -n no colour
        self.proc = subprocess.Popen(
            self._ast("-f", "-n"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            start_new_session=True,
            # a test run killed outright (SIGKILL, no fixture teardown) takes
            # its Asterisk with it instead of leaving it holding the ports
            preexec_fn=_die_with_parent
            if threading.current_thread() is threading.main_thread()
            else None,
        )
        self.wait_booted(timeout)

    def wait_booted(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabError(
                    f"asterisk exited with {self.proc.returncode}: "
                    + (self.run / "log" / "startup.out").read_text(errors="replace")[-2000:]
                )
            r = subprocess.run(
                self._ast("-rx", "core waitfullybooted"),
                capture_output=True,
                text=True,
                env=self.env(),
                timeout=15,
            )
            if r.returncode == 0 and "fully booted" in r.stdout.lower():
                return
            last = r.stdout + r.stderr
            time.sleep(0.2)
        raise LabError(f"asterisk not fully booted after {timeout} s: {last.strip()}")

    def crash(self) -> int:
        """``kill -9`` of this Asterisk (the lab started it): every call and AMI
        session ends at once, with no SIP BYE, no hang-up events and no
        ``Shutdown`` event -- what a PBX crash or power loss looks like from
        outside.  :meth:`start` brings it back on the same ports and run folder
        (the registrations survive in its astdb, as on a real PBX).  Returns
        the killed PID."""
        if self.proc is None or self.proc.poll() is not None:
            raise LabError("crash: the lab's Asterisk is not running")
        pid = self.proc.pid
        self.proc.kill()
        self.proc.wait(timeout=10)
        # its control socket is left behind; Asterisk removes a stale one at start
        return pid

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """``asterisk -rx`` in this instance."""
        r = subprocess.run(
            self._ast("-rx", command),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if r.returncode != 0:
            raise LabError(f"asterisk -rx {command!r} failed: {(r.stdout + r.stderr).strip()}")
        return r.stdout

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(Exception):
            self.cli("core stop now", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    # ------------------------------------------------------------ what the PBX says

    def log_mark(self) -> int:
        """A position in the ``full`` log: read only what came after it."""
        return self.full_log.stat().st_size if self.full_log.exists() else 0

    def log_since(self, mark: int) -> str:
        if not self.full_log.exists():
            return ""
        with self.full_log.open("rb") as fh:
            fh.seek(mark)
            return fh.read().decode(errors="replace")

    def channels(self) -> list[str]:
        """``core show channels concise``: one ``!``-separated line per channel."""
        out = self.cli("core show channels concise")
        return [line for line in out.splitlines() if "!" in line]

    def channel_names(self) -> list[str]:
        return [line.split("!", 1)[0] for line in self.channels()]

    def confbridges(self) -> dict[str, int]:
        """``confbridge list``: conference name → number of users."""
        out = self.cli("confbridge list")
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit() and not line.startswith("="):
                found[parts[0]] = int(parts[1])
        return found

    def confbridge_users(self, name: str) -> list[str]:
        out = self.cli(f"confbridge list {name}")
        return [
            line.split()[0] for line in out.splitlines() if line.startswith(("PJSIP/", "Local/"))
        ]

    def bridges(self) -> list[Bridge]:
        """Every bridge (``bridge show all``, then ``bridge show <id>``) with its channels."""
        found = []
        for line in self.cli("bridge show all").splitlines()[1:]:
            parts = line.split()
            if not parts:
                continue
            detail = self.cli(f"bridge show {parts[0]}")
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (x.partition(":") for x in detail.splitlines())
                if k.strip() in ("Name", "Technology")
            )
            channels = [
                x.split(":", 1)[1].strip() for x in detail.splitlines() if x.startswith("Channel:")
            ]
            found.append(
                Bridge(parts[0], fields.get("Name", ""), fields.get("Technology", ""), channels)
            )
        return found

    def bridge_with(self, *endpoints: str) -> Bridge | None:
        """The bridge holding a channel of each of ``endpoints`` (``PJSIP/<e>-`` or a
        trunk call ``PJSIP/customers-``), if any."""
        for bridge in self.bridges():
            if all(any(c.startswith(f"PJSIP/{e}-") for c in bridge.channels) for e in endpoints):
                return bridge
        return None

    def contacts(self) -> str:
        return self.cli("pjsip show contacts")

    def forget_lease(self) -> None:
        """Remove Dirigent's lease (``dirigent/owner`` in the AstDB): the
        Dirigent of a previous scenario is gone (stopped, with a database of
        its own), and a new one must not wait for its 60 s lease to expire.
        An operator replacing a server does the same by hand (or waits)."""
        self.cli("database deltree dirigent")

    def hangup_all(self, timeout: float = 10.0) -> None:
        """No call left over from a previous test."""
        self.cli("channel request hangup all")
        deadline = time.monotonic() + timeout
        while self.channels():
            if time.monotonic() > deadline:
                raise LabError(f"channels left after hangup all: {self.channel_names()}")
            time.sleep(0.1)


@dataclass(frozen=True)
class Bridge:
    id: str
    name: str  # a ConfBridge's conference name, else empty
    technology: str  # simple_bridge (two parties), softmix (ConfBridge)
    channels: list[str]


def make_lab(base: Path | None = None) -> Lab:
    """Find, unpack and build (not start) a lab in ``base`` (default: a temp folder)."""
    source = find_asterisk()
    base = Path(tempfile.mkdtemp(prefix="dirigent-realpbx-")) if base is None else base
    tree = unpack(source, base / "tree")
    lab = Lab(tree=tree, run=base / "run")
    lab.build()
    return lab
