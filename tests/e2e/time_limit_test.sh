#!/usr/bin/env bash
# A task running past its job's time limit gets SIGTERM (then SIGKILL after
# the grace period); the job fails saying so.
source "$(dirname "$0")/lib.sh"
start_up
cat > "$E2E_DIR/job.yaml" <<YAML
time_limit: 2s
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 0.1, memory: 16Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
start=$(date +%s)
icos wait "$id" --timeout 30 && fail "job past its time limit succeeded"
elapsed=$(( $(date +%s) - start ))
[ "$elapsed" -lt 15 ] || fail "time limit enforced only after $elapsed s"
reason=$(job_field "$id" reason)
echo "$reason" | grep -q "TimeLimit" || fail "reason does not say TimeLimit: $reason"
echo "PASS time_limit ($elapsed s: $reason)"
