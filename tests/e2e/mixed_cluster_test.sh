#!/usr/bin/env bash
# A mixed cluster of three nodes from sim inventories: 8 NVIDIA A100 (NVLink
# pairs), 8 Ascend 910B (two HCCS islands, one NPU unhealthy) and 8 Cambricon
# MLU370 (two MLU-Link islands). `icos devices` shows every device with its
# vendor, model, memory, NUMA node, island and health; one device is drained
# and resumed with `icos node drain|resume NODE --device INDEX`.
source "$(dirname "$0")/lib.sh"
data="$REPO_ROOT/src/devices/testdata"
start_server
start_agent nv --inventory "$data/nvidia_a100_x8.json"
start_agent npu --inventory "$data/ascend_910b_x8.json"
start_agent mlu --inventory "$data/cambricon_mlu370_x8.json"
wait_until 10 bash -c "[ \$(icos nodes -o json | grep -c '\"state\": \"Ready\"') = 3 ]" || fail "three nodes not ready"
icos devices | tee "$E2E_DIR/devices.txt"
for v in nvidia ascend cambricon; do
  [ "$(grep -c " $v " "$E2E_DIR/devices.txt")" = 8 ] || fail "icos devices does not list 8 $v devices"
done
# Topology: A100 pairs (islands 0-3), NUMA 1 for the upper half; MLU islands of four.
grep -E "^nv +7 +7 +nvidia +A100-PCIE-80GB +80Gi +1 +3 +[^ ]+ +Healthy" "$E2E_DIR/devices.txt" > /dev/null || fail "A100 7 topology"
grep -E "^mlu +4 +4 +cambricon +MLU370-X8 +48Gi +1 +1 +[^ ]+ +Healthy" "$E2E_DIR/devices.txt" > /dev/null || fail "MLU 4 topology"
grep -E "^npu +3 +3 +ascend +910B +64Gi +0 +0 +[^ ]+ +Unhealthy" "$E2E_DIR/devices.txt" > /dev/null || fail "sick NPU 3 not shown"
icos devices mlu | grep -c cambricon | grep -qx 8 || fail "icos devices NODE does not filter"
# Drain one A100: an 8-GPU job cannot start until it is resumed.
icos node drain nv --device 0 | grep -q "node nv device 0 drained" || fail "device drain not acknowledged"
icos devices nv | grep -E "^nv +0 " | grep -q Drained || fail "drained device not shown"
cat > "$E2E_DIR/gpu8.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo GPUS=\$CUDA_VISIBLE_DEVICES"]
    resources: {cpu: 1, memory: 64Mi, devices: 8}
    devices: [{vendor: nvidia}]
YAML
id=$(submit "$E2E_DIR/gpu8.yaml")
sleep 2
[ "$(job_field "$id" state)" = Pending ] || fail "8-GPU job started while a GPU was drained"
icos node resume nv --device 0 > /dev/null
icos wait "$id" --timeout 30 || { icos job "$id"; fail "8-GPU job did not run after the resume"; }
icos logs "$id" | grep -qx "GPUS=0,1,2,3,4,5,6,7" || fail "8-GPU job did not get every GPU"
if out=$(icos node drain nv --device 99 2>&1); then fail "draining a device that does not exist succeeded"; fi
grep -q "has no device 99" <<< "$out" || fail "bad device index not explained: $out"
echo "PASS mixed_cluster"
