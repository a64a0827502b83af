#!/usr/bin/env bash
# A service on the live cluster (issue #22): a real PyTorch model served by
# two replicas of examples/serve-pytorch, behind the gateway. Readiness
# gates the endpoints and the gateway (no request reaches a replica before
# its probe passes), real requests reach each ready replica, a replica
# killed with kill -9 under steady load through the gateway costs the
# clients not one failed request and is replaced on its own while the other
# keeps serving, a port held by a process icos does not know is found
# before the replica starts (and the next attempt gets another), and
# cancelling the service stops both.
source "$(dirname "$0")/lib.sh"
# The first job of a fresh cluster is booked ports 29501 (rendezvous) and
# 29502 (its own: replica 0's ICOS_PORT). Something else holds 29502.
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(100):  # a connection of an earlier run may linger a moment
    try:
        s.bind(("0.0.0.0", 29502)); break
    except OSError:
        time.sleep(0.1)
s.listen(); open(sys.argv[1], "w").close(); time.sleep(600)' "$E2E_DIR/holding" &
PIDS+=($!)
wait_until 15 test -f "$E2E_DIR/holding" || fail "could not hold port 29502 for the test"
GATEWAY_PORT=$(free_port)
start_up --gateway-port "$GATEWAY_PORT"
grep -q "gateway:     http://127.0.0.1:$GATEWAY_PORT/<service>/" "$E2E_DIR/up.log" || fail "icos up does not show the gateway"
GW="http://127.0.0.1:$GATEWAY_PORT"
EXAMPLE="$(cd "$(dirname "$0")/../../examples/serve-pytorch" && pwd)"
cat >"$E2E_DIR/service.yaml" <<YAML
name: tiny
kind: service
service:
  replicas: 2
  readiness: {http: /healthz, period: 1s, failure_threshold: 2}
  liveness: {http: /livez, initial_delay: 15s, period: 1s, timeout: 1s, failure_threshold: 2}
env: {READY_FILE: "$E2E_DIR/ready"}
tasks:
  # The test's directory as an argument: the cleanup finds the replicas by it.
  - command: ["/usr/bin/python3", "serve.py", "$E2E_DIR"]
    workdir: "$EXAMPLE"
    resources: {cpu: 500m, memory: 1Gi}
YAML
line=$(icos submit "$E2E_DIR/service.yaml") || fail "service submission failed"
svc=$(echo "$line" | sed -n 's/^service \([0-9]*\) submitted: 2 replicas.*/\1/p')
[ -n "$svc" ] || fail "unexpected submission reply: $line"

endpoints_json() { icos endpoints "$svc" -o json; }
replica_field() {  # replica_field INDEX FIELD
  endpoints_json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['endpoints'][$1]['$2'])"
}
ready_count() { icos endpoints "$svc" --ready | grep -c . || true; }

# Both replicas up and answering, but /healthz says 503 until READY_FILE
# exists: none may be listed ready.
wait_until 60 sh -c "\"$ICOS_BIN\" endpoints $svc | grep -c 'answered 503' | grep -qx 2" ||
  fail "the replicas did not come up answering 503: $(icos endpoints "$svc")"
[ "$(ready_count)" = 0 ] || fail "a replica was listed ready before its probe passed: $(icos endpoints "$svc")"
code=$(curl -s -o "$E2E_DIR/gw.out" -w '%{http_code}' "$GW/tiny/predict?x=1")
[ "$code" = 503 ] && grep -q "service tiny has no ready replica" "$E2E_DIR/gw.out" ||
  fail "the gateway sent a request before any replica was ready: $code $(cat "$E2E_DIR/gw.out")"
sleep 2
[ "$(ready_count)" = 0 ] || fail "a replica turned ready while /healthz said 503: $(icos endpoints "$svc")"

touch "$E2E_DIR/ready"
wait_until 20 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 2 ]" ||
  fail "the replicas did not turn ready: $(icos endpoints "$svc")"
events0=$(icos job "$(replica_field 0 job)")
echo "$events0" | grep -q "port 29502 (ICOS_PORT) is held by another process on this node" ||
  fail "replica 0's first attempt did not find port 29502 taken: $events0"
[ "$(replica_field 0 address)" != "127.0.0.1:29502" ] || fail "replica 0 serves on the port another process holds"
for addr in $(icos endpoints "$svc" --ready); do
  y=$(curl -fsS "http://$addr/predict?x=2" | /usr/bin/python3 -c "import json,sys; print(round(json.load(sys.stdin)['y'], 1))") ||
    fail "a request to $addr failed"
  [ "$y" = 5.0 ] || fail "the model at $addr answered y=$y for x=2 (2x+1 is 5)"
done

y=$(curl -fsS "$GW/tiny/predict?x=2" | /usr/bin/python3 -c "import json,sys; print(round(json.load(sys.stdin)['y'], 1))") ||
  fail "a request through the gateway failed"
[ "$y" = 5.0 ] || fail "through the gateway the model answered y=$y for x=2"
[ "$(curl -fsS "$GW/$svc/predict?x=2" | /usr/bin/python3 -c "import json,sys; print(round(json.load(sys.stdin)['y'], 1))")" = 5.0 ] ||
  fail "the service's id does not route like its name"

# Steady load through the gateway from here until replica 0 is back: 4
# clients, each GET on a kept-alive connection; every answer must be a 200.
/usr/bin/python3 "$(dirname "$0")/gateway_load.py" "$GATEWAY_PORT" "/tiny/predict?x=1" "$E2E_DIR/stop-load" "$E2E_DIR/load.out" &
LOAD_PID=$!
PIDS+=($LOAD_PID)
sleep 2

# kill -9 replica 0: the other keeps serving, replica 0 comes back on its own.
addr0=$(replica_field 0 address)
attempt0=$(replica_field 0 attempt)
job1=$(replica_field 1 job)
pid0=$(curl -fsS "http://$addr0/predict?x=0" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])")
kill -9 "$pid0"
wait_until 20 sh -c "[ \"\$(\"$ICOS_BIN\" endpoints $svc -o json | /usr/bin/python3 -c \"import json,sys; print(json.load(sys.stdin)['endpoints'][0]['attempt'])\")\" = $((attempt0 + 1)) ]" ||
  fail "replica 0 was not restarted after kill -9: $(icos endpoints "$svc")"
[ "$(replica_field 1 ready)" = True ] || fail "replica 1 stopped being ready when replica 0 died: $(icos endpoints "$svc")"
[ "$(replica_field 1 attempt)" = 0 ] || fail "replica 1 was restarted too"
curl -fsS "http://$(replica_field 1 address)/predict?x=1" >/dev/null || fail "replica 1 stopped serving"
wait_until 60 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 2 ]" ||
  fail "replica 0 did not come back ready: $(icos endpoints "$svc")"
sleep 2  # some load on both again
touch "$E2E_DIR/stop-load"
wait "$LOAD_PID" || fail "the load generator failed"
read -r served failed_requests _ <"$E2E_DIR/load.out"
[ "$failed_requests" = 0 ] || fail "$failed_requests of $((served + failed_requests)) requests through the gateway failed around the kill -9: $(cat "$E2E_DIR/load.out")"
[ "$served" -gt 100 ] || fail "only $served requests were served under load"
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -q '^icos_gateway_requests_total{service="tiny",code="200"}' ||
  fail "the gateway's requests are not in /metrics"
pid0_new=$(curl -fsS "http://$(replica_field 0 address)/predict?x=0" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])")
[ "$pid0_new" != "$pid0" ] || fail "replica 0 still answers from the killed process"
events=$(icos job "$(replica_field 0 job)")
echo "$events" | grep -q "a service's replica restarts Always" || fail "replica 0's restart is not explained: $events"

# A hung replica (SIGSTOP: its port still accepts, nothing answers) fails
# its liveness probe and is restarted: stopped (SIGKILL after the grace
# period, as a stopped process takes no SIGTERM) and run again.
pid1=$(curl -fsS "http://$(replica_field 1 address)/predict?x=0" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])")
kill -STOP "$pid1"
wait_until 60 sh -c "[ \"\$(\"$ICOS_BIN\" endpoints $svc -o json | /usr/bin/python3 -c \"import json,sys; print(json.load(sys.stdin)['endpoints'][1]['attempt'])\")\" = 1 ]" ||
  fail "the hung replica 1 was not restarted: $(icos endpoints "$svc")"
icos job "$job1" | grep -q "its liveness probe failed" || fail "replica 1's restart does not say why: $(icos job "$job1")"
wait_until 60 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 2 ]" ||
  fail "replica 1 did not come back ready after its liveness restart: $(icos endpoints "$svc")"
kill -0 "$pid1" 2>/dev/null && fail "the hung process $pid1 was left running"

# A service mixing in a batch job's fields is refused, saying why.
printf 'kind: service\narray: 0-3\ntasks: [{command: [x]}]\n' >"$E2E_DIR/bad.yaml"
if out=$(icos submit "$E2E_DIR/bad.yaml" 2>&1); then fail "a service with an array was accepted: $out"; fi
echo "$out" | grep -q "array (line 2): is for batch jobs" || fail "unclear error for a service with an array: $out"

# Cancelling the service's id stops every replica; nothing is listed ready.
icos cancel "$svc" >"$E2E_DIR/cancel" || fail "cancelling the service failed: $(cat "$E2E_DIR/cancel")"
# One request: the controller stops the service (replicas cancelled one by
# one would be replaced).
[ "$(grep -c cancelled "$E2E_DIR/cancel")" = 1 ] || fail "cancelling the service cancelled: $(cat "$E2E_DIR/cancel")"
wait_until 30 sh -c "! curl -fsS 'http://$addr0/healthz' >/dev/null 2>&1" || fail "replica 0 still serves after cancel"
[ "$(ready_count)" = 0 ] || fail "a cancelled service lists ready replicas: $(icos endpoints "$svc")"
[ "$(job_field "$job1" state)" = Cancelled ] || fail "replica 1 is $(job_field "$job1" state) after cancel"
echo "PASS service (2 PyTorch replicas: readiness gated, a taken port found and avoided, served y=2x+1 directly and through the gateway, kill -9 under load: $served requests, 0 failed, replaced without touching the other; a hung replica restarted by its liveness probe; cancelled)"
