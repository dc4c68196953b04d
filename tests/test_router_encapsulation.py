"""The router's state is read and changed only through its methods.

Issue #16: code outside ``routing/`` touched the router's dictionaries 45
times, its private ``_buckets`` included, so a change of the router's
indexes broke the ACD, the campaigns and the lab.  import-linter checks
imports, not attribute reads: this test reads the source of every package
(tests and benchmarks aside: ``bench/routing.py`` builds its benchmark's
state directly) and refuses an attribute read of the router's state
through anything named ``router`` (``self.router.waiting``,
``hub.router._buckets``, ``router.agents[...]``).  The hub and the KPIs
may read ``router.queues``: the configuration the router was built with,
not its state.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("asterisk", "center", "channels", "core", "cti", "dialer", "dirigent", "sim", "store")

#: the router's state (routing/router.py ``Router.__init__``) and its listener lists
STATE = frozenset(
    {
        "agents",
        "waiting",
        "offered",
        "handling",
        "handled_interactions",
        "agent_listeners",
        "offer_listeners",
    }
)


def _holder_name(node: ast.expr) -> str | None:
    """``router`` for ``router``, ``self.router``, ``self.hub.router`` ...;
    else the name or attribute the expression ends in."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def reads_of_router_state(source: str) -> list[tuple[int, str]]:
    """(line, attribute) of every read of the router's state or private
    fields in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        holder = _holder_name(node.value)
        if holder not in ("router", "_router"):
            continue
        if node.attr in STATE or (node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append((node.lineno, node.attr))
    return found


def test_the_check_finds_what_it_is_meant_to_find() -> None:
    source = (
        "a = self.router.waiting\n"
        "b = hub.router._buckets[key]\n"
        "c = router.agents.get(x)\n"
        "router.offer_listeners.append(f)\n"
        "d = self.router.queues\n"  # the configuration: allowed
        "e = self.router.offered_to(agent)\n"  # a query: allowed
        "f = other.agents\n"  # not the router
    )
    assert reads_of_router_state(source) == [
        (1, "waiting"),
        (2, "_buckets"),
        (3, "agents"),
        (4, "offer_listeners"),
    ]


def test_no_package_reads_the_routers_state_outside_routing() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: router.{attr}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, attr in reads_of_router_state(path.read_text(encoding="utf-8"))
    ]
    assert offences == [], "read through the router's queries instead:\n" + "\n".join(offences)
