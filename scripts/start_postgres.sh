#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: initdb in a fresh folder, a free loopback port, trust
# authentication on loopback only, durability off (test data). Prints the SQLAlchemy URL on its last line.
#
#   bash scripts/start_postgres.sh [DIR]       # DIR: where the cluster lives (default: a new temp folder)
#   bash scripts/start_postgres.sh --stop DIR  # stop it and remove DIR
#
# The test suite runs this itself (tests/conftest.py, fixture pg_url) when THOUGHTTRACE_TEST_PG_URL is unset,
# and stops the cluster when the session ends; the system's PostgreSQL service is never touched.
# Root is needed only to apt-install PostgreSQL when its binaries are missing. PostgreSQL refuses to run as
# root, so under root the cluster runs as the `postgres` user (or `nobody`).
set -euo pipefail

bindir() {
  local d
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return; }
  return 1
}

as_owner() {  # run a PostgreSQL binary as the cluster's owner
  if [ "$(id -u)" = "0" ]; then runuser -u "$OWNER" -- "$@"; else "$@"; fi
}

if [ "$(id -u)" = "0" ]; then
  OWNER=$(getent passwd postgres >/dev/null && echo postgres || echo nobody)
else
  OWNER=$(id -un)
fi

if [ "${1:-}" = "--stop" ]; then
  DIR="${2:?usage: start_postgres.sh --stop DIR}"
  BIN=$(bindir)
  [ -d "$DIR/data" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
  exit 0
fi

if ! BIN=$(bindir); then
  if [ "$(id -u)" = "0" ]; then
    echo "PostgreSQL is missing: installing Debian's postgresql (apt)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    BIN=$(bindir)
    OWNER=postgres
  else
    echo "PostgreSQL binaries are missing: run 'sudo apt-get install postgresql' (or set THOUGHTTRACE_TEST_PG_URL to a server's URL)" >&2
    exit 1
  fi
fi

DIR="${1:-$(mktemp -d "${TMPDIR:-/tmp}/thoughttrace-pg.XXXXXX")}"
mkdir -p "$DIR"
[ "$(id -u)" = "0" ] && chown "$OWNER" "$DIR" && chmod 700 "$DIR"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner "$BIN/initdb" -D "$DIR/data" -U thoughttrace --auth=trust -E UTF8 --no-locale -N >"$DIR/initdb.log" 2>&1 \
  || { echo "initdb failed; see $DIR/initdb.log" >&2; tail -5 "$DIR/initdb.log" >&2; exit 1; }
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null || { echo "PostgreSQL did not start; see $DIR/server.log" >&2; tail -5 "$DIR/server.log" >&2; exit 1; }
psql_() { "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U thoughttrace -d postgres -v ON_ERROR_STOP=1 -qtAc "$1" >/dev/null; }
psql_ "ALTER ROLE thoughttrace PASSWORD 'thoughttrace'"
psql_ "CREATE DATABASE thoughttrace_test"
echo "$PORT" >"$DIR/port"
echo "postgresql cluster in $DIR (stop: bash scripts/start_postgres.sh --stop $DIR)" >&2
echo "postgresql+psycopg://thoughttrace:thoughttrace@127.0.0.1:$PORT/thoughttrace_test"
