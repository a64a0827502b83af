#!/usr/bin/env bash
# Webhooks (docs/api.md "Webhooks"): a job's notify: reaches a real HTTP
# endpoint, signed, at least once; a message owed while the endpoint is down
# survives a kill -9 of the controller and is delivered after the restart; a
# host the admin did not allow is refused at submit.
source "$(dirname "$0")/lib.sh"

HOOK_PORT=$(free_port)
HOOK_LOG="$E2E_DIR/hooks.jsonl"
# The endpoint: records each POST (headers and body) as one JSON line.
cat > "$E2E_DIR/receiver.py" <<'PY'
import http.server, json, sys
log = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "delivery": self.headers.get("Icos-Delivery"),
                                "signature": self.headers.get("Icos-Signature"), "body": body}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
start_receiver() {
  /usr/bin/python3 "$E2E_DIR/receiver.py" "$HOOK_PORT" "$HOOK_LOG" > "$E2E_DIR/receiver.log" 2>&1 &
  RECEIVER_PID=$!
  PIDS+=($RECEIVER_PID)
  wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HOOK_PORT" || fail "receiver did not start"
}
printf 'hook-secret\n' > "$E2E_DIR/hook.key"
UP_FLAGS=(--notify-allow 127.0.0.1 --notify-secret-file "$E2E_DIR/hook.key")
start_up "${UP_FLAGS[@]}"
start_receiver

# events_of JOB: the events delivered for JOB, in order, after checking each
# message's signature.
events_of() {
  /usr/bin/python3 - "$HOOK_LOG" "$1" <<'PY'
import hashlib, hmac, json, sys
out = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    want = "sha256=" + hmac.new(b"hook-secret", m["body"].encode(), hashlib.sha256).hexdigest()
    if m["signature"] != want:
        sys.exit("bad signature on delivery %s" % m["delivery"])
    body = json.loads(m["body"])
    if str(body["job"]["id"]) == sys.argv[2]:
        out.append(body["event"])
print(" ".join(out))
PY
}

cat > "$E2E_DIR/ok.yaml" <<YAML
notify: http://127.0.0.1:$HOOK_PORT/hook
tasks: [{command: ["true"], resources: {cpu: 0.1, memory: 16Mi}}]
YAML
id=$(submit "$E2E_DIR/ok.yaml")
icos wait "$id" --timeout 30 || fail "job $id did not succeed"
wait_until 15 bash -c "grep -q succeeded <<< \"\$(cat '$HOOK_LOG')\"" || fail "no 'succeeded' message: $(cat "$HOOK_LOG" 2>/dev/null)"
got=$(events_of "$id")
[ "$got" = "started succeeded" ] || fail "job $id: expected 'started succeeded', got '$got'"

# A host the admin did not allow: refused, saying how to allow it.
cat > "$E2E_DIR/ssrf.yaml" <<'YAML'
notify: http://169.254.169.254/latest/meta-data
tasks: [{command: ["true"]}]
YAML
if out=$(icos submit "$E2E_DIR/ssrf.yaml" 2>&1); then fail "a webhook to a host not allowed was accepted: $out"; fi
grep -q -- "--notify-allow" <<< "$out" || fail "refusal does not say how to allow hosts: $out"

# The endpoint goes down; a job fails with its message owed; the controller
# is killed -9 before it could deliver; after the restart the message arrives.
kill -KILL "$RECEIVER_PID"
cat > "$E2E_DIR/fail.yaml" <<YAML
notify: {url: "http://127.0.0.1:$HOOK_PORT/hook", on: [fail]}
tasks: [{command: ["false"], resources: {cpu: 0.1, memory: 16Mi}}]
YAML
id2=$(submit "$E2E_DIR/fail.yaml")
icos wait "$id2" --timeout 30 && fail "job $id2 should fail"
sleep 1  # the message committed with the failure: it waits in the outbox
kill -KILL "$UP_PID"
wait "$UP_PID" 2>/dev/null || true
start_receiver
"$ICOS_BIN" up --port "$PORT" --data-dir "$ICOS_HOME" --work-dir "$E2E_DIR/agent-local" "${UP_FLAGS[@]}" >> "$E2E_DIR/up.log" 2>&1 &
PIDS+=($!)
wait_until 30 bash -c "grep -q failed <<< \"\$(cat '$HOOK_LOG' 2>/dev/null)\"" ||
  fail "the owed 'failed' message was not delivered after the restart: $(cat "$HOOK_LOG" 2>/dev/null)"
got=$(events_of "$id2")
[ "$got" = "failed" ] || fail "job $id2: expected 'failed' (on: [fail] only), got '$got'"
echo "PASS webhook (job $id: started succeeded; job $id2: failed delivered after kill -9 and restart)"
