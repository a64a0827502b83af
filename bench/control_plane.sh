#!/usr/bin/env bash
# Control-plane figures on this machine, one per line:
#   api_submissions_per_s   durable job submissions/s from 4 client threads
#   submit_to_running_p50_ms / _p99_ms   on an idle node, one job at a time
#   agent_idle_rss_mib / agent_idle_cpu_pct      the agent with no tasks (10 s)
#   agent_50_tasks_rss_mib / agent_50_tasks_cpu_pct   the agent while 50 tasks run
# Usage: bench/control_plane.sh   (needs a release build)
#        ICOS_STORE='postgresql:///icos?host=/path' bench/control_plane.sh
#        runs the controller on that PostgreSQL database instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
LOAD=$BIN/bench/icos_load
work=$(mktemp -d /tmp/icos-cp.XXXXXX)
export ICOS_HOME=$work/home
pids=()
trap 'for p in "${pids[@]}"; do kill -INT $p 2>/dev/null; done; sleep 1; pkill -KILL -f "$work" 2>/dev/null; rm -rf "$work"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ICOS" server --port "$port" ${ICOS_STORE:+--store "$ICOS_STORE"} > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
server="http://127.0.0.1:$port"
token=$(cat "$ICOS_HOME/admin.token")

# 1. Durable submissions/s: no agent yet, so jobs only queue (and each pass says why they wait).
printf 'tasks:\n  - command: ["true"]\n    resources: {cpu: 0.1, memory: 16Mi}\n' > "$work/tiny.yaml"
"$LOAD" submit --server "$server" --token "$token" --spec "$work/tiny.yaml" --count 5000 --threads 4 > "$work/submit.txt"
per_s=$(sed -n 's/.*per_s=\([0-9]*\).*/\1/p' "$work/submit.txt")

# Cancel the backlog so the latency runs on an idle node.
curl -s -H "Authorization: Bearer $token" "$server/api/v1/jobs?state=Pending&limit=10000" |
  /usr/bin/python3 -c 'import json,sys; [print(j["id"]) for j in json.load(sys.stdin)["jobs"]]' |
  xargs -P 8 -I{} curl -s -o /dev/null -d "" -H "Authorization: Bearer $token" "$server/api/v1/jobs/{}/cancel"

"$ICOS" agent --server "$server" --allow-root-tasks --token "$(cat "$ICOS_HOME/agent.token")" --node-name bench --work-dir "$work/agent" > "$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
for _ in $(seq 100); do grep -q joined "$work/agent.log" && break; sleep 0.1; done

# 2. Submit -> running latency on the idle node.
printf 'tasks:\n  - command: ["sleep", "0.05"]\n    resources: {cpu: 0.1, memory: 16Mi}\n' > "$work/short.yaml"
"$LOAD" latency --server "$server" --token "$token" --spec "$work/short.yaml" --count 100 > "$work/latency.txt"

# 3. Agent overhead: RSS and CPU share over 10 s, idle and with 50 running tasks.
measure() {  # prints "rss_mib cpu_pct"
  local t0 t1 c0 c1 hz
  hz=$(getconf CLK_TCK)
  c0=$(awk '{print $14+$15}' /proc/$agent/stat); t0=$(date +%s.%N)
  sleep 10
  c1=$(awk '{print $14+$15}' /proc/$agent/stat); t1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2/1024}' /proc/$agent/status)
  /usr/bin/python3 -c "print('%.1f %.2f' % ($rss, 100.0 * ($c1 - $c0) / $hz / ($t1 - $t0)))"
}
read idle_rss idle_cpu < <(measure)
printf 'tasks:\n  - command: ["sleep", "60"]\n    resources: {cpu: 0.01, memory: 8Mi}\n' > "$work/sleep.yaml"
"$LOAD" submit --server "$server" --token "$token" --spec "$work/sleep.yaml" --count 50 --threads 4 > /dev/null
for _ in $(seq 100); do
  n=$(curl -s -H "Authorization: Bearer $token" "$server/api/v1/jobs?state=Running" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
  [ "$n" = 50 ] && break; sleep 0.2
done
read busy_rss busy_cpu < <(measure)

echo "api_submissions_per_s=$per_s"
sed -n 's/.*p50_ms=\([0-9.]*\) p99_ms=\([0-9.]*\).*/submit_to_running_p50_ms=\1\nsubmit_to_running_p99_ms=\2/p' "$work/latency.txt"
echo "agent_idle_rss_mib=$idle_rss"
echo "agent_idle_cpu_pct=$idle_cpu"
echo "agent_50_tasks_running=$n"
echo "agent_50_tasks_rss_mib=$busy_rss"
echo "agent_50_tasks_cpu_pct=$busy_cpu"
