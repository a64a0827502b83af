#!/usr/bin/env bash
# `icos server --store postgresql://...`: the controller keeps its state in a
# real PostgreSQL server (started here on a private unix socket), a submitted
# job lands in PostgreSQL rather than the data directory's SQLite file, and it
# is still there after the controller restarts.
source "$(dirname "$0")/lib.sh"
PG_BIN=${ICOS_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PG_BIN/initdb" ] || { echo "SKIP: no PostgreSQL server binaries in $PG_BIN (apt-get install postgresql)"; exit 77; }
# PostgreSQL refuses to run as root: then the server runs as the postgres user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG_DIR="$E2E_DIR/pg"
mkdir -p "$PG_DIR"
if [ "$(id -u)" -eq 0 ]; then chmod 711 "$E2E_DIR"; chown postgres "$PG_DIR"; fi
pg_stop() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true; }
# Stop the server before lib.sh's cleanup removes its directory; keep the exit status for it.
trap 'rc=$?; pg_stop; (exit $rc); cleanup' EXIT
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync > "$E2E_DIR/initdb.log" 2>&1 ||
  fail "initdb failed: $(cat "$E2E_DIR/initdb.log")"
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -o "-c listen_addresses='' -k $PG_DIR" start >/dev/null ||
  fail "PostgreSQL did not start: $(cat "$PG_DIR/postgres.log")"
as_pg "$PG_BIN/createdb" -h "$PG_DIR" -U postgres icos || fail "createdb failed"
psql_icos() { as_pg "$PG_BIN/psql" -h "$PG_DIR" -U postgres -d icos -tAc "$1"; }

SERVER_FLAGS=(--store "postgresql:///icos?host=$PG_DIR&user=postgres")
start_server
cat > "$E2E_DIR/job.yaml" <<YAML
name: pg-kept
tasks:
  - command: ["true"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
[ -n "$id" ] || fail "submit gave no job id"
[ ! -e "$ICOS_HOME/icos.db" ] || fail "the controller wrote the SQLite file although --store names PostgreSQL"
[ "$(psql_icos "SELECT name FROM jobs WHERE id = $id")" = pg-kept ] || fail "job $id is not in PostgreSQL"
kill -INT "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
start_server   # same port, same store
[ "$(job_field "$id" name)" = pg-kept ] || fail "job $id is gone after the restart: $(icos job "$id" 2>&1)"
echo "PASS postgres_store (job $id kept in PostgreSQL across a controller restart)"
