#!/usr/bin/env bash
# Rolling updates of a service on the live cluster (issue #22): two replicas
# of examples/serve-pytorch behind the gateway under steady load from four
# clients. `icos service update` moves every replica to version 2 with not
# one failed request; a version 3 whose replicas never turn ready rolls back
# by itself to version 2, again with no failed request; `icos service
# scale` adds a replica; `icos service history` tells it all; cancelling the
# service's id stops every replica and makes none again.
source "$(dirname "$0")/lib.sh"
GATEWAY_PORT=$(free_port)
start_up --gateway-port "$GATEWAY_PORT"
EXAMPLE="$(cd "$(dirname "$0")/../../examples/serve-pytorch" && pwd)"
spec() {  # spec VERSION [READY_FILE]: the service at a model version
  cat <<YAML
name: roll
kind: service
service:
  replicas: 2
  readiness: {http: /healthz, period: 1s, failure_threshold: 1}
  update: {max_surge: 1, max_unavailable: 0, ready_timeout: 25s}
env: {MODEL_VERSION: "$1", READY_FILE: "${2:-}"}
tasks:
  # The test's directory as an argument: the cleanup finds the replicas by it.
  - command: ["/usr/bin/python3", "serve.py", "$E2E_DIR"]
    workdir: "$EXAMPLE"
    resources: {cpu: 250m, memory: 512Mi}
YAML
}
spec 1 >"$E2E_DIR/v1.yaml"
spec 2 >"$E2E_DIR/v2.yaml"
spec 3 "$E2E_DIR/never" >"$E2E_DIR/v3.yaml"  # /healthz waits for a file that never comes
line=$(icos submit "$E2E_DIR/v1.yaml") || fail "service submission failed"
svc=$(echo "$line" | sed -n 's/^service \([0-9]*\) submitted: 2 replicas.*/\1/p')
[ -n "$svc" ] || fail "unexpected submission reply: $line"

ready_count() { icos endpoints "$svc" --ready | grep -c . || true; }
history_json() { icos service history "$svc" -o json; }
# field EXPR: a Python expression over the service's state `s`
field() { history_json | /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
versions_served() {  # the versions the ready replicas answer, sorted
  for addr in $(icos endpoints "$svc" --ready); do
    curl -fsS "http://$addr/predict?x=1" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['version'])"
  done | sort | tr '\n' ' '
}
wait_until 90 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 2 ]" ||
  fail "the replicas did not turn ready: $(icos endpoints "$svc")"
wait_until 10 sh -c "\"$ICOS_BIN\" service history $svc | head -1 | grep -q complete" ||
  fail "revision 1's rollout did not complete: $(icos service history "$svc")"

# Four clients, each GETting through the gateway on a kept-alive connection,
# counting every answer that is not a 200 and the versions they saw.
run_under_load() {  # run_under_load NAME COMMAND...: COMMAND with the load on; NAME.out has the counts
  rm -f "$E2E_DIR/stop-load"
  /usr/bin/python3 "$(dirname "$0")/gateway_load.py" "$GATEWAY_PORT" "/roll/predict?x=1" "$E2E_DIR/stop-load" "$E2E_DIR/$1.out" &
  local load=$!
  PIDS+=($load)
  sleep 1
  local name=$1
  shift
  "$@"
  local rc=$?
  sleep 1
  touch "$E2E_DIR/stop-load"
  wait "$load" || fail "the load generator failed"
  read -r served failed_requests seen _ <"$E2E_DIR/$name.out"
  [ "$failed_requests" = 0 ] ||
    fail "$name: $failed_requests of $((served + failed_requests)) requests through the gateway failed: $(cat "$E2E_DIR/$name.out")"
  [ "$served" -gt 50 ] || fail "$name: only $served requests were served under load"
  return $rc
}

# The update: version 2 rolls out one replica at a time (max_surge 1) and
# every replica ends on it.
update_to_2() {
  icos service update "$svc" "$E2E_DIR/v2.yaml" >"$E2E_DIR/update.out" || fail "the update failed: $(cat "$E2E_DIR/update.out")"
  grep -q "rolling out revision 2" "$E2E_DIR/update.out" || fail "unexpected update reply: $(cat "$E2E_DIR/update.out")"
  wait_until 120 sh -c "\"$ICOS_BIN\" service history $svc | grep -q '^2 .* complete '" ||
    fail "revision 2 did not roll out: $(icos service history "$svc"; icos endpoints "$svc")"
}
run_under_load update update_to_2
read -r served_update _ seen_update _ <"$E2E_DIR/update.out"
echo "$seen_update" | grep -q '"1"' && echo "$seen_update" | grep -q '"2"' ||
  fail "the clients did not see the versions move from 1 to 2: $seen_update"
[ "$(versions_served)" = "2 2 " ] || fail "after the update the replicas serve versions $(versions_served)"
[ "$(ready_count)" = 2 ] || fail "after the update $(ready_count) replicas are ready"

# A bad version: its new replica never turns ready; after ready_timeout the
# revision fails and rolls back to version 2 by itself; the old replicas
# served all along.
bad_update() {
  icos service update "$svc" "$E2E_DIR/v3.yaml" >/dev/null || fail "the update to version 3 was refused"
  wait_until 90 sh -c "\"$ICOS_BIN\" service history $svc | grep -q 'automatic rollback to revision 2'" ||
    fail "the failed revision 3 did not roll back: $(icos service history "$svc"; icos endpoints "$svc")"
  wait_until 60 sh -c "\"$ICOS_BIN\" service history $svc -o json | grep -q '\"rollout\": \"complete\"'" ||
    fail "the rollback did not complete: $(icos service history "$svc")"
}
run_under_load rollback bad_update
read -r served_rollback _ seen_rollback _ <"$E2E_DIR/rollback.out"
echo "$seen_rollback" | grep -q '"3"' && fail "a request reached version 3, which was never ready: $seen_rollback"
history=$(icos service history "$svc")
echo "$history" | grep -q "^3 .* failed .*was not ready 25s after it was made" || fail "revision 3's failure is not told: $history"
[ "$(versions_served)" = "2 2 " ] || fail "after the rollback the replicas serve versions $(versions_served)"
[ "$(field "s['revision']")" = 4 ] || fail "the rollback is not revision 4: $history"

# Scale to 3: one more replica of the current revision, no rollout.
icos service scale "$svc" 3 >/dev/null || fail "scale failed"
wait_until 60 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 3 ]" ||
  fail "the service did not scale to 3: $(icos endpoints "$svc")"
[ "$(field "s['revision']")" = 4 ] || fail "a scale made a revision: $(icos service history "$svc")"

# Bad input: another name, or a batch job, as the new spec.
sed 's/^name: roll/name: other/' "$E2E_DIR/v2.yaml" >"$E2E_DIR/renamed.yaml"
if out=$(icos service update "$svc" "$E2E_DIR/renamed.yaml" 2>&1); then fail "a renamed spec was accepted: $out"; fi
echo "$out" | grep -q "is named roll" || fail "unclear error for a renamed spec: $out"
if out=$(icos service scale "$svc" -- -1 2>&1); then fail "a negative scale was accepted: $out"; fi

# Cancelling the service's id stops every replica, and none comes back.
icos cancel "$svc" >"$E2E_DIR/cancel" || fail "cancelling the service failed: $(cat "$E2E_DIR/cancel")"
wait_until 30 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 0 ]" ||
  fail "replicas are still ready after cancel: $(icos endpoints "$svc")"
sleep 3
open=$(icos jobs -o json | /usr/bin/python3 -c "import json,sys; print(sum(1 for j in json.load(sys.stdin)['jobs'] if j['state'] in ('Pending','Running')))")
[ "$open" = 0 ] || fail "$open replicas are open after the service was cancelled: $(icos jobs)"
echo "PASS service_rollout (update 1 -> 2 under load: $served_update requests, 0 failed, versions $seen_update; a never-ready version 3 rolled back by itself: $served_rollback requests, 0 failed; scaled to 3; cancelled for good)"
