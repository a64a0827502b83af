#!/usr/bin/env bash
# The service gateway (issue #22) in front of examples/serve-pytorch (a real
# PyTorch model behind Python's http.server), on this machine:
#   1. overhead: the same open-loop GET load (RATE req/s for
#      SECONDS, 8 kept-alive connections) straight at a one-replica
#      service's replica, then through the gateway; p50/p90/p99 of each;
#   2. a replica killed with kill -9 under RATE/2 req/s through the gateway
#      into a two-replica service: how many requests failed;
#   3. a rolling update of that service (icos service update, surge 1)
#      under RATE/2 req/s: how many failed, and how long the rollout took;
#   4. a load step (RATE/2 req/s at once) on an autoscaled service of one
#      replica (target RATE/8 req/s a replica, max 3): the time from the
#      step to its second and third ready replica (the model's own start
#      time included: python imports torch and trains for a few seconds).
#
#   bench/serve.sh [RATE] [SECONDS] [PATH]   (default 1000 req/s, 10 s, /livez)
# PATH /livez answers without the model (what the gateway adds, with a
# replica that keeps up); /predict?x=1 runs the model per request (Python's
# http.server and torch then bound the rate a replica sustains).
# Needs a release build (icos, icos_http_rate) and Debian's python3-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECONDS_EACH=${2:-10}
REQ=${3:-/livez}
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
LOAD=$BIN/bench/icos_http_rate
[ -x "$ICOS" ] && [ -x "$LOAD" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
EXAMPLE=$PWD/examples/serve-pytorch

work=$(mktemp -d /tmp/icos-serve.XXXXXX)
export ICOS_HOME=$work/home
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
gw=$(free_port)
"$ICOS" up --port "$port" --gateway-port "$gw" --work-dir "$work/agent" > "$work/up.log" 2>&1 &
up=$!
cleanup() {
  "$ICOS" cancel --name bench-one >/dev/null 2>&1 || true
  "$ICOS" cancel --name bench-two >/dev/null 2>&1 || true
  "$ICOS" cancel --name bench-auto >/dev/null 2>&1 || true
  kill -INT $up 2>/dev/null || true
  wait $up 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "icos is up" "$work/up.log" && break; sleep 0.1; done
export ICOS_SERVER="http://127.0.0.1:$port"

spec() {  # spec NAME REPLICAS [SERVICE_LINE] [VERSION]
  cat <<YAML
name: $1
kind: service
service:
  replicas: $2
  readiness: {http: /healthz, period: 1s}
  ${3:-}
env: {MODEL_VERSION: "${4:-1}"}
tasks:
  - command: ["/usr/bin/python3", "serve.py"]
    workdir: $EXAMPLE
    # Half a core each: a surge replica and a third autoscaled one fit
    # beside two on a 2-core machine.
    resources: {cpu: 500m, memory: 1Gi}
YAML
}
ready_count() { "$ICOS" endpoints "$1" --ready | grep -c . || true; }
now_ms() { date +%s%3N; }
service() {  # service NAME REPLICAS [SERVICE_LINE] -> its id, once every replica is ready
  spec "$@" > "$work/$1.yaml"
  local id
  id=$("$ICOS" submit "$work/$1.yaml" | sed -n 's/^service \([0-9]*\) submitted.*/\1/p')
  for _ in $(seq 120); do
    [ "$(ready_count "$id")" = "$2" ] && { echo "$id"; return; }
    sleep 0.5
  done
  echo "service $1 did not turn ready: $("$ICOS" endpoints "$id")" >&2
  exit 1
}

one=$(service bench-one 1)
addr=$("$ICOS" endpoints "$one" --ready)
"$LOAD" "${addr%:*}" "${addr##*:}" "$REQ" 200 2 8 > /dev/null || true  # warm up
direct=$("$LOAD" "${addr%:*}" "${addr##*:}" "$REQ" "$RATE" "$SECONDS_EACH" 8 || true)
echo "direct  rate=$RATE $direct"
"$LOAD" 127.0.0.1 "$gw" "/bench-one$REQ" 200 2 8 > /dev/null || true
via=$("$LOAD" 127.0.0.1 "$gw" "/bench-one$REQ" "$RATE" "$SECONDS_EACH" 8 || true)
echo "gateway rate=$RATE $via"
pct() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
echo "gateway_added_ms $(/usr/bin/python3 -c "import sys; d, v = sys.argv[1], sys.argv[2]; f = lambda s, k: float(s.split(k + \"=\")[1].split()[0]); print(\"p50=%.3f p99=%.3f\" % (f(v, \"p50_ms\") - f(d, \"p50_ms\"), f(v, \"p99_ms\") - f(d, \"p99_ms\")))" "$direct" "$via")"
"$ICOS" cancel "$one" > /dev/null

two=$(service bench-two 2)
victim=$("$ICOS" endpoints "$two" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['endpoints'][0]['address'])")
pid=$(curl -fsS "http://$victim/predict?x=0" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])")
half=$((RATE / 2))
"$LOAD" 127.0.0.1 "$gw" "/bench-two$REQ" "$half" 15 8 > "$work/kill.out" &
load=$!
sleep 5
kill -9 "$pid"
wait $load || true
echo "kill -9 under rate=$half through the gateway: $(cat "$work/kill.out")"

spec bench-two 2 "" 2 > "$work/v2.yaml"
"$LOAD" 127.0.0.1 "$gw" "/bench-two$REQ" "$half" 40 8 > "$work/update.out" &
load=$!
sleep 3
t0=$(now_ms)
"$ICOS" service update "$two" "$work/v2.yaml" > /dev/null
until "$ICOS" service history "$two" | head -1 | grep -q complete; do sleep 0.2; done
rolled=$(($(now_ms) - t0))
wait $load || true
echo "rolling update (2 replicas, surge 1) under rate=$half through the gateway: $(cat "$work/update.out") rollout_ms=$rolled"
"$ICOS" cancel "$two" > /dev/null

auto=$(service bench-auto 1 "autoscale: {min: 1, max: 3, target_rps: $((RATE / 8)), window: 5s, scale_down_delay: 60s}")
"$LOAD" 127.0.0.1 "$gw" "/bench-auto$REQ" "$half" 40 8 > "$work/step.out" &
load=$!
t0=$(now_ms)
second=""
third=""
while [ -z "$third" ] && [ $(($(now_ms) - t0)) -lt 40000 ]; do
  n=$(ready_count "$auto")
  [ -z "$second" ] && [ "$n" -ge 2 ] && second=$(($(now_ms) - t0))
  [ -z "$third" ] && [ "$n" -ge 3 ] && third=$(($(now_ms) - t0))
  sleep 0.2
done
wait $load || true
echo "load step to rate=$half on an autoscaled service (1 replica, target $((RATE / 8)) req/s each): second replica ready after ${second:-never} ms, third after ${third:-never} ms; $(cat "$work/step.out")"
