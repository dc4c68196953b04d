#!/usr/bin/env bash
# Installs Dirigent and runs the demo: the server and a simulated Asterisk
# (AMI over TCP, agent phones, inbound calls) on embedded defaults (SQLite).
# Extra arguments go to `dirigent demo`, e.g. --http-port 8081 --duration 60.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e .
exec dirigent demo "$@"
