#!/usr/bin/env bash
# icos run, as srun: the task's output on the terminal, its exit code as the
# command's, Ctrl-C cancels the job (exit 130), and a job that can never run
# is said so and taken back instead of waiting forever.
source "$(dirname "$0")/lib.sh"
start_up
cd "$E2E_DIR"
out=$(icos run -e GREETING=hello -- sh -c 'echo "$GREETING from $(pwd)"; exit 0' 2>"$E2E_DIR/err1") ||
  fail "a succeeding run exited $?: $(cat "$E2E_DIR/err1")"
[ "$out" = "hello from $E2E_DIR" ] || fail "output was '$out'"

rc=0
icos run -- sh -c 'echo partial; exit 7' >"$E2E_DIR/out2" 2>"$E2E_DIR/err2" || rc=$?
[ "$rc" = 7 ] || fail "a run whose task exits 7 exited $rc: $(cat "$E2E_DIR/err2")"
grep -q partial "$E2E_DIR/out2" || fail "the failing task's output was not shown"
grep -q "exited with code 7" "$E2E_DIR/err2" || fail "the failure was not explained: $(cat "$E2E_DIR/err2")"

"$ICOS_BIN" run -- sh -c 'echo started; exec sleep 301' >"$E2E_DIR/out3" 2>"$E2E_DIR/err3" &
run=$!
wait_until 30 grep -q started "$E2E_DIR/out3" || fail "the long run did not start: $(cat "$E2E_DIR/err3")"
id=$(sed -n 's/^icos: job \([0-9]*\) submitted$/\1/p' "$E2E_DIR/err3")
kill -INT "$run"
rc=0
wait "$run" || rc=$?
[ "$rc" = 130 ] || fail "Ctrl-C gave exit $rc: $(cat "$E2E_DIR/err3")"
[ "$(job_field "$id" state)" = Cancelled ] || fail "job $id is $(job_field "$id" state) after Ctrl-C"
pgrep -fx "sleep 301" >/dev/null && sleep 12  # the grace period
pgrep -fx "sleep 301" >/dev/null && fail "the cancelled task still runs"

rc=0
timeout 30 "$ICOS_BIN" run -G nvidia/H100-never:1 -- true 2>"$E2E_DIR/err4" || rc=$?
[ "$rc" = 1 ] || fail "a run that can never fit exited $rc: $(cat "$E2E_DIR/err4")"
grep -q "NeverFits" "$E2E_DIR/err4" || fail "no NeverFits explanation: $(cat "$E2E_DIR/err4")"
# icos wait on such a job says so too, instead of hanging.
printf 'tasks:\n  - command: ["true"]\n    resources: {devices: 1}\n    devices: [{vendor: nvidia, model: H100-never}]\n' \
  >"$E2E_DIR/never.yaml"
never=$(submit "$E2E_DIR/never.yaml")
rc=0
timeout 30 "$ICOS_BIN" wait "$never" 2>"$E2E_DIR/err5" || rc=$?
[ "$rc" = 2 ] || fail "icos wait on a job that can never run exited $rc: $(cat "$E2E_DIR/err5")"
grep -q "can never run" "$E2E_DIR/err5" || fail "icos wait did not say why: $(cat "$E2E_DIR/err5")"
echo "PASS attached_run (output, exit codes 0 and 7, Ctrl-C -> 130 and Cancelled, NeverFits refused by run and wait)"
