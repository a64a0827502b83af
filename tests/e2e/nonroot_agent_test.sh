#!/usr/bin/env bash
# An agent that is not root (`icos up` on a laptop, or a node run by a user):
# it cannot switch users, so it runs tasks as itself and says so in the
# task's reason, or refuses other users' tasks when told to.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (to create the test users)"; exit 77; }
C=icosc$$; A=icosa$$
useradd -m "$C"; useradd -m "$A"
# The users go after the cluster and their tasks have stopped (userdel refuses
# a user with processes; under set -e that failure would be the test's status).
trap 'rc=$?; set +e; cleanup $rc; pkill -KILL -u "$C"; pkill -KILL -u "$A"; sleep 0.2
      userdel -r "$C" 2>/dev/null; userdel -r "$A" 2>/dev/null; exit $rc' EXIT
share_with_test_users
start_server
alice=$(icos token create --role user --user "$A")
carol=$(icos token create --role user --user "$C")
chmod 0755 "$E2E_DIR"
agent_as_carol() {  # NAME FLAGS...: an agent run by carol, in a work dir of hers
  local name=$1; shift
  install -d -o "$C" -m 0700 "$E2E_DIR/agent-$name"
  runuser -u "$C" -- "$ICOS_BIN" agent --server "$ICOS_SERVER" --token "$(cat "$ICOS_HOME/agent.token")" \
    --node-name "$name" --work-dir "$E2E_DIR/agent-$name" --jobs-dir "$E2E_DIR/agent-$name/jobs" --cpus 2 "$@" \
    > "$E2E_DIR/agent-$name.log" 2>&1 &
  PIDS+=($!)
  wait_until 20 grep -q "joined" "$E2E_DIR/agent-$name.log" || fail "carol's agent did not join: $(cat "$E2E_DIR/agent-$name.log")"
}
agent_as_carol laptop --labels who=laptop
grep -q "not running as root, so every task runs as this agent's own user" "$E2E_DIR/agent-laptop.log" ||
  fail "the agent does not say how it runs tasks: $(cat "$E2E_DIR/agent-laptop.log")"
printf 'tasks:\n  - command: ["id", "-un"]\n    node_selector: {who: laptop}\n    resources: {cpu: 0.5, memory: 32Mi}\n' > "$E2E_DIR/whoami.yaml"
# Her own task: as herself, nothing to say.
id=$(ICOS_TOKEN=$carol icos submit "$E2E_DIR/whoami.yaml" | awk '{print $2}')
ICOS_TOKEN=$carol icos wait "$id" --timeout 30 || fail "carol's job: $(icos job "$id")"
[ "$(icos logs "$id")" = "$C" ] || fail "carol's task ran as $(icos logs "$id")"
# Alice's task: as carol, and the task says why.
id=$(ICOS_TOKEN=$alice icos submit "$E2E_DIR/whoami.yaml" | awk '{print $2}')
ICOS_TOKEN=$alice icos wait "$id" --timeout 30 || fail "alice's job: $(icos job "$id")"
[ "$(icos logs "$id")" = "$C" ] || fail "alice's task on carol's agent ran as $(icos logs "$id")"
icos job "$id" | grep -q "the agent is not root" || fail "alice's task does not say whose it ran as: $(icos job "$id")"
# Told to refuse: alice's task fails with the reason; carol's still runs.
printf 'tasks:\n  - command: ["id", "-un"]\n    node_selector: {who: strict}\n    resources: {cpu: 0.5, memory: 32Mi}\n' > "$E2E_DIR/strict.yaml"
agent_as_carol strict --labels who=strict --foreign-tasks refuse
id=$(ICOS_TOKEN=$alice icos submit "$E2E_DIR/strict.yaml" | awk '{print $2}')
ICOS_TOKEN=$alice icos wait "$id" --timeout 30 && fail "alice's task ran on an agent that refuses others"
icos job "$id" | grep -q "runs only its own user's tasks" || fail "unclear refusal: $(icos job "$id")"
id=$(ICOS_TOKEN=$carol icos submit "$E2E_DIR/strict.yaml" | awk '{print $2}')
ICOS_TOKEN=$carol icos wait "$id" --timeout 30 || fail "carol's job on her strict agent: $(icos job "$id")"
echo "PASS nonroot_agent"
