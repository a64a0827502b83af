#!/usr/bin/env bash
# Autoscaling of a service on the live cluster (issue #22): the PyTorch
# example with autoscale {min: 0, max: 3, target_rps: 20} behind the
# gateway. Idle, it goes to zero replicas; a request then waits at the
# gateway while one starts (a cold start) and is answered; a load step
# brings it to 3 ready replicas, with no failed request; when the load
# stops it goes back to zero. The times are printed (bench/serve.sh has
# the measured figures).
source "$(dirname "$0")/lib.sh"
GATEWAY_PORT=$(free_port)
start_up --gateway-port "$GATEWAY_PORT"
GW="http://127.0.0.1:$GATEWAY_PORT"
EXAMPLE="$(cd "$(dirname "$0")/../../examples/serve-pytorch" && pwd)"
cat >"$E2E_DIR/service.yaml" <<YAML
name: auto
kind: service
service:
  replicas: 1
  readiness: {http: /healthz, period: 1s, failure_threshold: 1}
  autoscale: {min: 0, max: 3, target_rps: 20, window: 4s, scale_down_delay: 8s, cold_start_timeout: 60s}
tasks:
  # The test's directory as an argument: the cleanup finds the replicas by it.
  - command: ["/usr/bin/python3", "serve.py", "$E2E_DIR"]
    workdir: "$EXAMPLE"
    resources: {cpu: 250m, memory: 512Mi}
YAML
line=$(icos submit "$E2E_DIR/service.yaml") || fail "service submission failed"
svc=$(echo "$line" | sed -n 's/^service \([0-9]*\) submitted: 1 replicas.*/\1/p')
[ -n "$svc" ] || fail "unexpected submission reply: $line"
ready_count() { icos endpoints "$svc" --ready | grep -c . || true; }
wanted() { icos service history "$svc" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['replicas'])"; }
now_ms() { date +%s%3N; }

# Idle from the start: to zero after the delay (whether or not its first
# replica was ready by then).
wait_until 40 sh -c "[ \"\$(\"$ICOS_BIN\" endpoints $svc | head -1 | sed -n 's/.*of \([0-9]*\) replicas ready.*/\1/p')\" = 0 ]" ||
  fail "the idle service did not scale to zero: $(icos endpoints "$svc")"
wait_until 30 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc | tail -n +3 | grep -c .) = 0 ]" ||
  fail "replicas are left at zero: $(icos endpoints "$svc")"
icos job "$svc" | grep -q "Autoscaled .*1 -> 0 replicas" || fail "the scale to zero is not told: $(icos job "$svc")"

# A request to the service at zero waits for its cold start and is answered.
t0=$(now_ms)
y=$(curl -fsS --max-time 70 "$GW/auto/predict?x=2" | /usr/bin/python3 -c "import json,sys; print(round(json.load(sys.stdin)['y'], 1))") ||
  fail "the request during the cold start failed: $(icos endpoints "$svc")"
cold_ms=$(($(now_ms) - t0))
[ "$y" = 5.0 ] || fail "after the cold start the model answered y=$y for x=2"

# A load step: 4 clients as fast as they go, far above 20 req/s a replica.
wait_until 30 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) -ge 1 ]" || fail "the woken replica is not ready"
t1=$(now_ms)
/usr/bin/python3 "$(dirname "$0")/gateway_load.py" "$GATEWAY_PORT" "/auto/predict?x=1" "$E2E_DIR/stop-load" "$E2E_DIR/load.out" &
LOAD_PID=$!
PIDS+=($LOAD_PID)
wait_until 30 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) -ge 2 ]" ||
  fail "no second replica under load: $(icos endpoints "$svc"; icos job "$svc" | grep Autoscaled)"
second_ms=$(($(now_ms) - t1))
wait_until 60 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) = 3 ]" ||
  fail "the service did not scale to 3 under load: $(icos endpoints "$svc"; icos job "$svc" | grep Autoscaled)"
third_ms=$(($(now_ms) - t1))
touch "$E2E_DIR/stop-load"
wait "$LOAD_PID" || fail "the load generator failed"
read -r served failed_requests _ <"$E2E_DIR/load.out"
[ "$failed_requests" = 0 ] || fail "$failed_requests of $((served + failed_requests)) requests failed while scaling up: $(cat "$E2E_DIR/load.out")"
[ "$(wanted)" = 3 ] || fail "the service wants $(wanted) replicas at max"

# The load stops: back to zero after the delay.
wait_until 60 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc | tail -n +3 | grep -c .) = 0 ]" ||
  fail "the service did not scale back to zero: $(icos endpoints "$svc"; icos job "$svc" | grep Autoscaled)"
icos job "$svc" | grep -q "Autoscaled .*3 -> 0 replicas\|Autoscaled .* -> 0 replicas" || fail "the scale down is not told"
icos cancel "$svc" >/dev/null || fail "cancel failed"
echo "PASS service_autoscale (to zero when idle; a request woke it: answered after ${cold_ms} ms; load step (4 clients, $served requests, 0 failed): 2nd replica ready after ${second_ms} ms, 3rd after ${third_ms} ms; back to zero)"
