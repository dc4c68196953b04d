"""The tiers are read from what a test does (tests/conftest.py): a harness
class that starts the simulated PBX over TCP makes its tests protocol tests,
not fast ones (four seconds-long tests of test_clean_stop.py were in the
fast tier because classes were not followed)."""

from __future__ import annotations

from typing import Any

from tests.conftest import _code_tier


class Harness:
    """Never built here: its source is what the tier is read from."""

    def __init__(self) -> None:
        from sim.ami_server import SimAmiServer

        self.server: Any = SimAmiServer(None, None)  # type: ignore[arg-type]


def make_harness() -> Harness:
    return Harness()


def plain_helper() -> int:
    return 1


def test_a_helper_building_a_server_harness_is_read_as_what_the_harness_does() -> None:
    assert _code_tier(make_harness, globals(), set()) == "protocol"
    assert _code_tier(plain_helper, globals(), set()) == "unit"
