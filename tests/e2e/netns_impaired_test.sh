#!/usr/bin/env bash
# A slow, lossy network between the controller and everyone else: the
# controller's host gets +25 ms and 1% loss each way (50 ms round trips,
# about 2% of them losing a packet), the distance of a far rack or another
# building. Two nodes and the user's workstation are their own hosts
# (tests/e2e/netns.sh). Nodes join and stay Ready (heartbeats keep
# arriving), jobs submitted from the workstation are placed, watched and
# finished (watches), and the API's latency from the workstation is printed:
# one line per way of calling it, p50/p99/max, the p99 the figure to watch.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
netns_init
netns_add ctl
netns_add n1
netns_add n2
netns_add user
netns_impair ctl 25 1
netns_start_server ctl
netns_start_agent n1 node-1 --cpus 4 --labels host=n1
netns_start_agent n2 node-2 --cpus 4 --labels host=n2
netns_cli user
two_ready() { [ "$(icos nodes | grep -c Ready)" = 2 ]; }
wait_until 20 two_ready || fail "two nodes did not become ready: $(icos nodes)"

# Heartbeats: sampled in the background for the rest of the test.
cat > "$E2E_DIR/beats.py" <<'PY'
import json, signal, subprocess, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))  # in the background SIGINT is ignored otherwise
worst = 0
while True:
    try:
        out = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=10).stdout
        now = time.time() * 1000
        for n in json.loads(out)["nodes"]:
            if n["state"] != "Ready":
                print(f"NOT READY {n['name']} {n['state']}", flush=True)
            worst = max(worst, now - n["heartbeat_ms"])
        print(f"worst heartbeat age {worst / 1000:.1f} s", flush=True)
    except Exception as e:  # a lost request is retried at the next sample
        print(f"sample failed: {e}", flush=True)
    time.sleep(1)
PY
nsenter --net="$ICOS_CLI_NETNS" -- /usr/bin/python3 "$E2E_DIR/beats.py" "$ICOS_BIN" nodes -o json > "$E2E_DIR/beats.log" 2>&1 &
PIDS+=($!)

# Submissions and watches: 12 short jobs, half on each node.
for n in 1 2; do
  cat > "$E2E_DIR/job-$n.yaml" <<YAML
name: short
tasks:
  - node_selector: {host: n$n}
    command: ["bash", "-c", "echo ran on \$(hostname)"]
    resources: {cpu: 100m, memory: 16Mi}
YAML
done
start=$(date +%s.%N)
ids=()
for i in $(seq 12); do ids+=("$(submit "$E2E_DIR/job-$((i % 2 + 1)).yaml")"); done
for id in "${ids[@]}"; do
  icos wait "$id" --timeout 60 >/dev/null || fail "job $id did not succeed over the slow network: $(icos job "$id")"
done
jobs_s=$(/usr/bin/python3 -c "import time; print(f'{time.time() - $start:.1f}')")
for i in 1 2; do
  icos logs "${ids[$i]}" | grep -q "ran on n$(( (i + 1) % 2 + 1 ))" || fail "job ${ids[$i]}'s log is wrong: $(icos logs "${ids[$i]}" 2>&1)"
done

# The API from the workstation: a client that keeps its connection (the
# dashboard, scripts) and one that connects per request (the CLI).
cat > "$E2E_DIR/latency.py" <<'PY'
import http.client, sys, time
host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
headers = {"Authorization": f"Bearer {token}"}
def measure(keep, n):
    conn, out = None, []
    for _ in range(n):
        t = time.monotonic()
        if conn is None or not keep:
            conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/api/v1/jobs?limit=1", headers=headers)
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        if not keep:
            conn.close()
        out.append((time.monotonic() - t) * 1000)
    out.sort()
    return out[len(out) // 2], out[max(0, int(len(out) * 0.99) - 1)], out[-1]
for keep, what, n in ((True, "kept connection", 100), (False, "connection per request", 100)):
    p50, p99, mx = measure(keep, n)
    print(f"API latency under 50 ms RTT + 1% loss, {what}, {n} x GET /api/v1/jobs: p50 {p50:.0f} ms p99 {p99:.0f} ms max {mx:.0f} ms")
PY
ip=$(netns_ip ctl)
nsenter --net="$ICOS_CLI_NETNS" -- /usr/bin/python3 "$E2E_DIR/latency.py" "$ip" "$PORT" "$(cat "$ICOS_HOME/admin.token")" \
  > "$E2E_DIR/latency.txt" || fail "API requests failed: $(cat "$E2E_DIR/latency.txt")"
cat "$E2E_DIR/latency.txt"

! grep -q "NOT READY" "$E2E_DIR/beats.log" || fail "a node left Ready: $(grep "NOT READY" "$E2E_DIR/beats.log" | head -3)"
worst=$(grep -o 'worst heartbeat age [0-9.]*' "$E2E_DIR/beats.log" | tail -1 | awk '{print $4}')
[ -n "$worst" ] || fail "no heartbeat sample: $(cat "$E2E_DIR/beats.log")"
/usr/bin/python3 -c "import sys; sys.exit(0 if $worst < 10 else 1)" || fail "a heartbeat was $worst s old (the controller declares a node lost at 30 s)"
echo "PASS netns_impaired (12 jobs in $jobs_s s on both nodes; oldest heartbeat seen $worst s)"
