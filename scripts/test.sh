#!/usr/bin/env bash
# Runs every check Dirigent has: installs the Debian packages the tests
# need if they are missing, the package with its test dependencies into a
# virtual environment (.venv, see scripts/venv.sh), then ruff, the
# import-linter layering contracts, mypy on the pure core and the whole pytest suite, the real-PBX
# tier included.  The tests start their own PostgreSQL server and Asterisk
# on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: PostgreSQL for the database tests; the
# runtime libraries of the relocatable Asterisk in ../shared/asterisk/dist and
# zstd to unpack it, for the real-PBX tier (tests/realpbx, skipped with one
# line when no Asterisk is found).  Installed with apt as root, else named.
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
for pkg in libjansson4 libsrtp2-1 libxslt1.1 libedit2 libxml2 libsqlite3-0 libuuid1 libssl3 zstd; do
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
ruff format --check .
lint-imports
mypy routing  # strict (pyproject.toml); the rest of the tree follows (issue 16)
python3 -m pytest -q "$@"
