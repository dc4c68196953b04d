"""Commands that only touch the database need only the database from the
configuration (issue 15, item 9): a campaign manager imports a list with
the server's own file, without the PBX's secret in their environment, while
the server itself still refuses to start without it and names the key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dirigent.config import ConfigError, env_secret_name, load_database_settings, load_settings

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]


@pytest.fixture
def config(tmp_path):
    """The server's file: a PBX whose secret lives in the environment only."""
    path = tmp_path / "dirigent.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "store.db"}"\n\n'
        '[[pbx]]\nname = "main"\nhost = "127.0.0.1"\nport = 5038\n\n'
        '[[campaign]]\nname = "spring"\ncountry = "DE"\ncaller_id = "+4930123456"\n'
    )
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != env_secret_name("main")}
    env.pop("DIRIGENT_DATABASE_URL", None)
    return subprocess.run([*DIRIGENT, *args], capture_output=True, text=True, timeout=120, env=env)


def test_lists_import_needs_only_the_database_but_serve_needs_the_secret(tmp_path, config):
    csv = tmp_path / "spring.csv"
    csv.write_text("phone,first_name\n+49 30 1234 5678,Ada\n+49 30 1234 5679,Ben\n")
    imported = run("lists", "import", str(csv), "--campaign", "spring", "--config", str(config))
    assert imported.returncode == 0, imported.stderr
    assert "2 rows, 2 imported" in imported.stdout
    found = run("contacts", "find", "+49 30 1234 5678", "--config", str(config))
    assert found.returncode == 0, found.stderr
    served = run("serve", "--config", str(config))
    assert served.returncode == 2
    assert "pbx[0].secret: required (in the file or in DIRIGENT_PBX_MAIN_SECRET)" in served.stderr


def test_the_database_loader_still_checks_the_whole_file(tmp_path, config):
    assert load_database_settings(config, env={}).url.endswith("store.db")
    with pytest.raises(ConfigError) as err:
        load_settings(config, env={})
    assert err.value.key == "pbx[0].secret"
    config.write_text(config.read_text() + "ring_timeout = 5\n")
    with pytest.raises(ConfigError) as err:
        load_database_settings(config, env={})
    assert err.value.key == "campaign[0].ring_timeout" and "at least 15 s" in err.value.reason
