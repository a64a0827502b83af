#!/usr/bin/env bash
# `icos server --store postgresql://...`: the controller keeps its state in a
# real PostgreSQL server (started here on a private unix socket), a submitted
# job lands in PostgreSQL rather than the data directory's SQLite file, and it
# is still there after the controller restarts.
source "$(dirname "$0")/lib.sh"
start_postgres

SERVER_FLAGS=(--store "$PG_URI")
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
