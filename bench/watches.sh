#!/usr/bin/env bash
# How many assignment watches one controller holds: N long polls
# (GET /api/v1/nodes/{name}/assignments?wait_ms=25000, as N agents would
# each hold one) open at once from one client, while authorised calls are
# timed; then one change to the node answers them all.
# Prints one line:
#   watches=N waiting=N api_p50_ms=X api_p99_ms=X all_answered_s=S answered=N
# Usage: bench/watches.sh [N]   (default 10000; needs a release build and an
# open-file limit above N for this shell: ulimit -n)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
ICOS=${ICOS:-$BIN/src/cli/icos}
n=${1:-10000}
work=$(mktemp -d /tmp/icos-watches.XXXXXX)
server_pid=
trap '[ -n "$server_pid" ] && kill -INT $server_pid 2>/dev/null; sleep 1; rm -rf "$work"' EXIT
export ICOS_HOME=$work/home
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Every watch comes from 127.0.0.1 and a waiting watch is never evicted: the
# per-address cap must hold them all.
# shellcheck disable=SC2086
"$ICOS" server --port "$port" --data-dir "$ICOS_HOME" --max-connections-per-address $((n + 1000)) \
  --max-connections $((n + 2000)) ${SERVER_FLAGS:-} > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
/usr/bin/python3 - "$port" "$(cat "$ICOS_HOME/admin.token")" "$n" <<'PY'
import json, selectors, socket, sys, time, urllib.request
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
base = "http://127.0.0.1:%d" % port
def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(base + path, data=body.encode() if body else None, method=method,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    return json.load(urllib.request.urlopen(req, timeout=30))
node = {"name": "watched", "cpu_milli": 4000, "memory_mib": 4096, "devices": []}
call("POST", "/api/v1/nodes/register", json.dumps({"node": node, "address": "127.0.0.1",
                                                  "agent_url": "http://127.0.0.1:9", "log_key": "k"}))
version = call("GET", "/api/v1/nodes/watched/assignments?since=0")["version"]
request = ("GET /api/v1/nodes/watched/assignments?since=%d&wait_ms=25000 HTTP/1.1\r\nHost: x\r\n"
           "Authorization: Bearer %s\r\n\r\n" % (version, token)).encode()
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
def waiting():
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("icos_http_waiting_watches "):
                return int(float(line.split()[1]))
    return -1
deadline = time.time() + 60
while waiting() < n and time.time() < deadline:
    time.sleep(0.2)
held = waiting()
lat = []
for i in range(200):
    t = time.perf_counter()
    call("GET", "/api/v1/whoami")
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
# One job for the node: its version moves and every watch must answer.
t = time.perf_counter()
call("POST", "/api/v1/jobs", "tasks:\n  - command: [\"true\"]\n    resources: {cpu: 0.1}\n", "application/yaml")
answered = 0
buf = {}
while answered < n and time.perf_counter() - t < 30:
    for key, _ in sel.select(1):
        data = key.fileobj.recv(65536)
        got = buf.get(key.fileobj, b"") + data
        buf[key.fileobj] = got
        if b"\r\n\r\n" in got or not data:
            sel.unregister(key.fileobj)
            answered += got.startswith(b"HTTP/1.1 200")
all_answered = time.perf_counter() - t
print("watches=%d waiting=%d api_p50_ms=%.1f api_p99_ms=%.1f all_answered_s=%.2f answered=%d" %
      (n, held, lat[len(lat) // 2], lat[int(0.99 * (len(lat) - 1))], all_answered, answered))
PY
