#!/usr/bin/env bash
# Two clusters on one host: their task ids are the same (job 1 in each), and
# neither may touch the other's tasks. Each cluster has its own id, and its
# agent puts every cgroup under icos/<cluster id>/ (an outside test saw
# cluster A's job join B's cgroup and B's job killed when A's ended).
source "$(dirname "$0")/lib.sh"
start_cluster() {  # NAME: an `icos up` of its own; sets PORT_<NAME>
  local name=$1 port; port=$(free_port)
  ICOS_HOME="$E2E_DIR/$name" "$ICOS_BIN" up --port "$port" --data-dir "$E2E_DIR/$name" \
    --work-dir "$E2E_DIR/$name-agent" --cpus 2 > "$E2E_DIR/$name.log" 2>&1 &
  PIDS+=($!)
  wait_until 20 grep -q "icos is up" "$E2E_DIR/$name.log" || fail "cluster $name did not start: $(cat "$E2E_DIR/$name.log")"
  eval "PORT_$name=$port"
}
in_cluster() { local name=$1; shift; ICOS_HOME="$E2E_DIR/$name" "$ICOS_BIN" "$@"; }
start_cluster a
start_cluster b
[ "$(cat "$E2E_DIR/a-agent/cluster_id")" != "$(cat "$E2E_DIR/b-agent/cluster_id")" ] || fail "the clusters share an id"
printf 'tasks:\n  - command: ["sh", "-c", "echo %s > %s; sleep 300"]\n    resources: {cpu: 0.5, memory: 64Mi}\n' \
  A "$E2E_DIR/a.started" > "$E2E_DIR/a.yaml"
printf 'tasks:\n  - command: ["sh", "-c", "echo %s > %s; sleep 300"]\n    resources: {cpu: 0.5, memory: 64Mi}\n' \
  B "$E2E_DIR/b.started" > "$E2E_DIR/b.yaml"
[ "$(in_cluster a submit "$E2E_DIR/a.yaml")" = "job 1 submitted" ] || fail "cluster a's first job is not job 1"
[ "$(in_cluster b submit "$E2E_DIR/b.yaml")" = "job 1 submitted" ] || fail "cluster b's first job is not job 1"
wait_until 20 test -s "$E2E_DIR/a.started" || fail "a's job 1 did not start"
wait_until 20 test -s "$E2E_DIR/b.started" || fail "b's job 1 did not start"
# The same task id, in two different groups (when cgroups are in use here).
cg_a=$(grep -h "icos/" /proc/$(pgrep -f "echo A > $E2E_DIR/a.started" | head -1)/cgroup | head -1 || true)
cg_b=$(grep -h "icos/" /proc/$(pgrep -f "echo B > $E2E_DIR/b.started" | head -1)/cgroup | head -1 || true)
if [ -n "$cg_a" ]; then
  [ "$cg_a" != "$cg_b" ] || fail "both clusters' j1 share a cgroup: $cg_a"
  echo "$cg_a" | grep -q "icos/$(cat "$E2E_DIR/a-agent/cluster_id")/j1-g0-r0-a0" || fail "a's cgroup path: $cg_a"
fi
# Ending A's job 1 leaves B's job 1 running.
in_cluster a cancel 1 > /dev/null
wait_until 20 bash -c "ICOS_HOME='$E2E_DIR/a' '$ICOS_BIN' job 1 -o json | grep -q '\"end_ms\": [1-9]'" || fail "a's job 1 did not end"
sleep 2
[ "$(ICOS_HOME="$E2E_DIR/b" job_field 1 state)" = Running ] || fail "ending a's job 1 ended b's: $(in_cluster b job 1)"
pgrep -f "echo B > $E2E_DIR/b.started" > /dev/null || fail "b's task process is gone"
echo "PASS two_clusters"
