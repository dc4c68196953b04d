# Sourced by demo.sh and test.sh: makes (once) and activates the virtual
# environment Dirigent runs in, so the two README commands work on a fresh
# Debian 12 whose python3 refuses `pip install` (PEP 668,
# externally-managed-environment).  DIRIGENT_VENV names another folder;
# DIRIGENT_PYTHON another interpreter (default: python3 on PATH).
# Usage: . scripts/venv.sh EXTRAS   (EXTRAS: "" or "[test]")
venv=${DIRIGENT_VENV:-.venv}
python=${DIRIGENT_PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "Dirigent needs Python 3.11 or newer: apt-get install python3" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Dirigent needs Python 3.11 or newer; $("$python" --version 2>&1) found" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv (Debian's venv module) ..." >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      echo "Dirigent needs Python's venv module: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
  echo "making the virtual environment $venv ..." >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
echo "installing Dirigent$1 into $venv ..." >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".$1"
PATH="$(cd "$venv" && pwd)/bin:$PATH"
export PATH VIRTUAL_ENV="$(cd "$venv" && pwd)"
