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
# pip takes 10-20 s even when nothing changed, longer than most of the fast test tier:
# skipped while this tree's pyproject.toml is the one last installed with these extras
# (the install is editable: code changes need none).  DIRIGENT_REINSTALL=1 forces it.
stamp="$venv/.dirigent-installed"
key="$PWD $(sha256sum pyproject.toml | cut -c1-64)"
want="$key .$1"
# and only while the package in the environment is this tree's (a `pip install -e`
# from another clone into the same environment would run that clone's code)
# (-P: the current folder is not on the path, or this tree would always be found)
here=$(pwd -P)
installed=$("$venv/bin/python" -P -c 'import os, dirigent; print(os.path.realpath(os.path.dirname(os.path.dirname(dirigent.__file__))))' 2>/dev/null || true)
if [ -z "${DIRIGENT_REINSTALL:-}" ] && grep -qxF "$want" "$stamp" 2>/dev/null &&
  [ "$installed" = "$here" ]; then
  echo "Dirigent$1 is installed in $venv (pyproject.toml unchanged)" >&2
else
  echo "installing Dirigent$1 into $venv ..." >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".$1"
  # other extras of the same tree and pyproject.toml stay installed
  { grep -F "$key ." "$stamp" 2>/dev/null | grep -vxF "$want"
    echo "$want"; } >"$stamp.new" || true
  mv "$stamp.new" "$stamp"
fi
PATH="$(cd "$venv" && pwd)/bin:$PATH"
export PATH VIRTUAL_ENV="$(cd "$venv" && pwd)"
