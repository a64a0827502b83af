#!/usr/bin/env bash
# A gateway of its own (issue #22; docs/services.md, "A gateway of its
# own"): `icos gateway` as a separate process with a token of role gateway,
# serving HTTPS, reading routes from the API and reporting the load it
# forwards, which is all that drives the autoscaler here (the controller
# runs no gateway). What a gateway token may not do, and that the routes
# API refuses users, are checked too.
source "$(dirname "$0")/lib.sh"
start_up
EXAMPLE="$(cd "$(dirname "$0")/../../examples/serve-pytorch" && pwd)"

# Tokens: a gateway's may route and report, nothing else; a user's may not route.
gw_token=$(icos token create --role gateway --name gw-test) || fail "cannot make a gateway token"
alice=$(icos token create --role user --user alice)
out=$(ICOS_TOKEN=$gw_token icos jobs 2>&1) && fail "a gateway token listed jobs: $out"
echo "$out" | grep -q "may not read jobs" || fail "a gateway token's refusal does not say why: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $alice" "$ICOS_SERVER/api/v1/routes/x")
[ "$code" = 403 ] || fail "a user token read a route: HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $gw_token" -X POST \
  -d '{"instance":"x","services":[{"id":1,"requests":-5,"in_flight":0,"latency":[]}]}' "$ICOS_SERVER/api/v1/gateway/load")
[ "$code" = 400 ] || fail "a malformed load report was not refused with 400: HTTP $code"

# The gateway: HTTPS with a certificate of its own, its token in a file.
icos tls init --dir "$E2E_DIR/gwtls" --host 127.0.0.1,localhost >/dev/null || fail "icos tls init failed"
(umask 077 && echo "$gw_token" >"$E2E_DIR/gw.token")
GW_PORT=$(free_port)
METRICS_PORT=$(free_port)
"$ICOS_BIN" gateway --server "$ICOS_SERVER" --token-file "$E2E_DIR/gw.token" --port "$GW_PORT" --metrics "$METRICS_PORT" \
  --tls-cert "$E2E_DIR/gwtls/server.crt" --tls-key "$E2E_DIR/gwtls/server.key" >"$E2E_DIR/gateway.log" 2>&1 &
PIDS+=($!)
wait_until 20 grep -q "icos gateway is up: https://" "$E2E_DIR/gateway.log" ||
  fail "icos gateway did not start: $(cat "$E2E_DIR/gateway.log")"
GW="https://127.0.0.1:$GW_PORT"
# Its token on the command line is refused as a user's would be: a wrong role fails at once.
out=$("$ICOS_BIN" gateway --server "$ICOS_SERVER" --token "$alice" --port "$(free_port)" 2>&1) &&
  fail "a gateway started with a user token: $out"
echo "$out" | grep -q "role gateway\|--role gateway" || fail "a gateway with a user token is not told why: $out"

cat >"$E2E_DIR/service.yaml" <<YAML
name: gw-svc
kind: service
service:
  replicas: 1
  readiness: {http: /healthz, period: 1s, failure_threshold: 1}
  autoscale: {min: 1, max: 2, target_rps: 20, window: 4s, scale_down_delay: 30s}
tasks:
  - command: ["/usr/bin/python3", "serve.py", "$E2E_DIR"]
    workdir: "$EXAMPLE"
    resources: {cpu: 250m, memory: 512Mi}
YAML
line=$(icos submit "$E2E_DIR/service.yaml") || fail "service submission failed"
svc=$(echo "$line" | sed -n 's/^service \([0-9]*\) submitted: 1 replicas.*/\1/p')
[ -n "$svc" ] || fail "unexpected submission reply: $line"
wait_until 90 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) -ge 1 ]" ||
  fail "the replica did not get ready: $(icos endpoints "$svc")"

# Through the standalone gateway, over HTTPS verified against its CA; plain HTTP is not served.
y=$(curl -fsS --cacert "$E2E_DIR/gwtls/ca.crt" --max-time 20 "$GW/gw-svc/predict?x=2" |
  /usr/bin/python3 -c "import json,sys; print(round(json.load(sys.stdin)['y'], 1))") ||
  fail "the request through the gateway failed: $(tail -5 "$E2E_DIR/gateway.log")"
[ "$y" = 5.0 ] || fail "the model answered y=$y for x=2 through the gateway"
curl -fsS --max-time 5 "http://127.0.0.1:$GW_PORT/gw-svc/predict?x=2" >/dev/null 2>&1 &&
  fail "the TLS gateway answered plain HTTP"

# Load through it: its reports alone make the autoscaler add the second replica.
t0=$(date +%s%3N)
GATEWAY_CA="$E2E_DIR/gwtls/ca.crt" /usr/bin/python3 "$(dirname "$0")/gateway_load.py" "$GW_PORT" \
  "/gw-svc/predict?x=1" "$E2E_DIR/stop-load" "$E2E_DIR/load.out" &
LOAD_PID=$!
PIDS+=($LOAD_PID)
wait_until 60 sh -c "[ \$(\"$ICOS_BIN\" endpoints $svc --ready | grep -c .) -ge 2 ]" ||
  fail "no second replica under load through the standalone gateway: $(icos endpoints "$svc"; icos job "$svc" | grep Autoscaled)"
second_ms=$(($(date +%s%3N) - t0))
touch "$E2E_DIR/stop-load"
wait "$LOAD_PID" || fail "the load generator failed"
read -r served failed_requests _ <"$E2E_DIR/load.out"
[ "$failed_requests" = 0 ] || fail "$failed_requests of $((served + failed_requests)) requests failed: $(cat "$E2E_DIR/load.out")"
icos job "$svc" | grep -q "Autoscaled .*1 -> 2 replicas" || fail "the scale up is not told: $(icos job "$svc")"
# Its own Prometheus metrics, on a listener of their own.
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | grep -q 'icos_gateway_requests_total{service="gw-svc",code="200"}' ||
  fail "the gateway's /metrics lacks its requests: $(curl -sS "http://127.0.0.1:$METRICS_PORT/metrics" | head -5)"
icos cancel "$svc" >/dev/null || fail "cancel failed"
echo "PASS gateway_standalone (HTTPS gateway with a gateway token; $served requests through it, 0 failed; its load reports scaled the service to 2 after ${second_ms} ms)"
