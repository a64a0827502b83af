#!/usr/bin/env bash
# Helpers for icos end-to-end tests: a private ICOS_HOME and port per test,
# real `icos` processes, and cleanup of everything a test started.
# Usage: source this file; ICOS_BIN must point at the built icos binary.
set -euo pipefail

: "${ICOS_BIN:?set ICOS_BIN to the icos binary}"
E2E_DIR=$(mktemp -d /tmp/icos-e2e.XXXXXX)
export ICOS_HOME="$E2E_DIR/home"
mkdir -p "$ICOS_HOME"
PIDS=()
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# cleanup [RC]: RC is the test's exit status (default: the last command's).
cleanup() {
  local rc=${1:-$?}
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Tasks of killed agents keep running by design; end them with the test:
  # the whole process group of each (a task's shell and the children it
  # started, whose command lines need not name $E2E_DIR), never our own group.
  local own pgid
  own=$(ps -o pgid= $$ | tr -d ' ')
  for pid in $(pgrep -f "$E2E_DIR" 2>/dev/null); do
    pgid=$(ps -o pgid= "$pid" 2>/dev/null | tr -d ' ')
    # One may have exited since pgrep saw it: a failed kill must not fail a
    # passed test (errexit applies to the last command of an && list).
    [ -n "$pgid" ] && [ "$pgid" != "$own" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  pkill -KILL -f "$E2E_DIR" 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "--- e2e failed (rc=$rc); logs in $E2E_DIR:" >&2
    for f in "$E2E_DIR"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done
  else
    # A process killed a moment ago may still be closing a file there; a
    # passed test must not fail on its scratch directory.
    rm -rf "$E2E_DIR" 2>/dev/null || { sleep 1; rm -rf "$E2E_DIR" || true; }
  fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# share_with_test_users: for tests whose agents or tasks run as users they
# make. The checkout may sit below a directory only root may enter (mktemp -d
# is 0700: ../shared/tools/fresh-ci.sh clones there), and a job without a
# workdir runs in its spec file's directory (or where it was submitted from,
# for a spec on stdin). So: the binary is copied where anyone may run it, and
# the test's directory and the one it submits from are open to enter.
share_with_test_users() {
  chmod 0755 "$E2E_DIR"
  install -d -m 0755 "$E2E_DIR/public"
  install -m 0755 "$ICOS_BIN" "$E2E_DIR/public/icos"
  # The agent runs task shims as the icos-shim beside it.
  [ ! -x "$(dirname "$ICOS_BIN")/icos-shim" ] || install -m 0755 "$(dirname "$ICOS_BIN")/icos-shim" "$E2E_DIR/public/icos-shim"
  export ICOS_BIN="$E2E_DIR/public/icos"
  cd "$E2E_DIR/public"
}

# A free TCP port on loopback.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

icos() { "$ICOS_BIN" "$@"; }
export -f icos

# wait_until SECONDS CMD...: retries CMD until it succeeds.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# start_postgres: a private PostgreSQL server on a unix socket in $E2E_DIR
# with an empty database "icos"; sets PG_URI (for --store) and psql_icos SQL.
# Skips the test (exit 77) where the server binaries are not installed.
start_postgres() {
  PG_BIN=${ICOS_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
  [ -x "$PG_BIN/initdb" ] || { echo "SKIP: no PostgreSQL server binaries in $PG_BIN (apt-get install postgresql)"; exit 77; }
  PG_DIR="$E2E_DIR/pg"
  mkdir -p "$PG_DIR"
  # PostgreSQL refuses to run as root: then the server runs as the postgres user.
  if [ "$(id -u)" -eq 0 ]; then chmod 711 "$E2E_DIR"; chown postgres "$PG_DIR"; fi
  # Stop the server before cleanup removes its directory; hand it the test's
  # exit status (a failing "(exit $rc)" here would end the trap under set -e
  # before cleanup ran, leaving the test's processes behind).
  trap 'rc=$?; pg_stop; cleanup $rc' EXIT
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync > "$E2E_DIR/initdb.log" 2>&1 ||
    fail "initdb failed: $(cat "$E2E_DIR/initdb.log")"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -o "-c listen_addresses='' -k $PG_DIR" start >/dev/null ||
    fail "PostgreSQL did not start: $(cat "$PG_DIR/postgres.log")"
  as_pg "$PG_BIN/createdb" -h "$PG_DIR" -U postgres icos || fail "createdb failed"
  PG_URI="postgresql:///icos?host=$PG_DIR&user=postgres"
}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true; }
psql_icos() { as_pg "$PG_BIN/psql" -h "$PG_DIR" -U postgres -d icos -tAc "$1"; }

# api_scheme [flags...]: the scheme an API started with these flags speaks
# (https with --tls or --tls-cert).
api_scheme() {
  local f
  for f in "$@"; do case $f in --tls | --tls-cert | --tls-cert=*) echo https; return ;; esac; done
  echo http
}

# start_up [flags...]: controller + local agent in one process.
start_up() {
  PORT=$(free_port)
  "$ICOS_BIN" up --port "$PORT" --data-dir "$ICOS_HOME" --work-dir "$E2E_DIR/agent-local" "$@" > "$E2E_DIR/up.log" 2>&1 &
  PIDS+=($!)
  UP_PID=$!
  wait_until 20 grep -q "icos is up" "$E2E_DIR/up.log" || fail "icos up did not start: $(cat "$E2E_DIR/up.log")"
  export ICOS_SERVER="$(api_scheme "$@")://127.0.0.1:$PORT"
}

# start_server: controller only (so agents can be separate processes). A
# second call restarts it on the same port and data directory.
SERVER_STARTS=0
SERVER_FLAGS=()  # extra flags for every start_server, e.g. (--store postgresql://...)
start_server() {
  PORT=${PORT:-$(free_port)}
  SERVER_STARTS=$((SERVER_STARTS + 1))
  "$ICOS_BIN" server --port "$PORT" --data-dir "$ICOS_HOME" ${SERVER_FLAGS[@]+"${SERVER_FLAGS[@]}"} >> "$E2E_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=($SERVER_PID)
  wait_until 20 bash -c "[ \$(grep -c listening '$E2E_DIR/server.log') -ge $SERVER_STARTS ]" || fail "icos server did not start"
  export ICOS_SERVER="$(api_scheme ${SERVER_FLAGS[@]+"${SERVER_FLAGS[@]}"})://127.0.0.1:$PORT"
}

# start_agent NAME [flags...]  (an https:// ICOS_SERVER needs --ca-cert FILE among the flags)
start_agent() {
  local name=$1; shift
  "$ICOS_BIN" agent --server "$ICOS_SERVER" --allow-root-tasks --token "$(cat "$ICOS_HOME/agent.token")" --node-name "$name" \
    --work-dir "$E2E_DIR/agent-$name" "$@" >> "$E2E_DIR/agent-$name.log" 2>&1 &
  PIDS+=($!)
  LAST_AGENT_PID=$!
  wait_until 20 grep -q "joined" "$E2E_DIR/agent-$name.log" || fail "agent $name did not join"
}

# job_field ID FIELD: a field of `icos job ID -o json`.
job_field() {
  icos job "$1" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}

submit() { icos submit "$1" | awk '{print $2}'; }
