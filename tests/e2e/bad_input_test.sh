#!/usr/bin/env bash
# Bad input gets a clear 4xx and loses nothing; the controller stays up.
source "$(dirname "$0")/lib.sh"
# A low rate, so that the floods below exceed it even when a loaded machine
# serves them slowly.
start_up --rate-limit 20
printf 'tasks:\n  - command: ["sleep", "600"]\n    resources: {cpu: 0.1, memory: 16Mi}\n' > "$E2E_DIR/good.yaml"
good=$(submit "$E2E_DIR/good.yaml")

expect_error() {  # expect_error PATTERN CMD...
  local pattern=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected failure: $*"; fi
  echo "$out" | grep -q -- "$pattern" || fail "expected '$pattern' in: $out"
}
printf 'tasks: [\n' > "$E2E_DIR/malformed.yaml"
expect_error "not valid YAML" icos submit "$E2E_DIR/malformed.yaml"
printf 'tasks:\n  - command: ["true"]\n    resources: {gpus: 1}\n' > "$E2E_DIR/unknown.yaml"
expect_error "unknown field" icos submit "$E2E_DIR/unknown.yaml"
printf 'tasks:\n  - command: ["true"]\n    resources: {cpu: -2}\n' > "$E2E_DIR/negative.yaml"
expect_error "cpu" icos submit "$E2E_DIR/negative.yaml"
printf 'tasks:\n  - command: ["true"]\n    resources: {memory: 900Ti}\n' > "$E2E_DIR/absurd.yaml"
expect_error "memory" icos submit "$E2E_DIR/absurd.yaml"
printf 'queue: nope\ntasks:\n  - command: ["true"]\n' > "$E2E_DIR/queue.yaml"
expect_error "queue 'nope' does not exist" icos submit "$E2E_DIR/queue.yaml"
printf 'framework: caffe\ntasks:\n  - command: ["true"]\n' > "$E2E_DIR/framework.yaml"
expect_error "framework" icos submit "$E2E_DIR/framework.yaml"
head -c 3000000 /dev/zero | tr '\0' 'a' > "$E2E_DIR/huge.yaml"
expect_error "too large" icos submit "$E2E_DIR/huge.yaml"
expect_error "unknown or revoked token" icos jobs --token icos_not_a_token
expect_error "no token" env ICOS_TOKEN= ICOS_HOME=/nonexistent "$ICOS_BIN" jobs --server "$ICOS_SERVER"

# Roles: a user sees only its own jobs; an agent token cannot submit.
alice=$(icos token create --role user --user alice)
expect_error "no job $good" icos job "$good" --token "$alice"
expect_error "may not submit" icos submit "$E2E_DIR/good.yaml" --token "$(cat "$ICOS_HOME/agent.token")"
expect_error "needs an admin token" icos token create --role admin --token "$alice"

# A command that does not exist fails the job with the reason, not the server.
printf 'tasks:\n  - command: ["pyhton3", "x.py"]\n' > "$E2E_DIR/typo.yaml"
typo=$(submit "$E2E_DIR/typo.yaml")
icos wait "$typo" --timeout 20 && fail "typo job succeeded"
[ "$(job_field "$typo" state)" = Failed ] || fail "typo job not Failed"
job_field "$typo" reason | grep -q "not found in PATH" || fail "typo reason unclear: $(job_field "$typo" reason)"

# A flood of requests: the server answers all and keeps running.
seq 200 | xargs -P 50 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$ICOS_SERVER/api/v1/jobs" \
  -H "Authorization: Bearer x" > "$E2E_DIR/flood.txt"
[ "$(grep -c 401 "$E2E_DIR/flood.txt")" = 200 ] || fail "flood: $(sort "$E2E_DIR/flood.txt" | uniq -c)"

# A flood from one valid token: beyond its rate it gets 429 with the reason,
# and other clients are still served.
seq 400 | xargs -P 50 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$ICOS_SERVER/api/v1/jobs" \
  -H "Authorization: Bearer $alice" > "$E2E_DIR/flood2.txt"
grep -q 429 "$E2E_DIR/flood2.txt" || fail "no 429 under a flood: $(sort "$E2E_DIR/flood2.txt" | uniq -c)"
grep -q 200 "$E2E_DIR/flood2.txt" || fail "flood: nothing served"
curl -s "$ICOS_SERVER/api/v1/jobs" -H "Authorization: Bearer $alice" > /dev/null
msg=$(seq 300 | xargs -P 50 -I{} curl -s "$ICOS_SERVER/api/v1/jobs" -H "Authorization: Bearer $alice" | grep -m1 -o 'too many requests[^"]*' || true)
[ -n "$msg" ] || fail "429 without a reason"
echo "$msg"
icos jobs > /dev/null || fail "admin not served during alice's flood"

curl -sf "$ICOS_SERVER/healthz" > /dev/null || fail "controller died"
[ "$(job_field "$good" state)" = Running ] || { icos job "$good"; fail "accepted job lost: $(job_field "$good" state)"; }
icos cancel "$good" > /dev/null
# A policy name the simulator does not know either: refused, listing the known ones.
out=$(icos server --policy nope --port 0 --data-dir "$E2E_DIR/other" 2>&1) && fail "icos server took --policy nope"
grep -q "known: default, fifo" <<< "$out" || fail "a bad --policy does not list the known ones: $out"
# A fault rate the simulator cannot read: refused, naming the flag.
out=$(icos sim --trace synthetic --jobs 10 --device-mtbf often 2>&1) && fail "icos sim took --device-mtbf often"
grep -q -- "--device-mtbf 'often'" <<< "$out" || fail "a bad --device-mtbf is not named: $out"
# Inputs the simulator cannot honestly run: refused, naming what is missing.
out=$(icos sim --trace synthetic --jobs 10 --traces "$E2E_DIR/no-traces" 2>&1) && fail "synthetic ran without throughputs"
grep -q "needs Gavel's throughputs: $E2E_DIR/no-traces/gavel/simulation_throughputs.json" <<< "$out" ||
  fail "the missing throughputs are not named: $out"
icos sim --trace synthetic:4:uniform --jobs 10 --traces "$E2E_DIR/no-traces" > /dev/null ||
  fail "synthetic:RATE:uniform needs no throughputs"
printf 'name,num_gpu,gpu_milli\np,1,500\n' > "$E2E_DIR/variant.csv"
out=$(icos sim --trace "openb:$E2E_DIR/variant.csv" 2>&1) && fail "a replay ran without pod times"
grep -q "has no creation_time and deletion_time" <<< "$out" || fail "missing pod times not named: $out"
echo "PASS bad_input"
