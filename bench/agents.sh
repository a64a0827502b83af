#!/usr/bin/env bash
# How many agents one controller holds: N fake agents (each long-polling its
# assignments and heartbeating at the pace the controller asks, as `icos agent`
# does: every second up to 1,000 nodes, slower past that) against
# `icos server`, while a client times GET /api/v1/jobs?limit=1 every 20 ms.
# One line per N: the API's p50/p99/max latency and how many watches were answered.
# Usage: bench/agents.sh [N...]   (default 0 50 200 500; needs a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(0 50 200 500)
work=$(mktemp -d /tmp/icos-agents.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -INT $pid 2>/dev/null; sleep 1; rm -rf "$work"' EXIT
for n in "${counts[@]}"; do
  export ICOS_HOME=$work/home-$n
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Every fake agent calls from 127.0.0.1; real nodes each have their own
  # address, so the per-address connection cap (512) is lifted here.
  "$BIN/src/cli/icos" server --port "$port" --max-connections-per-address 100000 ${SERVER_FLAGS:-} \
    > "$work/server-$n.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$work/server-$n.log" && break; sleep 0.1; done
  "$BIN/bench/icos_load" agents --server "http://127.0.0.1:$port" --token "$(cat "$ICOS_HOME/admin.token")" \
    --agent-token "$(cat "$ICOS_HOME/agent.token")" --count "$n" --timeout 10 || true
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
