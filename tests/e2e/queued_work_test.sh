#!/usr/bin/env bash
# Control of queued work as a Slurm user has it: a dependency chain where one
# job fails (its after_ok dependents are cancelled saying why, its afternotok
# one runs), hold / release, requeue of a running job, update of a pending
# one, and cancel by name.
source "$(dirname "$0")/lib.sh"
start_up
cd "$E2E_DIR"
job() { printf 'name: %s\ntasks:\n  - command: ["sh", "-c", "%s"]\n    resources: {cpu: 1, memory: 64Mi}\n' "$1" "$2" >"$E2E_DIR/$1.yaml"; }

job fails 'sleep 2; exit 1'
job next 'echo next ran'
job last 'echo last ran'
job rescue 'echo rescued > rescued.txt'
a=$(submit "$E2E_DIR/fails.yaml")
b=$(icos submit -d "afterok:$a" "$E2E_DIR/next.yaml" | awk '{print $2}')
c=$(icos submit --dependency "afterok:$b" "$E2E_DIR/last.yaml" | awk '{print $2}')
d=$(icos submit -d "afternotok:$a" "$E2E_DIR/rescue.yaml" | awk '{print $2}')
[ -n "$d" ] || fail "submissions with dependencies failed"
icos job "$c" | grep -q "^depends on: afterok:$b\$" || fail "icos job does not show the dependency: $(icos job "$c")"
reason=$(job_field "$b" reason)
case "$reason" in "Dependency: waiting for job $a"*) ;; *) fail "job $b waits saying '$reason'" ;; esac
rc=0
timeout 60 "$ICOS_BIN" wait "$b" >"$E2E_DIR/wait_b" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "icos wait on the dependent of a failed job exited $rc: $(cat "$E2E_DIR/wait_b")"
grep -q "Cancelled: dependency never satisfied: job $a Failed, so after_ok cannot be met" "$E2E_DIR/wait_b" ||
  fail "the dependent was not cancelled saying why: $(cat "$E2E_DIR/wait_b")"
wait_until 30 sh -c "\"$ICOS_BIN\" job $c -o json | grep -q '\"state\": \"Cancelled\"'" ||
  fail "the job after it was not cancelled in turn: $(job_field "$c" reason)"
timeout 60 "$ICOS_BIN" wait "$d" >/dev/null || fail "the afternotok job did not succeed: $(job_field "$d" reason)"
[ "$(cat "$E2E_DIR/rescued.txt")" = rescued ] || fail "the afternotok job's output is missing"
# A dependency on a job that already failed is refused at submission.
icos submit -d "afterok:$a" "$E2E_DIR/next.yaml" >/dev/null 2>"$E2E_DIR/late" && fail "after_ok on a failed job was accepted"
grep -q "after_ok cannot be met" "$E2E_DIR/late" || fail "the refusal did not say why: $(cat "$E2E_DIR/late")"

# Hold at submission, update while held, release.
job held 'echo held ran'
h=$(icos submit --hold "$E2E_DIR/held.yaml" | awk '{print $2}')
sleep 3
[ "$(job_field "$h" state)" = Pending ] || fail "a held job started"
case "$(job_field "$h" reason)" in Held:*) ;; *) fail "held job's reason: $(job_field "$h" reason)" ;; esac
icos update "$h" --time 10m --estimate 1m >/dev/null || fail "update failed"
icos job "$h" -o json | grep -q '"time_limit": "10m"' || fail "the update did not reach the spec"
icos release "$h" >/dev/null || fail "release failed"
timeout 60 "$ICOS_BIN" wait "$h" >/dev/null || fail "the released job did not run: $(job_field "$h" reason)"

# A job waiting behind another gets a start forecast: about when the first
# ends by its estimate (icos job, icos jobs --start).
cores=$(nproc)
printf 'name: blocker\nruntime_estimate: 2m\ntasks:\n  - command: ["sleep", "300"]\n    resources: {cpu: %s, memory: 64Mi}\n' "$cores" >"$E2E_DIR/blocker.yaml"
printf 'name: behind\nruntime_estimate: 1m\ntasks:\n  - command: ["true"]\n    resources: {cpu: %s, memory: 64Mi}\n' "$cores" >"$E2E_DIR/behind.yaml"
blocker=$(submit "$E2E_DIR/blocker.yaml")
wait_until 30 sh -c "\"$ICOS_BIN\" job $blocker -o json | grep -q '\"state\": \"Running\"'" || fail "blocker did not start"
behind=$(submit "$E2E_DIR/behind.yaml")
wait_until 20 sh -c "\"$ICOS_BIN\" job $behind | grep -q '^expected start: in'" ||
  fail "no start forecast for a waiting job: $(icos job "$behind" | head -5)"
icos job "$behind" | grep -q '^expected start: in \(1m\|2m\|[0-9]*s\) ' || fail "forecast is not about 2 min: $(icos job "$behind" | grep expected)"
icos jobs --start | grep "^$behind " | grep -q " in " || fail "icos jobs --start shows no start: $(icos jobs --start)"
# sinfo's view while the blocker holds every core.
summary=$(icos summary 2>&1) || fail "icos summary failed: $summary"
echo "$summary" | grep -q "^nodes: 1 ready, 0 not ready" || fail "icos summary: $summary"
echo "$summary" | grep -q "^default .* 1 .* 1  cpu=" || fail "icos summary's queue row: $summary"
icos cancel "$blocker" "$behind" >/dev/null

# Requeue a running job: it stops and runs again as its next attempt.
job long 'echo started; exec sleep 300'
l=$(submit "$E2E_DIR/long.yaml")
wait_until 30 sh -c "\"$ICOS_BIN\" job $l -o json | grep -q '\"state\": \"Running\"'" || fail "long job did not start"
icos requeue "$l" >/dev/null || fail "requeue failed"
wait_until 60 sh -c "[ \"\$(\"$ICOS_BIN\" job $l -o json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j[\"state\"], j[\"attempt\"])')\" = 'Running 1' ]" ||
  fail "the requeued job did not run again: $(job_field "$l" state) attempt $(job_field "$l" attempt)"
# Cancel by name.
icos cancel --name long >"$E2E_DIR/cancel" || fail "cancel --name failed: $(cat "$E2E_DIR/cancel")"
grep -q "job $l cancelled" "$E2E_DIR/cancel" || fail "cancel --name did not cancel job $l: $(cat "$E2E_DIR/cancel")"
echo "PASS queued_work (dependency chain with a failure, afternotok, hold/update/release, requeue, cancel --name)"
