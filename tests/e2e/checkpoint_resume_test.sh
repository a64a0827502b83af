#!/usr/bin/env bash
# Resume after a fault (issue #20): a job that checkpoints (no restart policy
# at all) runs on one of two nodes that share a checkpoint directory. Its
# node's agent is killed (-9). Once the node's lease has passed, the job
# starts again on the other node, after the back-off, from the step it last
# saved, spends no retry, and the work it lost (since that checkpoint) is
# counted.
source "$(dirname "$0")/lib.sh"
SERVER_FLAGS=(--node-lease 12)
start_server
shared=$E2E_DIR/checkpoints
start_agent node-a --cpus 1 --devices nvidia/A100-80G:1 --checkpoint-dir "$shared"
agent_a=$LAST_AGENT_PID
start_agent node-b --cpus 1 --devices nvidia/A100-80G:1 --checkpoint-dir "$shared"
agent_b=$LAST_AGENT_PID
script='
step_file=$ICOS_CHECKPOINT_DIR/step
n=$(cat "$step_file" 2>/dev/null || echo 0)
echo "start at step $n on $(hostname)"
while [ "$n" -lt 150 ]; do
  sleep 0.2 & wait $!
  n=$((n + 1))
  if [ $((n % 10)) -eq 0 ]; then echo "$n" > "$step_file.tmp"; mv "$step_file.tmp" "$step_file"; "$ICOS" checkpoint-done; fi
done
echo "done at step $n"'
quoted=$(/usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$script")
cat > "$E2E_DIR/job.yaml" <<YAML
checkpoint: {}
max_disconnect: 12s
env: {ICOS: "$ICOS_BIN"}
tasks:
  - command: ["bash", "-c", $quoted]
    resources: {cpu: 1, memory: 32Mi, devices: 1}
YAML
id=$(submit "$E2E_DIR/job.yaml")
wait_until 60 bash -c "icos job $id | grep -q 'last checkpoint:'" || fail "no checkpoint: $(icos job "$id")"
node=$(icos job "$id" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tasks'][0]['node'])")
victim=$agent_a; [ "$node" = node-b ] && victim=$agent_b
saved_before=$(cat "$shared"/*/job-"$id"/step)
echo "killing the agent of $node (-9) at saved step $saved_before"
kill -9 "$victim"
wait_until 90 bash -c "[ \$(icos job $id -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"attempt\"])') -ge 1 ]" ||
  fail "the job was not restarted: $(icos job "$id")"
icos job "$id" -o json | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["reason"]; print(r)' | tee "$E2E_DIR/reason"
grep -q "no retry spent" "$E2E_DIR/reason" || echo "(reason now: $(cat "$E2E_DIR/reason"))"
icos wait "$id" --timeout 120 || fail "the job did not finish after the fault: $(icos job "$id")"
resumed=$(icos logs "$id" | sed -n 's/^start at step \([0-9]*\) on .*/\1/p' | head -1)
[ -n "$resumed" ] && [ "$resumed" -ge 10 ] || fail "the next attempt did not resume from a checkpoint: $(icos logs "$id" | head -3)"
grep -q "done at step 150" <<< "$(icos logs "$id")" || fail "did not finish its steps: $(icos logs "$id" | tail -3)"
lost=$(job_field "$id" lost_device_s)
/usr/bin/python3 -c "import sys; sys.exit(0 if 0 < float('$lost') < 60 else 1)" ||
  fail "lost $lost device-s: expected the time since its last checkpoint until the node was declared lost"
echo "PASS checkpoint_resume (resumed at step $resumed on the other node; lost $lost device-s)"
