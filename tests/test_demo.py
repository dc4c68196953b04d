"""The demo as a new user runs it: it says what it does, keeps its data in
the folder it names, and reports the abandon rate from its own database."""

from __future__ import annotations

import subprocess
import sys

DEMO = [sys.executable, "-m", "dirigent.cli", "demo", "--http-port", "0", "--agents", "4"]


def demo(data, *extra: str) -> str:
    result = subprocess.run(
        [*DEMO, "--data", str(data), "--duration", "12", "--summary-every", "4", *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def dials(out: str) -> int:
    line = next(x for x in out.splitlines() if x.startswith("demo: from the database:"))
    return int(line.split("database: ")[1].split(" dials")[0])


def test_the_demo_says_what_it_does_and_keeps_its_data(tmp_path):
    data = tmp_path / "demo-data"
    first = demo(data)
    assert f"demo: data in {data}" in first
    assert "demo: agent1001 logged in" in first
    summaries = [x for x in first.splitlines() if x.startswith("demo ") and "agents" in x]
    assert summaries and "dials" in summaries[-1] and "with the AMD estimate" in summaries[-1]
    assert "abandon rate" in first and (data / "store.db").is_file()
    again = demo(data)
    assert dials(again) >= dials(first), "the second run goes on with the first one's data"
    fresh = demo(data, "--fresh")
    assert f"demo: emptied {data}" in fresh
    assert dials(fresh) <= dials(again)


def test_the_demo_holds_its_pbx_lease():
    """The demo prints its simulated Asterisk's AMI address and secret to
    try things with; a ``dirigent serve`` pointed there found no lease (the
    demo held none) and took the demo's agents' nailed-up legs over
    ("nailed-up leg ... taken over"), issue 15's finding 7 in the README's own
    demo.  Its PBX holds a lease, as a configured ``[[pbx]]`` does."""
    from dirigent.cli.server import demo_settings
    from dirigent.config import instance_name

    url = "postgresql://dirigent@db.example/demo"
    [pbx] = demo_settings(url, 5038, (), agents=2).pbxs
    assert pbx.owner == instance_name(url) and not pbx.takeover
