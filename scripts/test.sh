#!/usr/bin/env bash
# Runs the test suite with the real services it needs: Debian's chromium (browser tests) and PostgreSQL
# (the suite starts a throwaway cluster itself: tests/conftest.py, pg_url; THOUGHTTRACE_TEST_PG_URL names a
# server to use instead; scripts/start_postgres.sh installs PostgreSQL under root when it is missing).
# Root is needed only to apt-install chromium or PostgreSQL when they are missing.
# Extra arguments go to pytest (e.g. `-m ''` for the slow tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "chromium is missing: installing Debian's chromium (apt)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
  else
    echo "chromium is missing: run 'sudo apt-get install chromium fonts-liberation' (browser tests need it)" >&2
    exit 1
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python3 -m pytest "$@"
