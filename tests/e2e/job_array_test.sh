#!/usr/bin/env bash
# A job array as a Slurm user writes one: --array 0-11%3 runs twelve jobs,
# each told its index, never more than three at once; `icos jobs` folds
# them; an element is named ARRAY_INDEX; cancelling the array's id cancels
# all of it.
source "$(dirname "$0")/lib.sh"
start_up
cd "$E2E_DIR"
mkdir -p "$E2E_DIR/out"
cat >"$E2E_DIR/array.yaml" <<'YAML'
name: sweep
tasks:
  - command: ["sh", "-c", "date +%s.%N > out/start.$ICOS_ARRAY_INDEX; sleep 1; echo $ICOS_ARRAY_JOB_ID:$ICOS_ARRAY_COUNT > out/done.$ICOS_ARRAY_INDEX; date +%s.%N > out/end.$ICOS_ARRAY_INDEX"]
    resources: {cpu: 100m, memory: 64Mi}
YAML
line=$(icos submit --array 0-11%3 "$E2E_DIR/array.yaml") || fail "array submission failed"
array=$(echo "$line" | sed -n 's/^array \([0-9]*\) submitted: 0-11%3.*/\1/p')
[ -n "$array" ] || fail "unexpected submission reply: $line"
sleep 1
rows=$(icos jobs --name sweep)
echo "$rows" | grep -q "^${array}_\[" || fail "the array's elements were not folded:
$rows"
wait_until 90 sh -c "[ \$(ls $E2E_DIR/out/ | grep -c '^end\.') -eq 12 ]" || fail "not all 12 elements ran: $(ls "$E2E_DIR/out")"
for i in $(seq 0 11); do
  [ "$(cat "$E2E_DIR/out/done.$i")" = "$array:12" ] || fail "element $i saw '$(cat "$E2E_DIR/out/done.$i")'"
done
# Never more than three at once: the most intervals [start, end] that overlap.
most=$(/usr/bin/python3 - "$E2E_DIR/out" <<'PY'
import os, sys
d = sys.argv[1]
ev = []
for i in range(12):
    ev.append((float(open(f"{d}/start.{i}").read()), 1))
    ev.append((float(open(f"{d}/end.{i}").read()), -1))
ev.sort(key=lambda e: (e[0], e[1]))
now = most = 0
for _, k in ev:
    now += k
    most = max(most, now)
print(most)
PY
)
[ "$most" -le 3 ] || fail "$most elements ran at once with %3"
[ "$most" -ge 2 ] || fail "elements ran one at a time ($most) although %3 allows three"
wait_until 30 sh -c "[ \"\$(\"$ICOS_BIN\" job ${array}_11 -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Succeeded ]" ||
  fail "element ${array}_11 did not succeed: $(icos job "${array}_11" 2>&1 | head -3)"
icos job "${array}_11" | grep -q "^array: element 11 of $array (0-11%3)\$" ||
  fail "icos job does not say which element it is: $(icos job "${array}_11")"

# Cancelling the array's id cancels every element that has not ended.
printf 'name: long\ntasks:\n  - command: ["sleep", "300"]\n    resources: {cpu: 100m, memory: 64Mi}\n' >"$E2E_DIR/long.yaml"
long=$(icos submit -a 0-5%2 "$E2E_DIR/long.yaml" | sed -n 's/^array \([0-9]*\) submitted.*/\1/p')
wait_until 30 sh -c "\"$ICOS_BIN\" jobs --name long --state Running -r | grep -c '^${long}_' | grep -q 2" ||
  fail "two elements of the long array did not start: $(icos jobs --name long -r)"
icos cancel "${long}_5" >/dev/null || fail "cancelling one element failed"
[ "$(job_field "${long}_5" state)" = Cancelled ] || fail "element ${long}_5 is $(job_field "${long}_5" state)"
icos cancel "$long" >"$E2E_DIR/cancel" || fail "cancelling the array failed: $(cat "$E2E_DIR/cancel")"
[ "$(grep -c cancelled "$E2E_DIR/cancel")" = 5 ] || fail "cancelling the array cancelled: $(cat "$E2E_DIR/cancel")"
left=$(icos jobs --name long | grep -c "^${long}_" || true)
[ "$left" = 0 ] || fail "$left rows of the cancelled array are still listed: $(icos jobs --name long)"
echo "PASS job_array (12 elements with %3: each told its index, at most $most at once, folded listing; cancel by element and by array)"
