#!/usr/bin/env bash
# A task over its memory limit is killed by the kernel in its cgroup and
# reported as OOMKilled.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP oom: needs root for cgroups"; exit 77; }
start_up
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["/usr/bin/python3", "-c", "x = bytearray(400 * 1024 * 1024); print(len(x))"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
icos wait "$id" --timeout 60 && fail "job over its memory limit succeeded"
icos job "$id" -o json | /usr/bin/python3 -c "
import json,sys
j = json.load(sys.stdin)
assert j['state'] == 'Failed', j['state']
assert j['tasks'][0]['reason'] == 'OOMKilled', j['tasks'][0]
" || fail "task not reported as OOMKilled"
echo "PASS oom"
