#!/usr/bin/env bash
# Runs every check Dirigent has: installs the Debian packages the tests
# need if they are missing, the package with its test dependencies into a
# virtual environment (.venv, see scripts/venv.sh), then ruff, the
# import-linter layering contracts, mypy on the whole tree and the whole
# pytest suite, every tier (README, "Tests") and the real-PBX one included.
# The tests start their own PostgreSQL server and Asterisk on free loopback
# ports.
#
#   scripts/test.sh [PYTEST ARGS]         everything (with PYTEST ARGS: what they select)
#   scripts/test.sh --fast [PYTEST ARGS]  ruff and the unit tier only, the property tests
#                                         that take hypothesis's default count at 20
#                                         examples (profile "fast", tests/conftest.py):
#                                         under a minute on two busy cores. Serial: -n 2
#                                         (pytest-xdist) costs each worker a collection and
#                                         pays only on idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi

# Debian packages the tests need: PostgreSQL for the database tests; the
# runtime libraries of the relocatable Asterisk in ../shared/asterisk/dist and
# zstd to unpack it, for the real-PBX tier (tests/realpbx, skipped with one
# line when no Asterisk is found); Debian's Chromium and ChromeDriver for the
# browser tier (tests/browser; no browser is downloaded).  Installed with apt as root, else named.
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
for pkg in libjansson4 libsrtp2-1 libxslt1.1 libedit2 libxml2 libsqlite3-0 libuuid1 libssl3 zstd \
  chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} (apt) ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "the tests need these Debian packages: apt-get install ${need[*]}" >&2
  fi
fi

. scripts/venv.sh '[test]'
ruff check .
if [ "$fast" = 1 ]; then
  exec python3 -m pytest -q -m unit --hypothesis-profile=fast "$@"
fi
ruff format --check .
lint-imports
# the whole tree (pyproject.toml [tool.mypy]: strict on core, routing and the pure dialer)
mypy .
# With arguments (a file, -k, -m ...): one pytest run of what they select.
# Without: first every test but one, on both cores (pytest-xdist: most tests
# wait on sockets, processes and servers; the real-PBX tier, calls in real
# time, goes to one worker as a group: one Asterisk); then the assembled
# server's hour on its scaled clock alone (marker "serial"), as it measures
# against the wall clock.
if [ "$#" -gt 0 ]; then
  exec python3 -m pytest -q "$@"
fi
python3 -m pytest -q -n 2 --dist loadgroup -m "not serial" --durations=15
exec python3 -m pytest -q -m serial
