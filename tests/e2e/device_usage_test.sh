#!/usr/bin/env bash
# What the devices are doing reaches the controller: the agent's health check
# reads each device's utilisation from its plugin (here the sim inventory,
# as a vendor library would report it) and heartbeats carry it to /metrics,
# `icos devices` and the nodes API; a change shows up at the next check.
source "$(dirname "$0")/lib.sh"
inv="$E2E_DIR/inventory.json"
cat > "$inv" <<JSON
{"devices": [{"vendor": "nvidia", "model": "A100", "count": 2, "memory": "80Gi", "utilization": [85, 0]}]}
JSON
start_up --inventory "$inv" --cpus 2
metric() {  # metric INDEX: icos_device_utilization_ratio of that device ("" if absent)
  curl -sf "$ICOS_SERVER/metrics" | awk -v i="index=\"$1\"" '/^icos_device_utilization_ratio\{/ && index($0, i) {print $2}'
}
reported() { [ "$(metric 0)" = "0.85" ] && [ "$(metric 1)" = "0" ]; }
wait_until 30 reported || fail "utilisation not in /metrics: $(curl -sf "$ICOS_SERVER/metrics" | grep utilization)"
icos devices | tee "$E2E_DIR/devices.txt"
grep -Eq ' 85% +Healthy' "$E2E_DIR/devices.txt" || fail "icos devices does not show 85%"
# The GPU gets busy: the next health check (every 5 s) reports it.
cat > "$inv" <<JSON
{"devices": [{"vendor": "nvidia", "model": "A100", "count": 2, "memory": "80Gi", "utilization": [85, 60]}]}
JSON
busy() { [ "$(metric 1)" = "0.6" ]; }
wait_until 30 busy || fail "the change did not arrive: $(metric 1)"
icos nodes -o json | /usr/bin/python3 -c '
import json, sys
u = json.load(sys.stdin)["nodes"][0]["usage"]
assert [d["utilization_pct"] for d in u] == [85, 60], u' || fail "nodes API usage: $(icos nodes -o json)"
echo "PASS device_usage"
