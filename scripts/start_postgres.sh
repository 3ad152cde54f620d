#!/usr/bin/env bash
# Install (if needed) and start the distribution's PostgreSQL, and make the test role and database.
# Idempotent; prints the SQLAlchemy URL to use on its last line.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
ver=$(ls /etc/postgresql | sort -n | tail -1)
pg_ctlcluster "$ver" main status >/dev/null 2>&1 || pg_ctlcluster "$ver" main start
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
psql_as_pg() { (cd / && runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtAc "$1"); }
[ "$(psql_as_pg "SELECT 1 FROM pg_roles WHERE rolname='thoughttrace'")" = "1" ] || \
  psql_as_pg "CREATE ROLE thoughttrace LOGIN PASSWORD 'thoughttrace' CREATEDB"
[ "$(psql_as_pg "SELECT 1 FROM pg_database WHERE datname='thoughttrace_test'")" = "1" ] || \
  psql_as_pg "CREATE DATABASE thoughttrace_test OWNER thoughttrace"
echo "postgresql+psycopg://thoughttrace:thoughttrace@127.0.0.1:5432/thoughttrace_test"
