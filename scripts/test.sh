#!/usr/bin/env bash
# Runs every check Dirigent has: installs PostgreSQL from Debian if it is
# missing, the package with its test dependencies into a virtual environment
# (.venv, see scripts/venv.sh), then ruff, the import-linter layering
# contracts and the whole pytest suite.  The tests start their own
# PostgreSQL server on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is needed for the database tests: apt-get install postgresql" >&2
  fi
fi

. scripts/venv.sh '[test]'
ruff check .
ruff format --check .
lint-imports
python3 -m pytest -q "$@"
