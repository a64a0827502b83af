#!/usr/bin/env bash
# The main job: install what is needed, build icos, start a one-machine
# cluster (`icos up`: controller + embedded SQLite + local agent), run the real
# 2-worker PyTorch DDP example on it, follow its log, report the loss, and
# stop the cluster. `--keep` leaves the cluster running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1

./scripts/install-deps.sh
./scripts/build-web.sh || echo "main-job: the dashboard did not build; icos will serve a page saying how (docs/dashboard.md)" >&2
cmake --preset release >/dev/null
cmake --build --preset release --target icos
ICOS=$PWD/build/release/src/cli/icos

export ICOS_HOME=${ICOS_HOME:-$PWD/.icos}
port=${ICOS_PORT:-7070}
# Another service on the port: take a free one instead of failing.
if ! /usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $port))" 2>/dev/null; then
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
log="$ICOS_HOME/up.log"
mkdir -p "$ICOS_HOME"
"$ICOS" up --port "$port" > "$log" 2>&1 &
up_pid=$!
stop_cluster() { kill -INT "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true; }
[ $keep = 1 ] || trap stop_cluster EXIT
for _ in $(seq 100); do grep -q "icos is up" "$log" && break; kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
grep -q "icos is up" "$log" || { cat "$log"; echo "icos up failed to start" >&2; exit 1; }
cat "$log"
echo
"$ICOS" nodes
echo

cd examples/pytorch-ddp
id=$("$ICOS" submit job.yaml | awk '{print $2}')
echo "submitted examples/pytorch-ddp/job.yaml as job $id; following rank 0:"
"$ICOS" logs "$id" --task 0 --follow
"$ICOS" wait "$id" --timeout 300
echo
"$ICOS" job "$id"
echo
for task in 0 1; do "$ICOS" logs "$id" --task "$task" | grep '^RESULT'; done
if [ $keep = 1 ]; then
  echo "the cluster keeps running (pid $up_pid): ICOS_HOME=$ICOS_HOME $ICOS jobs"
fi
