#!/usr/bin/env bash
# An agent frozen (SIGSTOP) for longer than its node lease: its shim stops
# the task before the lease ends, and only then does the controller start
# the retry elsewhere. The tasks' own timestamps must not overlap, and the
# old attempt must not come back when the agent thaws (SIGCONT).
source "$(dirname "$0")/lib.sh"
SERVER_FLAGS=(--node-lease 12)
start_server
start_agent node-a --cpus 1
agent_a=$LAST_AGENT_PID
start_agent node-b --cpus 1
agent_b=$LAST_AGENT_PID
cat > "$E2E_DIR/job.yaml" <<YAML
restart: {policy: OnFailure, max_retries: 2}
tasks:
  - command: ["sh", "-c", "echo \$ICOS_TASK_ID >> $E2E_DIR/attempts; for i in \$(seq 300); do echo \"\$ICOS_TASK_ID \$(date +%s%N)\" >> $E2E_DIR/ticks; sleep 0.1; done"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
wait_until 20 test -s "$E2E_DIR/ticks" || fail "the job did not start"
node=$(icos job "$id" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tasks'][0]['node'])")
frozen=$agent_a; [ "$node" = node-b ] && frozen=$agent_b
echo "freezing the agent of $node (lease 12 s)"
kill -STOP "$frozen"
# The retry starts on the other node once the lease has ended there.
wait_until 40 bash -c "[ \$(sort -u $E2E_DIR/attempts | wc -l) -ge 2 ]" || { kill -CONT "$frozen"; icos job "$id"; fail "no retry elsewhere"; }
sleep 2
kill -CONT "$frozen"
sleep 3
first=$(head -1 "$E2E_DIR/attempts")
second=$(sort -u "$E2E_DIR/attempts" | grep -v "^$first$" | head -1)
/usr/bin/python3 - "$E2E_DIR/ticks" "$first" "$second" <<'PY' || fail "the two attempts overlapped"
import sys
ticks = [l.split() for l in open(sys.argv[1]) if l.strip()]
old = [int(t) for a, t in ticks if a == sys.argv[2]]
new = [int(t) for a, t in ticks if a == sys.argv[3]]
gap = (min(new) - max(old)) / 1e9
print(f"old attempt: last tick {max(old)}; new attempt: first tick {min(new)}; gap {gap:.2f} s")
sys.exit(0 if new and old and gap > 0 else 1)
PY
# Thawed, the old agent reports the stopped task; nothing of it runs again.
n_old=$(grep -c "^$first " "$E2E_DIR/ticks")
sleep 2
[ "$(grep -c "^$first " "$E2E_DIR/ticks")" = "$n_old" ] || fail "the old attempt ticked again after the thaw"
icos job "$id" | grep -q "max_disconnect" || { icos job "$id"; fail "the failure does not say why"; }
echo "PASS partition"
