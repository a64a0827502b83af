#!/usr/bin/env bash
# The checkpoint contract (issue #20, docs/frameworks.md "Checkpoints"), end
# to end on one simulated GPU: a low-priority job that checkpoints counts
# steps, saving every 10 in $ICOS_CHECKPOINT_DIR and saying so with
# `icos checkpoint-done`. A high-priority job preempts it: the low job gets
# its checkpoint signal first (SIGUSR1), saves, and exits; SIGTERM never
# comes. It then resumes from the step it saved, in its next attempt, and
# the work lost to the preemption is about nothing. Its save on the signal
# takes about 1.5 s, which the controller learns (checkpoint_save_s) to
# size the window of the job's next planned stop. Its checkpoint directory
# outlives the preemption and is removed by the retention rule once the job
# has ended (1 s here), without following the link the job left in it.
source "$(dirname "$0")/lib.sh"
start_up --devices nvidia/A100-80G:1 --checkpoint-retention 1 --checkpoint-sweep-interval 1
script='
step_file=$ICOS_CHECKPOINT_DIR/step
n=$(cat "$step_file" 2>/dev/null || echo 0)
echo "start at step $n (signal $ICOS_CHECKPOINT_SIGNAL) in $ICOS_CHECKPOINT_DIR"
ln -sfn "$OUTSIDE" "$ICOS_CHECKPOINT_DIR/outside"
save() { echo "$n" > "$step_file.tmp" && mv "$step_file.tmp" "$step_file" && "$ICOS" checkpoint-done; }
trap '"'"'sleep 1.5; save; echo "checkpointed at step $n on the signal"; exit 0'"'"' USR1
trap '"'"'echo "got SIGTERM"; exit 1'"'"' TERM
while [ "$n" -lt 60 ]; do
  sleep 0.2 & wait $!
  n=$((n + 1))
  if [ $((n % 10)) -eq 0 ]; then save; echo "checkpoint at step $n"; fi
done
echo "done at step $n"'
quoted=$(/usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$script")
cat > "$E2E_DIR/low.yaml" <<YAML
name: low
priority: 0
checkpoint: {signal: SIGUSR1, grace: 20s}
env: {ICOS: "$ICOS_BIN", OUTSIDE: "$E2E_DIR/outside"}
tasks:
  - command: ["bash", "-c", $quoted]
    resources: {cpu: 0.1, memory: 32Mi, devices: 1}
YAML
cat > "$E2E_DIR/high.yaml" <<YAML
name: high
priority: 10
tasks:
  - command: ["sleep", "2"]
    resources: {cpu: 0.1, memory: 32Mi, devices: 1}
YAML
mkdir -p "$E2E_DIR/outside" && echo precious > "$E2E_DIR/outside/file" && chmod -R a+rwX "$E2E_DIR/outside"
low=$(submit "$E2E_DIR/low.yaml")
wait_until 30 bash -c "icos logs $low 2>/dev/null | grep -q 'checkpoint at step 10'" || fail "no periodic checkpoint: $(icos logs "$low" 2>&1)"
wait_until 10 bash -c "icos job $low | grep -q 'last checkpoint:'" || fail "icos job shows no checkpoint: $(icos job "$low")"
[ "$(job_field "$low" checkpoint_ms)" -gt 0 ] || fail "checkpoint_ms not set"

high=$(submit "$E2E_DIR/high.yaml")
icos wait "$high" --timeout 60 || fail "the high-priority job did not run: $(icos job "$high")"
icos wait "$low" --timeout 90 || fail "the preempted job did not finish: $(icos job "$low")"

first=$E2E_DIR/first-attempt.log
icos logs "$low" --attempt 0 > "$first" || fail "no log of the first attempt"
grep -q "start at step 0 (signal SIGUSR1)" "$first" || fail "first attempt: $(cat "$first")"
ckpt_dir=$(sed -n 's/^start at step 0 (signal SIGUSR1) in \(.*\)$/\1/p' "$first")
saved=$(sed -n 's/^checkpointed at step \([0-9]*\) on the signal$/\1/p' "$first")
[ -n "$saved" ] || fail "the first attempt did not checkpoint on the signal: $(cat "$first")"
grep -q "got SIGTERM" "$first" && fail "SIGTERM came before the checkpoint window ended: $(cat "$first")"
grep -q "start at step $saved " <<< "$(icos logs "$low")" || fail "the next attempt did not resume at step $saved: $(icos logs "$low")"
grep -q "done at step 60" <<< "$(icos logs "$low")" || fail "did not finish: $(icos logs "$low")"
[ "$(job_field "$low" attempt)" -ge 1 ] || fail "the low job was not preempted"
save_s=$(job_field "$low" checkpoint_save_s)
/usr/bin/python3 -c "import sys; sys.exit(0 if 1.4 <= float('$save_s') < 20 else 1)" ||
  fail "the save on the signal took about 1.5 s, the controller says $save_s s"
grep -q "a checkpoint took up to" <<< "$(icos job "$low")" || fail "icos job does not say how long a checkpoint took: $(icos job "$low")"
lost=$(job_field "$low" lost_device_s)
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$lost') < 5 else 1)" ||
  fail "lost $lost device-seconds although it checkpointed on the signal"
if [ "$lost" != "0" ] && [ "$lost" != "0.0" ]; then
  # Read whole first: grep -q leaving early would fail curl's write (pipefail).
  metrics=$(curl -sf "$ICOS_SERVER/metrics")
  grep -q "^icos_work_lost_device_seconds_total{queue=\"default\"} $lost\$" <<< "$metrics" ||
    fail "/metrics does not say $lost s lost: $(grep lost <<< "$metrics")"
  icos usage -o json | /usr/bin/python3 -c "
import json, sys
rows = json.load(sys.stdin)['rows']
got = sum(r['device_hours_lost'] for r in rows)
assert abs(got * 3600 - $lost) < 0.01, (got * 3600, $lost)" || fail "accounting does not show the lost work: $(icos usage)"
fi
# The retention rule: gone once the job has ended (1 s), the link not followed.
[ -n "$ckpt_dir" ] || fail "the task did not say where its checkpoints go"
wait_until 20 bash -c "[ ! -e '$ckpt_dir' ]" || fail "$ckpt_dir outlived its retention: $(ls -la "$ckpt_dir")"
[ "$(cat "$E2E_DIR/outside/file")" = precious ] || fail "the removal followed the job's link"
echo "PASS checkpoint (preempted at step $saved, resumed there, lost $lost device-s)"
