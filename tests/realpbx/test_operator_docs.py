"""The operator docs (``asterisk/conf/README.md``) list everything the tier
installs: the tier installs the shipped files from the docs' table (see
``lab.install_as_documented``), so a file missing from the table, or a
wrong install path, fails the real-PBX scenarios; these checks need no PBX
and say which line of the docs is missing."""

from __future__ import annotations

import re

from tests.realpbx.lab import OPERATOR_DOCS, REPO, install_table


def test_every_shipped_asterisk_file_is_in_the_install_table():
    listed = {src.relative_to(REPO).as_posix() for src, _dst in install_table()}
    shipped = {
        p.relative_to(REPO).as_posix()
        for pattern in ("asterisk/conf/*.conf", "asterisk/sounds/*")
        for p in REPO.glob(pattern)
    }
    assert shipped - listed == set(), f"{OPERATOR_DOCS.name} does not say where to install these"


def test_every_dirigent_context_is_documented():
    dialplan = (REPO / "asterisk" / "conf" / "extensions_dirigent.conf").read_text()
    contexts = set(re.findall(r"^\[(dirigent-[a-z-]+)\]", dialplan, re.MULTILINE))
    docs = OPERATOR_DOCS.read_text()
    assert {"dirigent-inbound", "dirigent-abandon", "dirigent-message"} <= contexts
    assert {c for c in contexts if f"`{c}`" not in docs} == set()


def test_every_sound_the_dialplan_plays_ships_and_is_installed():
    dialplan = (REPO / "asterisk" / "conf" / "extensions_dirigent.conf").read_text()
    sounds = set(re.findall(r"^DIRIGENT_\w+_SOUND\s*=\s*(\S+)", dialplan, re.MULTILINE))
    assert sounds, "the dialplan names no sound globals"
    installed = {
        dst.removeprefix("/var/lib/asterisk/sounds/").removesuffix(".wav")
        for _src, dst in install_table()
        if dst.endswith(".wav")
    }
    assert sounds <= installed, f"played but not installed by the docs: {sounds - installed}"
