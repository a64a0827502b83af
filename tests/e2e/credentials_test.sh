#!/usr/bin/env bash
# Node credentials and token lifecycle (docs/security.md): the attacks an
# outside test made with the one shared agent token, tried again with what a
# node now holds, and tokens that expire or are revoked stop working at once.
source "$(dirname "$0")/lib.sh"
start_server
start_agent node-a
start_agent node-b
ADMIN=$(cat "$ICOS_HOME/admin.token")
JOIN=$(cat "$ICOS_HOME/agent.token")
CRED_FILE="$E2E_DIR/agent-node-a/node.credential"
[ -f "$CRED_FILE" ] || fail "node-a keeps no credential in its work dir"
[ "$(stat -c %a "$CRED_FILE")" = 600 ] || fail "node.credential is $(stat -c %a "$CRED_FILE"), want 600"
CRED=$(cat "$CRED_FILE")
[ "$CRED" != "$JOIN" ] || fail "the node's credential is the join token"
# The agent's command line carries no secret (ps shows it to every user).
ps -o args= -p "$LAST_AGENT_PID" | grep -q "icos_" && fail "a token shows in the agent's command line"

# call TOKEN METHOD PATH [BODY] -> prints the HTTP status
call() {
  curl -s -o "$E2E_DIR/body" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
    ${4:+-H 'Content-Type: application/json' --data "$4"} "$ICOS_SERVER$3"
}
cat > "$E2E_DIR/job.yaml" <<YAML
name: secret-job
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 0.5, memory: 64Mi}
    env: {WANDB_API_KEY: wandb-secret-$$}
YAML
id=$(submit "$E2E_DIR/job.yaml")
wait_until 20 bash -c "[ \"\$(icos job $id -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Running ]" ||
  fail "job $id did not start"
node=$(icos job "$id" -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["node"])')
other=node-a; [ "$node" = node-a ] && other=node-b

# 1. Neither the join token nor a node credential reads jobs.
for t in "$JOIN" "$CRED"; do
  [ "$(call "$t" GET /api/v1/jobs/$id)" = 403 ] || fail "a node token read job $id: $(cat "$E2E_DIR/body")"
  [ "$(call "$t" GET /api/v1/jobs)" = 403 ] || fail "a node token listed jobs"
  grep -q "wandb-secret" "$E2E_DIR/body" && fail "a node token saw a job's secret"
done
# 2. A credential speaks only for its own node: a spoofed heartbeat for the
#    job's node (reporting its task lost) is refused and the job runs on.
cred_other=$(cat "$E2E_DIR/agent-$other/node.credential")
status=$(call "$cred_other" POST "/api/v1/nodes/$node/heartbeat" '{"tasks": []}')
[ "$status" = 403 ] || fail "node $other's credential sent a heartbeat for $node (HTTP $status)"
[ "$(call "$JOIN" POST "/api/v1/nodes/$node/heartbeat" '{"tasks": []}')" = 403 ] ||
  fail "the join token sent a heartbeat"
sleep 2
[ "$(job_field "$id" state)" = Running ] || fail "job $id is $(job_field "$id" state) after the spoofed heartbeats"
# 3. The join token cannot take over a name that has a credential.
node_json=$(curl -sf -H "Authorization: Bearer $ADMIN" "$ICOS_SERVER/api/v1/nodes" |
  /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["nodes"][0]["node"]))')
fake=$(echo "$node_json" | /usr/bin/python3 -c "import json,sys; n=json.load(sys.stdin); n['name']='$node'; print(json.dumps({'node': n, 'address': '127.0.0.1'}))")
status=$(call "$JOIN" POST /api/v1/nodes/register "$fake")
[ "$status" = 409 ] || [ "$status" = 403 ] || fail "the join token re-registered $node (HTTP $status: $(cat "$E2E_DIR/body"))"

# 4. Tokens: list (no secrets), expire, revoke.
alice=$(icos token create --user alice --name alice-laptop --ttl 3s)
icos token list | grep -q alice-laptop || fail "token list does not show alice-laptop"
icos token list -o json | grep -q "$alice" && fail "token list shows a secret"
ICOS_TOKEN=$alice icos jobs >/dev/null || fail "a fresh user token was refused"
sleep 3.5
out=$(ICOS_TOKEN=$alice icos jobs 2>&1) && fail "an expired token still works"
grep -q expired <<< "$out" || fail "an expired token's error does not say so: $out"
bob=$(icos token create --user bob --name bob-ci)
ICOS_TOKEN=$bob icos jobs >/dev/null || fail "bob's token was refused"
icos token revoke bob-ci | grep -q revoked || fail "token revoke did not say what it revoked"
out=$(ICOS_TOKEN=$bob icos jobs 2>&1) && fail "a revoked token still works"
grep -q revoked <<< "$out" || fail "a revoked token's error does not say so: $out"
out=$(icos token revoke no-such-token 2>&1) && fail "revoking an unknown token succeeded"
# Users cannot manage tokens.
carol=$(icos token create --user carol)
ICOS_TOKEN=$carol icos token list >/dev/null 2>&1 && fail "a user listed tokens"
ICOS_TOKEN=$carol icos token create --role admin --user carol >/dev/null 2>&1 && fail "a user made an admin token"

# 5. A revoked node credential: the agent re-joins with the join token and
#    carries on; with the join token revoked too, it cannot.
cred_id=$(icos token list -o json | /usr/bin/python3 -c "
import json,sys
print([t['id'] for t in json.load(sys.stdin)['tokens'] if t.get('node') == 'node-a' and not t['revoked']][0])")
icos token revoke "$cred_id" >/dev/null
wait_until 20 bash -c "[ \"\$(cat '$CRED_FILE')\" != '$CRED' ]" || fail "node-a did not re-join after its credential was revoked"
[ "$(call "$CRED" GET /api/v1/nodes/node-a/assignments)" = 401 ] || fail "a revoked credential still works"
join_id=$(icos token list -o json | /usr/bin/python3 -c "
import json,sys
print([t['id'] for t in json.load(sys.stdin)['tokens'] if t['role'] == 'agent' and not t['revoked']][0])")
icos token revoke "$join_id" >/dev/null
[ "$(call "$JOIN" POST /api/v1/nodes/register "$fake")" = 401 ] || fail "a revoked join token registered a node"
[ "$(job_field "$id" state)" = Running ] || fail "job $id is $(job_field "$id" state) at the end"
echo "PASS credentials"
