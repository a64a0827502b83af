#!/usr/bin/env bash
# Logs of tasks on other machines. The controller, two nodes and the user's
# workstation are four hosts (network namespaces, tests/e2e/netns.sh): each
# has only its own loopback. `icos logs` on the workstation reads, through
# the controller, the log of a task on each node, while it runs and after.
#   node-1 is started with --address: before `--listen`, its log server
#     listened on 127.0.0.1 whatever --address said, so the controller could
#     not reach it and `icos logs` failed with "agent at ... did not answer".
#   node-2 is started with neither: it advertises the address its route to
#     the controller leaves from (its eth0), not 127.0.0.1, and listens there.
# The log servers still refuse a request without their key, and a node that
# registers a loopback address from another machine is refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
netns_init
netns_add ctl
netns_add n1
netns_add n2
netns_add user
netns_start_server ctl
netns_start_agent n1 node-1 --cpus 1 --labels host=n1 --address "$(netns_ip n1)"
netns_start_agent n2 node-2 --cpus 1 --labels host=n2
netns_cli user

two_ready() { [ "$(icos nodes | grep -c Ready)" = 2 ]; }
wait_until 10 two_ready || fail "two nodes did not become ready: $(icos nodes)"

for n in 1 2; do
  cat > "$E2E_DIR/job-$n.yaml" <<YAML
name: logs-on-n$n
tasks:
  - node_selector: {host: n$n}
    command: ["bash", "-c", "echo first line from \$(hostname); sleep 4; echo last line from \$(hostname)"]
    resources: {cpu: 1, memory: 64Mi}
YAML
  id=$(submit "$E2E_DIR/job-$n.yaml")
  [ -n "$id" ] || fail "submit to n$n gave no job id"
  eval "JOB_$n=$id"
done

# While the tasks run: the first line only (the dashboard's live log reads the same way).
for n in 1 2; do
  id_var="JOB_$n"
  job_has_first() { icos logs "$1" 2>&1 | grep -q "first line from n$2"; }
  wait_until 20 job_has_first "${!id_var}" "$n" ||
    fail "no live log of the task on n$n through the controller: $(icos logs "${!id_var}" 2>&1)"
  icos logs "${!id_var}" | grep -q "last line" && fail "the task on n$n ended too early to test a live log"
done
for n in 1 2; do
  id_var="JOB_$n"
  icos wait "${!id_var}" --timeout 30 || fail "job on n$n did not succeed: $(icos job "${!id_var}")"
  out=$(icos logs "${!id_var}" 2>&1)
  grep -q "last line from n$n" <<< "$out" || fail "the finished task's log on n$n is incomplete: $out"
  [ "$(icos job "${!id_var}" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tasks'][0]['node'])")" = "node-$n" ] ||
    fail "job ${!id_var} did not run on node-$n"
done

# What each node advertises is its own address, where the controller reaches it.
for n in 1 2; do
  addr=$(icos nodes -o json | /usr/bin/python3 -c "import json,sys; print([x['address'] for x in json.load(sys.stdin)['nodes'] if x['name']=='node-$n'][0])")
  [ "$addr" = "$(netns_ip n$n)" ] || fail "node-$n advertises '$addr', not its address $(netns_ip n$n)"
  grep -q "joined .* as $(netns_ip n$n) (logs served at http://$(netns_ip n$n):" "$E2E_DIR/agent-node-$n.log" ||
    fail "node-$n does not serve logs at its address: $(cat "$E2E_DIR/agent-node-$n.log")"
done

# The log server wants the key only the controller holds.
log_url=$(grep -o 'logs served at http://[^)]*' "$E2E_DIR/agent-node-2.log" | tail -1 | awk '{print $4}')
task=$(icos job "$JOB_2" -o json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tasks'][0]['task_id'])")
code=$(netns_curl -s -o /dev/null -w '%{http_code}' "$log_url/v1/logs/$task")
[ "$code" = 401 ] || fail "the log server answered $code to a request without its key"
code=$(netns_curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$ICOS_HOME/admin.token")" "$log_url/v1/logs/$task")
[ "$code" = 401 ] || fail "the log server answered $code to a user's token"
# A node that would register loopback from another machine is refused, told why.
netns_add n3
out=$(netns_run n3 timeout 20 "$ICOS_BIN" agent --server "$ICOS_SERVER" --allow-root-tasks --token "$(cat "$ICOS_HOME/agent.token")" \
  --node-name node-3 --work-dir "$E2E_DIR/agent-node-3" --address 127.0.0.1 2>&1) && fail "node-3 joined with address 127.0.0.1: $out"
grep -q "node 'node-3' connects from $(netns_ip n3) but registers address 127.0.0.1" <<< "$out" ||
  fail "node-3 was not told why it cannot join: $out"
echo "PASS netns_logs (live and finished logs of tasks on two remote hosts; node-2 found its own address)"
