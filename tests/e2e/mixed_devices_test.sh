#!/usr/bin/env bash
# A node with 8 (simulated) Ascend 910B from a sim inventory, one of them
# unhealthy, and 4 quick-sim NVIDIA devices. An Ascend job asking for 4 NPUs
# on one HCCS island gets the healthy island, through ASCEND_RT_VISIBLE_DEVICES
# with Ascend's own numbering; an NVIDIA job gets CUDA_VISIBLE_DEVICES 0,1.
source "$(dirname "$0")/lib.sh"
start_up --inventory "$REPO_ROOT/src/devices/testdata/ascend_910b_x8.json" --devices nvidia/A100:4 --cpus 4
icos nodes | tee "$E2E_DIR/nodes.txt"
grep -q "8xascend/910B" "$E2E_DIR/nodes.txt" || fail "ascend devices missing"
grep -q "4xnvidia/A100" "$E2E_DIR/nodes.txt" || fail "nvidia devices missing"
cat > "$E2E_DIR/npu.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo NPUS=\$ASCEND_RT_VISIBLE_DEVICES"]
    resources: {cpu: 1, memory: 64Mi, devices: 4}
    devices: [{vendor: ascend, model: 910B}]
    affinity: same-island
YAML
cat > "$E2E_DIR/gpu.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo GPUS=\$CUDA_VISIBLE_DEVICES"]
    resources: {cpu: 1, memory: 64Mi, devices: 2}
    devices: [{vendor: nvidia}]
YAML
npu=$(submit "$E2E_DIR/npu.yaml")
gpu=$(submit "$E2E_DIR/gpu.yaml")
icos wait "$npu" --timeout 30 || fail "ascend job failed"
icos wait "$gpu" --timeout 30 || fail "nvidia job failed"
icos logs "$npu" | tee /dev/stderr | grep -qx "NPUS=4,5,6,7" || fail "ascend job did not get the healthy island 4-7"
icos logs "$gpu" | tee /dev/stderr | grep -qx "GPUS=0,1" || fail "nvidia job did not get CUDA devices 0,1"
# 8 NPUs on one island can never fit (islands of 4): said at once.
sed 's/devices: 4/devices: 8/' "$E2E_DIR/npu.yaml" > "$E2E_DIR/npu8.yaml"
big=$(submit "$E2E_DIR/npu8.yaml")
wait_until 10 bash -c "icos job $big -o json | grep -q NeverFits" || fail "impossible island request not explained"
job_field "$big" reason
# icos devices: every device with its topology and health.
icos devices | tee "$E2E_DIR/devices.txt"
[ "$(grep -c ascend "$E2E_DIR/devices.txt")" = 8 ] || fail "icos devices does not list 8 ascend devices"
grep -E "ascend +910B +64Gi +[0-9]+ +0 +[^ ]+ +Unhealthy" "$E2E_DIR/devices.txt" | grep -q " 3 " || fail "unhealthy NPU 3 not shown"
# Drain: nothing new lands until resume; the node says so.
icos cancel "$big" > /dev/null
icos node drain "$(hostname)" > /dev/null
icos nodes | grep -q "Ready,Drained" || fail "drained node not shown as drained"
again=$(submit "$E2E_DIR/gpu.yaml")
sleep 1
[ "$(job_field "$again" state)" = Pending ] || fail "job started on a drained node"
icos node resume "$(hostname)" > /dev/null
icos wait "$again" --timeout 30 || fail "job did not start after resume"
echo "PASS mixed_devices"
