#!/usr/bin/env bash
# Runs every check Dirigent has: installs the Debian packages the tests
# need if they are missing, the package with its test dependencies into a
# virtual environment (.venv, see scripts/venv.sh), then ruff, the
# import-linter layering contracts, mypy on what is type-clean and the whole
# pytest suite, every tier (README, "Tests") and the real-PBX one included.
# The tests start their own PostgreSQL server and Asterisk on free loopback
# ports.
#
#   scripts/test.sh [PYTEST ARGS]         everything
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

# What mypy checks (pyproject.toml [tool.mypy]; strict where it says so): the
# packages and modules that are clean today.  This list only grows; the goal
# is `mypy .` (issue 16).
MYPY_CLEAN=(
  asterisk bench center channels core cti dialer dirigent routing store sim/__init__.py
  sim/ami_server.py sim/clock.py sim/fates.py sim/inprocess.py sim/pbx.py sim/phones.py
  sim/workload.py
  tests/__init__.py tests/conftest.py tests/pg.py tests/realpbx tests/replay.py
  tests/transcript.py tests/test_actions.py tests/test_adapter_transcripts.py
  tests/test_ami_action_ids.py tests/test_ami_boot_resync.py tests/test_ami_hangups.py
  tests/test_ami_user_events.py tests/test_audit.py tests/test_blend_ledger.py
  tests/test_blend_pacing.py tests/test_cli_errors.py tests/test_cli_service.py
  tests/test_clock.py tests/test_compliance.py tests/test_compliance_store.py
  tests/test_config_cli.py tests/test_config_db.py tests/test_contacts_cli.py
  tests/test_demo.py tests/test_dialer_e2e.py tests/test_dialer_store.py
  tests/test_dialer_store_writes.py tests/test_erlang.py tests/test_framing.py
  tests/test_http_contacts.py tests/test_http_errors.py tests/test_http_roles.py
  tests/test_idle_reasons.py tests/test_lists.py tests/test_lists_staging.py
  tests/test_login_api.py tests/test_login_throttle.py tests/test_logs.py
  tests/test_mirror.py tests/test_pbx_lease.py tests/test_phones.py
  tests/test_records.py tests/test_report_rows.py tests/test_routing.py
  tests/test_service.py tests/test_session_faults.py
  tests/test_sim_matches_recordings.py tests/test_ws_privacy.py
  tests/test_acd.py tests/test_agent_board.py tests/test_api.py tests/test_api_edges.py
  tests/test_assembled_blended.py tests/test_bus.py tests/test_campaign_service.py
  tests/test_dialer_runner.py tests/test_lists_cli.py tests/test_nailup_recovery.py
  tests/test_pool.py tests/test_telephony_port.py
)

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
if [ "$fast" = 1 ]; then
  exec python3 -m pytest -q -m unit --hypothesis-profile=fast "$@"
fi
ruff format --check .
lint-imports
# silent: modules they import are read for their types, their errors not reported
mypy --follow-imports=silent "${MYPY_CLEAN[@]}"
python3 -m pytest -q "$@"
