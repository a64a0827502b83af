#!/usr/bin/env bash
# Every user is only themself (docs/security.md). Two unprivileged users the
# test creates submit with their own tokens to a root agent; each attack an
# outside test made on icos is tried again and must fail:
#   a task reading the admin token, another user's files, /proc of another
#   job, the agent's environment; leaving its cgroup; leaving a daemon
#   behind; opening a device node it was not given; a priority above its
#   queue's limit.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (to create test users and run a root agent)"; exit 77; }
A=icosa$$; B=icosb$$
useradd -m "$A"; useradd -m "$B"
# The users go after the cluster and their tasks have stopped (userdel refuses
# a user with processes; under set -e that failure would be the test's status).
trap 'rc=$?; set +e; cleanup $rc; pkill -KILL -u "$A"; pkill -KILL -u "$B"; sleep 0.2
      userdel -r "$A" 2>/dev/null; userdel -r "$B" 2>/dev/null; exit $rc' EXIT
share_with_test_users
start_server
ICOS_AGENT_SECRET=agent-env-secret-$$ start_agent node-a --cpus 4
agent_pid=$LAST_AGENT_PID
alice=$(icos token create --role user --user "$A")
bob=$(icos token create --role user --user "$B")
as_alice() { ICOS_TOKEN=$alice icos "$@"; }
as_bob() { ICOS_TOKEN=$bob icos "$@"; }
job_yaml() {  # job_yaml NAME SCRIPT -> file
  printf 'name: %s\ntasks:\n  - command: ["sh", "-c", %s]\n    resources: {cpu: 0.5, memory: 64Mi}\n' \
    "$1" "$(/usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$2")" > "$E2E_DIR/$1.yaml"
  echo "$E2E_DIR/$1.yaml"
}
log_of() { icos logs "$1" 2>/dev/null; }  # admin reads any log
run_as() {  # run_as USER NAME SCRIPT: submits, waits, prints the job id
  local token=$alice; [ "$1" = b ] && token=$bob
  local id; id=$(ICOS_TOKEN=$token icos submit "$(job_yaml "$2" "$3")" | awk '{print $2}')
  ICOS_TOKEN=$token icos wait "$id" --timeout 30 >/dev/null 2>&1 || true
  echo "$id"
}

# Where the tasks (running as the test users) leave what the test reads.
chmod 0755 "$E2E_DIR"
DROP=$E2E_DIR/drop; mkdir -m 1777 "$DROP"

# Bob's job holds a secret in its environment and its directory, and runs.
cat > "$E2E_DIR/bob.yaml" <<YAML
name: bobs-secret
env: {AWS_SECRET_ACCESS_KEY: bob-secret-$$}
tasks:
  - command: ["sh", "-c", "echo bob-file-secret-$$ > \$ICOS_TASK_DIR/secret; echo \$\$ > $DROP/bob.pid; echo \$ICOS_TASK_DIR > $DROP/bob.dir; sleep 120"]
    resources: {cpu: 0.5, memory: 64Mi}
YAML
bob_job=$(ICOS_TOKEN=$bob icos submit "$E2E_DIR/bob.yaml" | awk '{print $2}')
wait_until 20 test -s "$DROP/bob.dir" || fail "bob's job did not start: $(icos job "$bob_job")"
bob_pid=$(cat "$DROP/bob.pid"); bob_dir=$(cat "$DROP/bob.dir")
[ "$(stat -c %U "/proc/$bob_pid")" = "$B" ] || fail "bob's task does not run as $B"

# 1. The admin token and the controller's files.
id=$(run_as a read-admin "cat $ICOS_HOME/admin.token; ls $ICOS_HOME; cat $ICOS_HOME/icos.db | head -c 100; echo done")
log_of "$id" | grep -q "$(cat "$ICOS_HOME/admin.token")" && fail "alice's task read the admin token"
log_of "$id" | grep -q "Permission denied" || fail "no denial reading the data dir: $(log_of "$id")"
[ "$(stat -c %a "$ICOS_HOME")" = 700 ] || fail "ICOS_HOME is $(stat -c %a "$ICOS_HOME")"
# 2. Another user's files.
id=$(run_as a read-bob "cat $bob_dir/secret; ls $(dirname "$bob_dir"); echo done")
log_of "$id" | grep -q "bob-file-secret" && fail "alice read bob's task directory"
[ "$(log_of "$id" | grep -c "Permission denied")" = 2 ] || fail "no denial reading bob's directory: $(log_of "$id")"
# 3. /proc of another job.
id=$(run_as a read-proc "cat /proc/$bob_pid/environ; cat /proc/$bob_pid/cmdline; echo done")
log_of "$id" | grep -q "bob-secret-$$" && fail "alice read bob's environment through /proc"
log_of "$id" | grep -q "Permission denied" || fail "no denial reading bob's /proc: $(log_of "$id")"
# 4. The agent's environment and credentials.
id=$(run_as a read-agent "env; cat /proc/$agent_pid/environ; ps -eo args; echo done")
log_of "$id" | grep -q "agent-env-secret-$$" && fail "the agent's environment reached alice's task"
log_of "$id" | grep -q "$(cat "$ICOS_HOME/agent.token")" && fail "the agent token is visible to tasks"
log_of "$id" | grep -q "^USER=$A$" || fail "alice's task does not know it is $A: $(log_of "$id")"
# 5. Leaving its cgroup (on v1 here; every hierarchy the task is in).
id=$(run_as a escape "for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do [ -e \$f ] && echo \$\$ > \$f 2>/dev/null && echo ESCAPED \$f; done; cat /proc/self/cgroup; echo done")
log_of "$id" | grep -q ESCAPED && fail "alice's task moved itself out of its cgroup: $(log_of "$id")"
# 6. A daemon left behind ends with the job.
id=$(run_as a daemon "setsid sh -c 'echo \$\$ > $DROP/daemon.pid; exec sleep 1000' & sleep 0.5; echo done")
wait_until 10 test -s "$DROP/daemon.pid" || fail "the daemon did not start"
wait_until 15 bash -c "! kill -0 $(cat "$DROP/daemon.pid") 2>/dev/null" || fail "alice's setsid daemon outlived her job"
# 7. A device node it was not given (the numbers of /dev/kmsg, not in the defaults).
mknod -m 0666 "$E2E_DIR/fakedev" c 1 11
id=$(run_as a device "head -c 1 $E2E_DIR/fakedev && echo OPENED; echo done")
log_of "$id" | grep -q OPENED && fail "alice's task opened a device node it was not given"
log_of "$id" | grep -q "Operation not permitted" || fail "no device-controller denial: $(log_of "$id")"
# 8. A priority above the queue's limit.
printf 'priority: 50\ntasks:\n  - command: ["true"]\n' > "$E2E_DIR/prio.yaml"
out=$(as_alice submit "$E2E_DIR/prio.yaml" 2>&1) && fail "alice got priority 50 in a queue with limit 0: $out"
echo "$out" | grep -q "above queue 'default''s limit of 0" || fail "unclear refusal: $out"
echo '{"name": "default", "max_priority": 100}' | icos queue put - >/dev/null
as_alice submit "$E2E_DIR/prio.yaml" >/dev/null || fail "priority 50 refused after the admin raised the limit"
# Bob's job was never disturbed.
[ "$(job_field "$bob_job" state)" = Running ] || fail "bob's job: $(icos job "$bob_job")"
echo "PASS tenancy"
