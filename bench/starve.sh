#!/usr/bin/env bash
# Can one address without a token starve the controller? `icos server` with
# AGENTS fake agents (icos_load agents: register, heartbeat at the pace the
# controller sets, watch assignments, as `icos agent` does) and a user who
# alternately lists and submits jobs every 20 ms (timed), while one address
# (127.0.0.1, the same as everyone's) holds IDLE idle and SLOW slowloris
# connections (tests/e2e/slow_clients.py: a header byte every 5 s, each
# connection the server closes reopened after a second) for DURATION
# seconds: longer than the 30 s after which a silent node is lost.
#
# Prints one line:
#   starve idle=1000 slow=1000 agents=20 api_p50_ms=X api_p99_ms=X api_max_ms=X api_errors=N agent_errors=N nodes_lost=N
# then the attacker's and (icos_net) the server's connection counters.
#
# Usage: bench/starve.sh [IDLE SLOW AGENTS DURATION]   (default 1000 1000 20 45)
# Needs a release build (cmake --preset release && cmake --build --preset
# release --target icos icos_load). ICOS=path/to/icos runs another server
# build (e.g. the cpp-httplib one, for comparison) with this icos_load;
# SERVER_FLAGS adds flags to `icos server`; RECONNECT_DELAY (s) how soon the
# attacker replaces a closed connection.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
ICOS=${ICOS:-$BIN/src/cli/icos}
LOAD=${LOAD:-$BIN/bench/icos_load}
idle=${1:-1000}
slow=${2:-1000}
agents=${3:-20}
duration=${4:-45}
work=$(mktemp -d /tmp/icos-starve.XXXXXX)
server_pid= attack_pid= poll_pid= load_pid=
cleanup() {
  for p in $attack_pid $poll_pid $load_pid; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$server_pid" ] && kill -INT "$server_pid" 2>/dev/null || true
  sleep 1
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export ICOS_HOME=$work/home
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
"$ICOS" server --port "$port" --data-dir "$ICOS_HOME" ${SERVER_FLAGS:-} > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
url="http://127.0.0.1:$port"
admin=$(cat "$ICOS_HOME/admin.token")

# Jobs the fake nodes can never run (they have one CPU each): they queue.
printf 'tasks:\n  - command: ["true"]\n    resources: {cpu: 64}\n' > "$work/job.yaml"

# Every node seen NotReady while the load runs (a lost node that rejoins
# still counts); "nodes ready" is how many had joined.
/usr/bin/python3 - "$url" "$admin" "$work/ready" "$work/lost_names" > "$work/polls.txt" 2>/dev/null <<'PY' &
import json, sys, time, urllib.request, signal
url, token, ready_file, lost_file = sys.argv[1:5]
lost, polls, failed, ready = set(), 0, 0, 0
def nodes(timeout):
    req = urllib.request.Request(url + "/api/v1/nodes", headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(req, timeout=timeout))["nodes"]
def finish(*_):
    print(polls, failed, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
while True:
    polls += 1
    try:
        ns = nodes(5)
        ready = max(ready, sum(n["state"] == "Ready" for n in ns))
        with open(ready_file, "w") as f:
            f.write("%d\n" % ready)
        lost |= {n["name"] for n in ns if n["state"] != "Ready"}
        with open(lost_file, "w") as f:
            f.write("".join(n + "\n" for n in sorted(lost)))
    except Exception:
        failed += 1
    time.sleep(1)
PY
poll_pid=$!

# The cluster first: agents join and settle while the server is quiet ...
"$LOAD" agents --server "$url" --token "$admin" --agent-token "$(cat "$ICOS_HOME/agent.token")" \
  --count "$agents" --timeout "$duration" --spec "$work/job.yaml" > "$work/load.out" 2> "$work/load.err" &
load_pid=$!
for _ in $(seq 600); do [ "$(cat "$work/ready" 2>/dev/null || echo 0)" -ge "$agents" ] && break; sleep 0.1; done
joined=$(cat "$work/ready" 2>/dev/null || echo 0)
# ... then the attack, at full strength within a second, for the whole measurement.
/usr/bin/python3 tests/e2e/slow_clients.py --port "$port" --idle "$idle" --slow "$slow" --interval 5 \
  --reconnect-delay "${RECONNECT_DELAY:-1}" --duration $((duration + 120)) > "$work/attack.log" 2>&1 &
attack_pid=$!
wait "$load_pid" || true
load_pid=
out=$(cat "$work/load.out")

# The server's counters while the attack still runs (icos_net only), then
# the nodes as the controller sees them once the attacker has gone.
metrics=$(curl -s --max-time 10 "$url/metrics" || true)
kill -TERM "$attack_pid" 2>/dev/null || true
wait "$attack_pid" 2>/dev/null || true
attack_pid=
final_lost=$(curl -s --max-time 60 -H "Authorization: Bearer $admin" "$url/api/v1/nodes" |
  /usr/bin/python3 -c 'import json,sys; print(" ".join(n["name"] for n in json.load(sys.stdin)["nodes"] if n["state"] != "Ready"))' ||
  echo "?")
kill -TERM "$poll_pid" 2>/dev/null || true
wait "$poll_pid" 2>/dev/null || true
poll_pid=
read -r polls poll_failed < "$work/polls.txt" || { polls=0; poll_failed=0; }
# Seen NotReady by a poll or at the end, or silent for the node timeout by
# the agents' own count (a starved server answers neither the polls nor,
# once it catches up, shows nodes whose late heartbeats got through).
lost=$( { cat "$work/lost_names" 2>/dev/null; tr ' ' '\n' <<< "$final_lost"; } | { grep -v '^$' || true; } | sort -u | wc -l)

field() { echo "$out" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
errors=$(field errors)
api_errors=$(field api_errors)
agent_errors=$(( ${errors:-0} - ${api_errors:-0} ))
silent=$(field silent_nodes)
[ "${silent:-0}" -gt "$lost" ] && lost=$silent
echo "starve idle=$idle slow=$slow agents=$agents api_p50_ms=$(field api_p50_ms) api_p99_ms=$(field api_p99_ms)" \
  "api_max_ms=$(field api_max_ms) api_calls=$(field api_requests) api_errors=${api_errors:-?}" \
  "agent_errors=$agent_errors nodes_lost=$lost"
[ -n "$out" ] || { echo "icos_load printed nothing:"; tail -5 "$work/load.err"; }
[ -s "$work/load.err" ] && echo "  first failures: $(head -3 "$work/load.err" | tr '\n' ';')"
echo "  joined=$joined max_beat_gap_s=$(field max_beat_gap_s) node_polls=$polls unanswered=$poll_failed; $(cat "$work/attack.log")"
echo "  server: $(echo "$metrics" | grep -E '^icos_http_(connections|connections_evicted_total|connections_refused_total|connection_timeouts_total\{phase="header"\}|requests_rejected_total)' | tr '\n' ' ')"
