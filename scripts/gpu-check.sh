#!/usr/bin/env bash
# Runs a real one-node icos cluster on a machine with an NVIDIA GPU, from a
# bundle made here (scripts/bundle-binary.sh build/release/src/cli/icos
# build/gpu-bundle), and records under $OUT what it saw: the host, the node
# icos discovered through NVML, a job that gets one GPU (CUDA_VISIBLE_DEVICES,
# nvidia-smi, its cgroup), a job that can never fit, and an OOM kill under
# that host's cgroup hierarchy.
set -u
B=${B:-build/gpu-bundle}
OUT=${OUT:-/tmp/icos-gpu-check}
mkdir -p "$OUT"
icos() { "$B/run.sh" "$@"; }
{
  uname -a; head -3 /etc/os-release; nproc; free -m | head -2
  nvidia-smi -L
  nvidia-smi --query-gpu=name,uuid,pci.bus_id,memory.total,temperature.gpu,power.draw --format=csv
  mount | grep cgroup
} > "$OUT/host.txt" 2>&1
nvml=$(ldconfig -p 2>/dev/null | awk '/libnvidia-ml.so.1 / {print $NF; exit}')
echo "nvml: $nvml" >> "$OUT/host.txt"
export ICOS_HOME=$OUT/home
# Started directly, not through the icos() function: a backgrounded function is
# a subshell that ignores SIGINT, so the kill at the end would not reach icos.
"$B/run.sh" up --port 7399 ${nvml:+--nvml-lib "$nvml"} --work-dir "$OUT/agent" > "$OUT/up.log" 2>&1 &
up=$!
for _ in $(seq 150); do grep -q "icos is up" "$OUT/up.log" && break; sleep 0.1; done
icos nodes > "$OUT/nodes.txt" 2>&1
icos nodes -o json > "$OUT/nodes.json" 2>&1
cat > "$OUT/gpu.yaml" <<'YAML'
name: gpu-check
tasks:
  - command: ["sh", "-c", "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; nvidia-smi -L; cat /proc/self/cgroup; command -v python3 && python3 -c 'import torch; print(\"torch\", torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))' 2>&1 | tail -1"]
    resources: {cpu: 1, memory: 2Gi, devices: 1}
    devices: [{vendor: nvidia}]
YAML
id=$(icos submit "$OUT/gpu.yaml" | awk '{print $2}')
icos wait "$id" --timeout 60 > "$OUT/gpu-wait.txt" 2>&1
icos job "$id" > "$OUT/gpu-job.txt" 2>&1
icos logs "$id" > "$OUT/gpu-task.log" 2>&1
sed 's/devices: 1}/devices: 2}/' "$OUT/gpu.yaml" > "$OUT/gpu2.yaml"
id2=$(icos submit "$OUT/gpu2.yaml" | awk '{print $2}')
sleep 1
icos job "$id2" > "$OUT/gpu2-job.txt" 2>&1
icos cancel "$id2" > /dev/null 2>&1
cat > "$OUT/oom.yaml" <<'YAML'
name: oom-check
tasks:
  - command: ["sh", "-c", "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id3=$(icos submit "$OUT/oom.yaml" | awk '{print $2}')
icos wait "$id3" --timeout 60 > "$OUT/oom-wait.txt" 2>&1
icos job "$id3" > "$OUT/oom-job.txt" 2>&1
kill -INT "$up"; wait "$up"
cp "$OUT"/agent/logs/*.log "$OUT/" 2>/dev/null
ls -la "$OUT" > "$OUT/files.txt"
echo done
