#!/usr/bin/env bash
# The checkpoint contract with real PyTorch (issue #20): the 2-worker DDP
# example, checkpointing every 20 steps, is preempted by a higher-priority
# job that needs its CPUs. Both ranks get SIGUSR1, agree on a step, save it
# and leave; the job resumes at that step in its next attempt and ends with
# exactly the loss of an undisturbed run (same data order, same optimizer
# state), having lost at most one step's work.
source "$(dirname "$0")/lib.sh"
start_up --cpus 2
cd "$REPO_ROOT/examples/pytorch-ddp"
job() {  # job NAME PRIORITY CHECKPOINT_SPEC: a 2-rank run of train.py
  cat > "$E2E_DIR/$1.yaml" <<YAML
name: $1
framework: pytorch
priority: $2
$3
tasks:
  - name: worker
    replicas: 2
    command: ["/usr/bin/python3", "$PWD/train.py", "--epochs", "3", "--checkpoint-every", "20", "--step-seconds", "0.03"]
    resources: {cpu: 1, memory: 1Gi}
YAML
  echo "$E2E_DIR/$1.yaml"
}
result() { icos logs "$1" --task 0 | grep '^RESULT' | sed 's/.*final_loss=\([0-9.]*\).*/\1/'; }

# The undisturbed run first: its loss is the reference.
ref=$(submit "$(job reference 0 "")")
icos wait "$ref" --timeout 150 || fail "reference run failed: $(icos job "$ref")"
want=$(result "$ref")
[ -n "$want" ] || fail "reference run printed no RESULT: $(icos logs "$ref" --task 0)"

low=$(submit "$(job low 0 "checkpoint: {grace: 30s}")")
wait_until 90 bash -c "icos logs $low --task 0 2>/dev/null | grep -q 'starts at step 0'" || fail "low did not start"
wait_until 60 bash -c "icos job $low | grep -q 'last checkpoint:'" || fail "no periodic checkpoint: $(icos job "$low")"
cat > "$E2E_DIR/high.yaml" <<YAML
name: high
priority: 10
tasks:
  - command: ["sleep", "1"]
    resources: {cpu: 2, memory: 64Mi}
YAML
high=$(submit "$E2E_DIR/high.yaml")
icos wait "$high" --timeout 90 || fail "high did not run: $(icos job "$high")"
icos wait "$low" --timeout 150 || fail "the preempted run did not finish: $(icos job "$low")"
[ "$(job_field "$low" attempt)" -ge 1 ] || fail "low was not preempted: $(icos job "$low")"
first=$E2E_DIR/first-attempt.log
icos logs "$low" --task 0 --attempt 0 > "$first" || fail "no log of the first attempt"
saved=$(sed -n 's/^rank 0 checkpointed at step \([0-9]*\) for a planned stop$/\1/p' "$first")
[ -n "$saved" ] || fail "rank 0 did not checkpoint on the signal: $(tail -5 "$first")"
grep -q "rank 0 starts at step $saved\$" <<< "$(icos logs "$low" --task 0)" || fail "did not resume at $saved: $(icos logs "$low" --task 0 | head)"
got=$(result "$low")
[ "$got" = "$want" ] || fail "final loss $got after the preemption, $want undisturbed"
lost=$(job_field "$low" lost_device_s)
echo "PASS ddp_checkpoint (preempted at step $saved, resumed there, final loss $got = $want; lost $lost device-s)"
