#!/usr/bin/env bash
# TLS for the API (docs/deploy.md, "TLS"): `icos tls init`, a controller
# serving HTTPS, an agent and the CLI trusting its CA (--ca-cert,
# ICOS_CA_CERT, config.json), every way of getting it wrong refused with a
# message that names the problem, no token on the wire in clear text, and
# `icos up --tls` working from config.json alone.
source "$(dirname "$0")/lib.sh"

# expect_error WHAT PATTERN CMD...: CMD must fail and say PATTERN.
expect_error() {
  local what=$1 pattern=$2; shift 2
  local out
  if out=$("$@" 2>&1); then fail "$what succeeded: $out"; fi
  grep -qF -- "$pattern" <<< "$out" || fail "$what: the error does not say '$pattern': $out"
}

# 1. icos tls init: a CA and a server certificate; never overwrites.
TLS=$E2E_DIR/tls
icos tls init --dir "$TLS" --host localhost,127.0.0.1 > "$E2E_DIR/tls-init.log" || fail "icos tls init failed"
grep -q "for DNS:localhost, IP:127.0.0.1" "$E2E_DIR/tls-init.log" || fail "tls init does not say the names: $(cat "$E2E_DIR/tls-init.log")"
for f in ca.key server.key; do [ "$(stat -c %a "$TLS/$f")" = 600 ] || fail "$f is $(stat -c %a "$TLS/$f"), want 600"; done
for f in ca.crt server.crt; do [ "$(stat -c %a "$TLS/$f")" = 644 ] || fail "$f is $(stat -c %a "$TLS/$f"), want 644"; done
openssl verify -CAfile "$TLS/ca.crt" "$TLS/server.crt" >/dev/null || fail "server.crt does not verify against ca.crt"
expect_error "a second tls init" "$TLS/server.crt already exists" icos tls init --dir "$TLS" --host localhost
icos tls init --dir "$E2E_DIR/other" --host localhost,127.0.0.1 >/dev/null  # another cluster's CA
icos tls init --dir "$E2E_DIR/elsewhere" --host elsewhere.example >/dev/null  # a certificate for another name

# 2. Server flags: both files or neither, and a key that fits.
expect_error "--tls-cert alone" "give both --tls-cert FILE and --tls-key FILE" \
  icos server --port 0 --data-dir "$E2E_DIR/x" --tls-cert "$TLS/server.crt"
expect_error "a key of another certificate" "is not the private key of $TLS/server.crt" \
  icos server --port 0 --data-dir "$E2E_DIR/x" --tls-cert "$TLS/server.crt" --tls-key "$E2E_DIR/other/server.key"
expect_error "a missing certificate" "$E2E_DIR/none.crt does not exist" \
  icos server --port 0 --data-dir "$E2E_DIR/x" --tls-cert "$E2E_DIR/none.crt" --tls-key "$TLS/server.key"
# A plain API on every address warns once that tokens cross in clear text.
PLAIN_PORT=$(free_port)
"$ICOS_BIN" server --host 0.0.0.0 --port "$PLAIN_PORT" --data-dir "$E2E_DIR/plain" > "$E2E_DIR/plain.log" 2>&1 &
PIDS+=($!)
wait_until 20 grep -q listening "$E2E_DIR/plain.log" || fail "the plain server did not start: $(cat "$E2E_DIR/plain.log")"
[ "$(grep -c "tokens cross the network in clear text" "$E2E_DIR/plain.log")" = 1 ] ||
  fail "no (single) clear-text warning for --host 0.0.0.0: $(cat "$E2E_DIR/plain.log")"

SERVER_FLAGS=(--tls-cert "$TLS/server.crt" --tls-key "$TLS/server.key")
start_server
[[ $ICOS_SERVER == https://127.0.0.1:* ]] || fail "ICOS_SERVER is $ICOS_SERVER"
grep -q "listening on https://127.0.0.1:$PORT" "$E2E_DIR/server.log" ||
  fail "the server does not say https: $(cat "$E2E_DIR/server.log")"
grep -q "clear text" "$E2E_DIR/server.log" && fail "a TLS server warned about clear text"
ADMIN=$(cat "$ICOS_HOME/admin.token")
JOIN=$(cat "$ICOS_HOME/agent.token")

# 3. The CLI: without the CA, with another CA, over plain HTTP: refused,
#    saying why; with --ca-cert or ICOS_CA_CERT: served.
expect_error "the CLI without a CA" "is not trusted" icos jobs
expect_error "the CLI trusting another CA" "(CN=localhost,O=icos, issued by CN=icos CA" \
  icos jobs --ca-cert "$E2E_DIR/other/ca.crt"
expect_error "the CLI trusting another CA" "only the CA in $E2E_DIR/other/ca.crt" icos jobs --ca-cert "$E2E_DIR/other/ca.crt"
expect_error "plain http to the TLS port" "speaks HTTPS only" icos jobs --server "http://127.0.0.1:$PORT"
expect_error "a CA for an http:// server" "is plain http://" icos jobs --server "http://127.0.0.1:$PORT" --ca-cert "$TLS/ca.crt"
icos jobs --ca-cert "$TLS/ca.crt" > /dev/null || fail "the CLI with --ca-cert was refused"
ICOS_CA_CERT=$TLS/ca.crt icos nodes > /dev/null || fail "the CLI with ICOS_CA_CERT was refused"

# 4. curl: with the CA, served; without it, or over plain HTTP, not.
curl -sf --cacert "$TLS/ca.crt" -H "Authorization: Bearer $ADMIN" "$ICOS_SERVER/api/v1/jobs" > /dev/null ||
  fail "curl with the CA was refused"
curl -sf -o /dev/null "$ICOS_SERVER/api/v1/jobs" && fail "curl without the CA was served"
status=$(curl -s -o "$E2E_DIR/body" -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/jobs") || true
[ "$status" = 400 ] && grep -q "speaks HTTPS only" "$E2E_DIR/body" ||
  fail "plain http to the TLS port got $status: $(cat "$E2E_DIR/body")"

# 5. A certificate for another name is refused, naming the names it has.
NAMED_PORT=$(free_port)
"$ICOS_BIN" server --port "$NAMED_PORT" --data-dir "$E2E_DIR/named" --tls-cert "$E2E_DIR/elsewhere/server.crt" \
  --tls-key "$E2E_DIR/elsewhere/server.key" > "$E2E_DIR/named.log" 2>&1 &
PIDS+=($!)
wait_until 20 grep -q listening "$E2E_DIR/named.log" || fail "the misnamed server did not start: $(cat "$E2E_DIR/named.log")"
grep -q "names DNS:elsewhere.example, not 127.0.0.1" "$E2E_DIR/named.log" ||
  fail "no warning that the certificate does not name the advertised host: $(cat "$E2E_DIR/named.log")"
expect_error "a certificate for another name" "is for DNS:elsewhere.example, not for '127.0.0.1'" \
  icos jobs --server "https://127.0.0.1:$NAMED_PORT" --ca-cert "$E2E_DIR/elsewhere/ca.crt"
curl -sf -o /dev/null --cacert "$E2E_DIR/elsewhere/ca.crt" "https://127.0.0.1:$NAMED_PORT/api/v1/jobs" &&
  fail "curl accepted a certificate for another name"

# 6. Agents: without the CA, refused at once and saying why; with it, the
#    node joins over HTTPS and runs a job.
start=$(date +%s)
expect_error "an agent without the CA" "is not trusted" timeout 30 "$ICOS_BIN" agent --server "$ICOS_SERVER" \
  --token "$JOIN" --node-name untrusting --work-dir "$E2E_DIR/agent-untrusting"
[ $(( $(date +%s) - start )) -lt 10 ] || fail "the untrusting agent took $(( $(date +%s) - start )) s to give up"
expect_error "an agent with a CA and an http:// server" "is plain http://" "$ICOS_BIN" agent \
  --server "http://127.0.0.1:$PORT" --ca-cert "$TLS/ca.crt" --token "$JOIN" --work-dir "$E2E_DIR/agent-x"
start_agent n1 --ca-cert "$TLS/ca.crt"
grep -q "joined https://127.0.0.1:$PORT" "$E2E_DIR/agent-n1.log" || fail "agent log: $(cat "$E2E_DIR/agent-n1.log")"
export ICOS_CA_CERT=$TLS/ca.crt
cat > "$E2E_DIR/job.yaml" <<'YAML'
name: over-tls
tasks:
  - command: ["sh", "-c", "echo hello over tls"]
    resources: {cpu: 0.5, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
icos wait "$id" --timeout 60 || fail "job $id ended $(job_field "$id" state)"
[ "$(job_field "$id" state)" = Succeeded ] || fail "job $id is $(job_field "$id" state)"
icos logs "$id" | grep -q "hello over tls" || fail "job $id's log: $(icos logs "$id" 2>&1)"

# 7. No token crosses the wire in clear text: a relay between clients and
#    the API records every byte both ways (tcpdump is not needed); the CLI
#    (admin token) and an agent (join token, then its credential) talk
#    through it. A canary sent over plain HTTP shows the relay does see
#    clear text when there is some.
RELAY_PORT=$(free_port)
WIRE=$E2E_DIR/wire.bin
/usr/bin/python3 - "$RELAY_PORT" "$PORT" "$WIRE" <<'PY' > "$E2E_DIR/relay.log" 2>&1 &
import os, signal, socket, sys, threading
# A background job of a script starts with SIGINT ignored; cleanup ends it with SIGINT.
signal.signal(signal.SIGINT, lambda *_: os._exit(0))
listen_port, target_port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
wire = open(path, "ab", buffering=0)
def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            with lock:
                wire.write(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(64)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", target_port))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
PY
PIDS+=($!)
wait_until 10 bash -c "</dev/tcp/127.0.0.1/$RELAY_PORT" || fail "the relay did not start: $(cat "$E2E_DIR/relay.log")"
RELAYED=https://127.0.0.1:$RELAY_PORT
ICOS_SERVER=$RELAYED icos jobs > /dev/null || fail "the CLI through the relay was refused"
ICOS_SERVER=$RELAYED start_agent relayed --ca-cert "$TLS/ca.crt"
sleep 3  # heartbeats and watches with the node's own credential
CRED=$(cat "$E2E_DIR/agent-relayed/node.credential")
curl -s -o /dev/null "http://127.0.0.1:$RELAY_PORT/api/v1/jobs" -H "Authorization: Bearer canary-$$" || true
grep -qaF "canary-$$" "$WIRE" || fail "the relay saw no clear text (the check below would prove nothing)"
[ "$(stat -c %s "$WIRE")" -gt 4000 ] || fail "the relay saw only $(stat -c %s "$WIRE") bytes"
for secret in "$ADMIN" "$JOIN" "$CRED"; do
  grep -qaF "$secret" "$WIRE" && fail "a token crossed the wire in clear text"
done
if command -v tcpdump > /dev/null; then
  tcpdump -i lo -U -w "$E2E_DIR/lo.pcap" "tcp port $PORT" > "$E2E_DIR/tcpdump.log" 2>&1 &
  TCPDUMP=$!
  wait_until 10 grep -q "listening on" "$E2E_DIR/tcpdump.log" || fail "tcpdump did not start: $(cat "$E2E_DIR/tcpdump.log")"
  icos jobs > /dev/null
  sleep 1
  kill -TERM "$TCPDUMP"; wait "$TCPDUMP" || true  # TERM: a background job ignores INT
  [ "$(stat -c %s "$E2E_DIR/lo.pcap")" -gt 1000 ] || fail "tcpdump captured nothing"
  grep -qaF "$ADMIN" "$E2E_DIR/lo.pcap" && fail "tcpdump saw the admin token in clear text"
else
  echo "tcpdump not installed: the relay's record stands for it"
fi

# 8. icos up --tls: makes its CA and certificate, serves HTTPS, and the CLI
#    works from config.json alone.
export ICOS_HOME=$E2E_DIR/up-home
mkdir -p "$ICOS_HOME"
unset ICOS_CA_CERT
start_up --tls
grep -q "API:         https://127.0.0.1:$PORT" "$E2E_DIR/up.log" || fail "up does not show an https API: $(cat "$E2E_DIR/up.log")"
grep -q "join a node: icos agent --server https://.* --ca-cert $ICOS_HOME/tls/ca.crt --token" "$E2E_DIR/up.log" ||
  fail "up's join command has no --ca-cert: $(cat "$E2E_DIR/up.log")"
/usr/bin/python3 -c "import json,sys; c=json.load(open('$ICOS_HOME/config.json')); sys.exit(0 if c['ca_cert']=='$ICOS_HOME/tls/ca.crt' and c['server'].startswith('https://') else 1)" ||
  fail "config.json: $(cat "$ICOS_HOME/config.json")"
env -u ICOS_SERVER -u ICOS_TOKEN -u ICOS_CA_CERT "$ICOS_BIN" nodes > "$E2E_DIR/up-nodes.txt" ||
  fail "icos nodes from config.json failed"
grep -q Ready "$E2E_DIR/up-nodes.txt" || fail "up's own agent did not join over https: $(cat "$E2E_DIR/up-nodes.txt")"
id=$(env -u ICOS_SERVER -u ICOS_TOKEN "$ICOS_BIN" submit "$E2E_DIR/job.yaml" | awk '{print $2}')
env -u ICOS_SERVER -u ICOS_TOKEN "$ICOS_BIN" wait "$id" --timeout 60 || fail "job $id under icos up --tls did not succeed"
env -u ICOS_SERVER -u ICOS_TOKEN "$ICOS_BIN" jobs --all | grep -q "over-tls.*Succeeded" || fail "icos jobs does not list job $id"
echo "PASS"
