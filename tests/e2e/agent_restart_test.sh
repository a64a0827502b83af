#!/usr/bin/env bash
# Kill -9 the agent while its task runs; a new agent on the same work dir
# re-adopts the task, which finishes and is reported once, with its log.
source "$(dirname "$0")/lib.sh"
start_server
start_agent node-a
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo started >> $E2E_DIR/marker; sleep 3; echo finished"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
wait_until 20 test -f "$E2E_DIR/marker" || fail "task did not start"
kill -KILL "$LAST_AGENT_PID"
sleep 0.5
start_agent node-a
icos wait "$id" --timeout 30 || { icos job "$id"; fail "adopted task did not succeed"; }
[ "$(wc -l < "$E2E_DIR/marker")" = 1 ] || fail "task ran more than once"
icos logs "$id" | grep -q finished || fail "log of the adopted task is missing"
echo "PASS agent_restart"
