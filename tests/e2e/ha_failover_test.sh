#!/usr/bin/env bash
# High availability: two `icos server`s on one PostgreSQL database, as on two
# machines (each its own data directory). One leads; the other stands by and
# does not listen. The agent and the CLI are given both. When the leader is
# killed (SIGKILL: no goodbye), the standby takes over within seconds, the
# running job finishes under it, new work is accepted, and the old leader,
# started again, stands by. A leader that loses its lock stands by too.
source "$(dirname "$0")/lib.sh"
start_postgres

PORT_A=$(free_port)
PORT_B=$(free_port)
URL_A="http://127.0.0.1:$PORT_A"
URL_B="http://127.0.0.1:$PORT_B"
start_controller() {  # NAME PORT
  mkdir -p "$E2E_DIR/$1"
  "$ICOS_BIN" server --port "$2" --data-dir "$E2E_DIR/$1" --store "$PG_URI" >> "$E2E_DIR/server-$1.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$1=$!"
}

start_controller a "$PORT_A"
wait_until 20 grep -q "listening" "$E2E_DIR/server-a.log" || fail "controller a did not start"
start_controller b "$PORT_B"
wait_until 20 grep -q "standby: '.*' at $URL_A (epoch 1) leads" "$E2E_DIR/server-b.log" ||
  fail "controller b did not stand by behind a: $(cat "$E2E_DIR/server-b.log")"
! grep -q listening "$E2E_DIR/server-b.log" || fail "the standby serves the API"

# Tokens live in the shared store; the token files in a's data directory.
export ICOS_HOME="$E2E_DIR/a"
export ICOS_SERVER="$URL_A,$URL_B"
"$ICOS_BIN" agent --server "$ICOS_SERVER" --allow-root-tasks --token "$(cat "$E2E_DIR/a/agent.token")" --node-name n1 \
  --work-dir "$E2E_DIR/agent-n1" --devices nvidia/A100-80G:2 >> "$E2E_DIR/agent-n1.log" 2>&1 &
PIDS+=($!)
wait_until 20 grep -q "joined" "$E2E_DIR/agent-n1.log" || fail "agent did not join"

cat > "$E2E_DIR/long.yaml" <<YAML
name: survives-failover
tasks:
  - command: ["bash", "-c", "sleep 12; echo done-after-failover"]
    resources: {cpu: 1, memory: 64Mi, devices: 1}
YAML
id=$(submit "$E2E_DIR/long.yaml")
[ -n "$id" ] || fail "submit gave no job id"
wait_until 20 bash -c "[ \"\$(icos job $id -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Running ]" ||
  fail "job $id did not start: $(icos job "$id" 2>&1)"

killed=$(date +%s.%N)
kill -KILL "$PID_a"
wait_until 30 grep -q "listening" "$E2E_DIR/server-b.log" || fail "controller b did not take over: $(cat "$E2E_DIR/server-b.log")"
took=$(/usr/bin/python3 -c "import time; print(f'{time.time() - $killed:.1f}')")
grep -q "leading, epoch 2" "$E2E_DIR/server-b.log" || fail "b does not say it leads at epoch 2: $(cat "$E2E_DIR/server-b.log")"

# The running job was kept: it ends under the new leader, with its output.
wait_until 60 bash -c "[ \"\$(icos job $id -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Succeeded ]" ||
  fail "job $id did not succeed after the failover: $(icos job "$id" 2>&1)"
icos logs "$id" | grep -q done-after-failover || fail "job $id's output is lost: $(icos logs "$id" 2>&1)"
# New work goes to the new leader (the CLI skips the dead controller).
cat > "$E2E_DIR/after.yaml" <<YAML
name: after-failover
tasks:
  - command: ["true"]
    resources: {cpu: 1, memory: 64Mi, devices: 1}
YAML
id2=$(submit "$E2E_DIR/after.yaml")
wait_until 30 bash -c "[ \"\$(icos job $id2 -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Succeeded ]" ||
  fail "job $id2, submitted after the failover, did not succeed: $(icos job "$id2" 2>&1)"
[ "$(psql_icos "SELECT epoch FROM leader")" = 2 ] || fail "the leader record is not at epoch 2"

# The old leader comes back as a standby, naming b.
start_controller a "$PORT_A"
wait_until 20 grep -q "standby: '.*' at $URL_B (epoch 2) leads" "$E2E_DIR/server-a.log" ||
  fail "restarted a did not stand by behind b: $(tail -3 "$E2E_DIR/server-a.log")"
# A leader whose lock session ends (a partition from the database, an
# operator's pg_terminate_backend) stops serving and stands by; one of the
# two takes over at epoch 3 and the cluster goes on.
[ "$(psql_icos "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND classid = x'69636f6c'::bigint::oid")" = 1 ] ||
  fail "no leadership lock session to end"
wait_until 20 grep -q "stopped serving: lost the session that holds the leadership lock" "$E2E_DIR/server-b.log" ||
  fail "b did not notice it lost the lock: $(tail -3 "$E2E_DIR/server-b.log")"
leader_epoch_is() { [ "$(psql_icos 'SELECT epoch FROM leader')" = "$1" ]; }
wait_until 20 leader_epoch_is 3 || fail "nobody took over at epoch 3"
id3=$(submit "$E2E_DIR/after.yaml")
wait_until 30 bash -c "[ \"\$(icos job $id3 -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Succeeded ]" ||
  fail "job $id3, submitted after the lock was lost, did not succeed: $(icos job "$id3" 2>&1)"
echo "PASS ha_failover (standby took over ${took} s after the leader was killed; job $id finished under it)"
