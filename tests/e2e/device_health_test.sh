#!/usr/bin/env bash
# A device turns unhealthy under a running job (the sim inventory is edited,
# as a vendor health call would report it): the task on it fails with the
# reason, is stopped on the node, and the job restarts on a healthy device.
source "$(dirname "$0")/lib.sh"
inv="$E2E_DIR/inventory.json"
cat > "$inv" <<JSON
{"devices": [{"vendor": "ascend", "model": "910B", "count": 2, "memory": "64Gi"}]}
JSON
start_up --inventory "$inv" --cpus 2
cat > "$E2E_DIR/job.yaml" <<YAML
restart: {policy: OnFailure, max_retries: 2}
tasks:
  - command: ["sh", "-c", "echo on \$ASCEND_RT_VISIBLE_DEVICES; echo \$ASCEND_RT_VISIBLE_DEVICES >> $E2E_DIR/devices; sleep 30"]
    resources: {cpu: 1, memory: 64Mi, devices: 1}
    devices: [{vendor: ascend}]
YAML
id=$(submit "$E2E_DIR/job.yaml")
wait_until 20 test -s "$E2E_DIR/devices" || fail "job did not start"
first=$(head -1 "$E2E_DIR/devices")
cat > "$inv" <<JSON
{"devices": [{"vendor": "ascend", "model": "910B", "count": 2, "memory": "64Gi",
              "unhealthy": [{"index": $first, "reason": "HBM ECC errors (test)"}]}]}
JSON
wait_until 30 bash -c "[ \$(wc -l < '$E2E_DIR/devices') -ge 2 ]" || { icos job "$id"; fail "job did not move"; }
second=$(sed -n 2p "$E2E_DIR/devices")
[ "$second" != "$first" ] || fail "job restarted on the sick device $first"
icos job "$id" | tee "$E2E_DIR/job.txt"
grep -q "became unhealthy" "$E2E_DIR/job.txt" || fail "no reason for the move"
icos devices | grep -q "Unhealthy" || fail "icos devices does not show the sick device"
# The first attempt's process was stopped on the node.
wait_until 15 bash -c "[ \$(pgrep -fx 'sleep 30' | wc -l) -le 1 ]" || fail "the task on the sick device still runs"
icos cancel "$id" > /dev/null
echo "PASS device_health (moved from device $first to $second)"
