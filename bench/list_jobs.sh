#!/usr/bin/env bash
# `icos jobs` on a store of many jobs (issue #19: 1,000,000 jobs, each
# listing within 100 ms). Makes a SQLite store of N jobs (ACTIVE of them
# pending or running, spread over the whole history: bench/job_store_main.cc),
# starts `icos server` on it, and times each listing through the CLI, as a
# user types it (process start, HTTP, the query, the table).
#
#   bench/list_jobs.sh [N] [ACTIVE]        (default 1000000 2000)
# One line per listing: list_jobs jobs=N query="..." median_ms=M max_ms=X (of 5 runs)
# Needs a release build: cmake --preset release && cmake --build --preset release
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
ACTIVE=${2:-2000}
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
MAKE_STORE=$BIN/bench/icos_job_store
[ -x "$ICOS" ] && [ -x "$MAKE_STORE" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }

work=$(mktemp -d /tmp/icos-list.XXXXXX)
export ICOS_HOME=$work/home
mkdir -p "$ICOS_HOME"
start=$(date +%s)
"$MAKE_STORE" "$ICOS_HOME/icos.db" "$N" "$ACTIVE"
echo "store made in $(( $(date +%s) - start )) s ($(du -m "$ICOS_HOME/icos.db" | cut -f1) MiB)"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ICOS" server --port "$port" --data-dir "$ICOS_HOME" > "$work/server.log" 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q listening "$work/server.log" && break; sleep 0.1; done
grep -q listening "$work/server.log" || { cat "$work/server.log" >&2; exit 1; }
export ICOS_SERVER="http://127.0.0.1:$port"
export ICOS_TOKEN=$(cat "$ICOS_HOME/admin.token")

# time_listing ARGS...: 5 runs of `icos jobs ARGS`, after one to warm the cache.
time_listing() {
  "$ICOS" jobs "$@" > /dev/null
  local times=()
  for _ in 1 2 3 4 5; do
    local t0 t1
    t0=$(date +%s%N)
    "$ICOS" jobs "$@" > "$work/out.txt"
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  local sorted
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "list_jobs jobs=$N query=\"icos jobs $*\" median_ms=${sorted[2]} max_ms=${sorted[4]} rows=$(( $(wc -l < "$work/out.txt") - 1 ))"
}
mid=$(( N / 2 ))
time_listing                                  # active jobs, newest first (squeue)
time_listing --all                            # everything, newest first
time_listing --all --before "$mid"            # a page from the middle of history
time_listing --user user7                     # one user's active jobs
time_listing --all --user user7 --queue q7    # one user and queue, all states
time_listing --all --name train-3             # by name
time_listing --state Failed                   # one ended state, newest first
time_listing --state Failed --before "$mid"   # ... from the middle
