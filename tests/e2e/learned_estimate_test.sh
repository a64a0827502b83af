#!/usr/bin/env bash
# Learned run-time estimates in a real cluster: after 20 runs of a job have
# succeeded, the next run of it is estimated from them (what `icos job` and
# the REST API show, what /metrics counts), and the estimate survives a
# controller restart because it is rebuilt from the stored history.
source "$(dirname "$0")/lib.sh"
start_up
job() {  # job NAME SECONDS: a job that sleeps that long
  cat > "$E2E_DIR/$1.yaml" <<YAML
name: $1
tasks:
  - command: ["sleep", "$2"]
    resources: {cpu: 0.1, memory: 16Mi}
YAML
  echo "$E2E_DIR/$1.yaml"
}
ids=()
for k in $(seq 1 20); do ids+=("$(submit "$(job "nightly-eval-$k" 2)")"); done
for id in "${ids[@]}"; do icos wait "$id" --timeout 120 >/dev/null || fail "job $id did not succeed"; done

id=$(submit "$(job nightly-eval-21 2)")
estimate() {  # estimate ID: "SECONDS SOURCE" from the REST API
  icos job "$1" -o json | /usr/bin/python3 -c '
import json, sys
e = json.load(sys.stdin)["runtime_estimate"]
print("none" if e is None else "%.1f %s" % (e["seconds"], e["source"]))'
}
wait_until 20 bash -c "icos job $id -o json | grep -q '\"learned\"'" || fail "no learned estimate: $(estimate "$id")"
read -r seconds source <<< "$(estimate "$id")"
# Each run slept 2 s; the estimate is what they took (process start included).
/usr/bin/python3 -c "import sys; sys.exit(0 if 1.5 <= $seconds <= 6 else 1)" || fail "estimate $seconds s for 2 s runs"
icos job "$id" | grep -q "runtime estimate: .* (learned from similar finished jobs)" || fail "icos job does not show it: $(icos job "$id")"
metrics=$(curl -sf "$ICOS_SERVER/metrics")
echo "$metrics" | grep -Eq '^icos_runtime_estimator_jobs_learned 2[0-9]$' || fail "metrics: $(echo "$metrics" | grep runtime_estimator)"
icos wait "$id" --timeout 60 >/dev/null || fail "job $id did not succeed"
# Every job that ran with a learned estimate is observed: the 20 first ones
# too, re-estimated from their burst's siblings as these finished. Runs this
# regular must all land within 2x (ratio 0.5 to 2) of their estimate.
ratio=$(curl -sf "$ICOS_SERVER/metrics" | grep '^icos_runtime_estimate_ratio')
count=$(echo "$ratio" | awk '/_count /{print $2}')
within=$(( $(echo "$ratio" | awk -F'} ' '/le="2"/{print $2}') - $(echo "$ratio" | awk -F'} ' '/le="0.5"/{print $2}') ))
[ "${count:-0}" -ge 1 ] && [ "$within" -eq "$count" ] || fail "estimate errors: $ratio"

# A restart: the history comes back from the store.
kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true
start_up
id2=$(submit "$(job nightly-eval-22 2)")
wait_until 20 bash -c "icos job $id2 -o json | grep -q '\"learned\"'" || fail "no learned estimate after a restart: $(estimate "$id2")"
# Without learning, only the user's estimate or the time limit count.
kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true
start_up --no-learned-estimates
id3=$(submit "$(job nightly-eval-23 2)")
sleep 3
[ "$(estimate "$id3")" = "none" ] || fail "--no-learned-estimates still estimated: $(estimate "$id3")"
echo "PASS learned_estimate ($seconds s, $source; $within of $count within 2x)"
