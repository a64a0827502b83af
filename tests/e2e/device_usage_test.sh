#!/usr/bin/env bash
# What the devices are doing reaches the controller: the agent's health check
# reads each device's utilisation from its plugin (here the sim inventory,
# as a vendor library would report it) and heartbeats carry it to /metrics,
# `icos devices` and the nodes API; a change shows up at the next check; a
# job learns how busy its device was.
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
# A job on one of them learns how busy its device was; when it ends, the
# summary stays with it as an event.
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 0.1, memory: 16Mi, devices: 1}
YAML
id=$(submit "$E2E_DIR/job.yaml")
sampled() { icos job "$id" | grep -Eq "^device use: devices (85|60)% busy on average"; }
wait_until 30 sampled || fail "job $id shows no device use: $(icos job "$id")"
icos cancel "$id" > /dev/null
kept() { icos job "$id" | grep -q "DeviceUse"; }
wait_until 30 kept || fail "no DeviceUse event after the job ended: $(icos job "$id")"
echo "PASS device_usage"
