#!/usr/bin/env bash
# Installs Dirigent into a virtual environment (.venv, see scripts/venv.sh)
# and runs the demo: the server and a simulated Asterisk
# (AMI over TCP, agent phones, inbound calls) on embedded defaults (SQLite).
# Extra arguments go to `dirigent demo`, e.g. --http-port 8081 --duration 60.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh ''
exec dirigent demo "$@"
