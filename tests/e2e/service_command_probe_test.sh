#!/usr/bin/env bash
# Command probes (issue #22): a service's readiness and liveness probes that
# are programs, run by the replica's agent on its node in the replica's
# context (its user, cgroup, directory and environment) and reported in
# heartbeats. The replica is not ready until its command passes, and the
# endpoint says what the command printed meanwhile; a liveness command that
# fails restarts the replica, saying why.
source "$(dirname "$0")/lib.sh"
start_up
cat >"$E2E_DIR/service.yaml" <<YAML
name: probed
kind: service
service:
  replicas: 1
  readiness:
    command: [/bin/sh, -c, 'test -f "\$ICOS_TASK_DIR/loaded" && [ "\$(id -u)" = "\$(cat uid)" ] && cat /proc/self/cgroup | cmp -s - cgroup || { echo "model not loaded yet in \$PWD"; exit 1; }']
    period: 1s
  liveness:
    command: [/bin/sh, -c, 'test ! -f "$E2E_DIR/sick" || { echo "the model server is wedged"; exit 1; }']
    period: 1s
    failure_threshold: 2
tasks:
  # The test's directory as an argument: the cleanup finds the replica by it.
  - command: [/bin/sh, -c, 'id -u > uid; cat /proc/self/cgroup > cgroup; sleep 3; touch "\$ICOS_TASK_DIR/loaded"; exec sleep 600', "$E2E_DIR"]
    resources: {cpu: 500m, memory: 256Mi}
YAML
line=$(icos submit "$E2E_DIR/service.yaml") || fail "service submission failed"
svc=$(echo "$line" | sed -n 's/^service \([0-9]*\) submitted.*/\1/p')
[ -n "$svc" ] || fail "unexpected submission reply: $line"

# Running, probed on its node, and not ready while the command fails: its
# endpoint says what the command printed (run in the replica's directory).
wait_until 30 sh -c "\"$ICOS_BIN\" endpoints $svc | grep -q 'model not loaded yet in /'" ||
  fail "the endpoint does not show the failing command's output: $(icos endpoints "$svc")"
[ -z "$(icos endpoints "$svc" --ready)" ] || fail "the replica was ready before its command passed"
# Ready once the command passes: as the replica's user, in its cgroup.
wait_until 30 sh -c "[ -n \"\$(\"$ICOS_BIN\" endpoints $svc --ready)\" ]" ||
  fail "the replica did not turn ready: $(icos endpoints "$svc")"
job=$(icos endpoints "$svc" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['endpoints'][0]['job'])")

# A liveness command that fails twice in a row: the replica is restarted, saying why.
touch "$E2E_DIR/sick"
wait_until 30 sh -c "\"$ICOS_BIN\" job $job | grep -q 'its liveness probe failed.*the model server is wedged'" ||
  fail "the wedged replica was not restarted by its liveness command: $(icos job "$job")"
rm -f "$E2E_DIR/sick"
wait_until 60 sh -c "[ \"\$(\"$ICOS_BIN\" endpoints $svc -o json | /usr/bin/python3 -c \"import json,sys; e=json.load(sys.stdin)['endpoints'][0]; print(e['attempt'], e['ready'])\")\" = '1 True' ]" ||
  fail "the restarted replica did not come back ready: $(icos endpoints "$svc" -o json)"
icos cancel "$svc" >/dev/null || fail "cancelling the service failed"
echo "PASS service_command_probe (a readiness command gated the replica and showed its output until it passed as the replica's user in its cgroup; a failing liveness command restarted it)"
