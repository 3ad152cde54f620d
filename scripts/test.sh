#!/usr/bin/env bash
# Runs the test suite with the real services it needs: Debian's chromium (browser tests) and PostgreSQL.
# Extra arguments go to pytest (e.g. `-m ''` for the slow tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
  else
    echo "chromium is missing: run 'sudo apt-get install chromium fonts-liberation' (browser tests need it)" >&2
    exit 1
  fi
fi
if [ -z "${THOUGHTTRACE_TEST_PG_URL:-}" ]; then
  THOUGHTTRACE_TEST_PG_URL=$(bash scripts/start_postgres.sh | tail -1)
  export THOUGHTTRACE_TEST_PG_URL
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python3 -m pytest "$@"
