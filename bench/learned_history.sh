#!/usr/bin/env bash
# What a large history costs the controller's learned run-time estimates:
#   history_jobs            succeeded jobs in the store (default 40,000, the estimator's window)
#   startup_s               `icos server` start to listening (history read from the store)
#   first_estimate_s        a job submitted then until it shows a learned estimate
#                           (the first pass feeds the whole history and fits the trees)
#   models_trained          models fitted by then
#   next_estimate_ms        the same for one more job once warm
# The history is synthetic, written straight into the SQLite store: 40 users,
# 8 queues, 400 name templates whose run times are log-normal around each
# template's own median. Usage: bench/learned_history.sh [JOBS]  (release build)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-40000}
[ "$JOBS" -ge 20 ] || { echo "JOBS must be >= 20 (learned estimates start after 20 successes)" >&2; exit 2; }
ICOS=${BIN:-$PWD/build/release}/src/cli/icos
work=$(mktemp -d /tmp/icos-lh.XXXXXX)
export ICOS_HOME=$work/home
pid=
trap '[ -n "$pid" ] && kill -INT $pid 2>/dev/null; sleep 1; rm -rf "$work"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server="http://127.0.0.1:$port"
start_server() {
  : > "$work/server.log"
  "$ICOS" server --port "$port" > "$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q listening "$work/server.log" && return; sleep 0.05; done
  echo "server did not start: $(cat "$work/server.log")" >&2; exit 1
}
stop_server() { kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
now() { date +%s.%N; }
since() { /usr/bin/python3 -c "import sys; print(format((float(sys.argv[1]) - float(sys.argv[2])) * float(sys.argv[3]), sys.argv[4]))" "$(now)" "$1" "$2" "$3"; }

# One real submission gives the canonical stored spec the history copies.
start_server
printf 'name: seed\ntasks:\n  - command: ["true"]\n    resources: {cpu: 0.1, memory: 16Mi, devices: 1}\n' > "$work/job.yaml"
"$ICOS" submit "$work/job.yaml" > /dev/null
stop_server
/usr/bin/python3 - "$ICOS_HOME/icos.db" "$JOBS" <<'PY'
import math, random, sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db)
spec = con.execute("SELECT spec_json FROM jobs LIMIT 1").fetchone()[0]
rng = random.Random(1)
median = {t: math.exp(rng.uniform(math.log(60), math.log(86400))) for t in range(400)}
t0 = 1_700_000_000_000
rows = []
for i in range(n):
    t = rng.randrange(400)
    submit = t0 + i * 30_000
    run = median[t] * math.exp(rng.gauss(0, 0.5))
    rows.append((f"tmpl{t}-run{i}", f"user{t % 40}", f"q{t % 8}", 0, "Succeeded", spec, "all tasks succeeded",
                 submit, submit + 1000, submit + 1000 + int(run * 1000), 0))
con.executemany("INSERT INTO jobs (name,user,queue,priority,state,spec_json,reason,submit_ms,start_ms,end_ms,attempt)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
con.commit()
PY
echo "history_jobs $JOBS"
t=$(now); start_server; echo "startup_s $(since "$t" 1 .2f)"
token=$(cat "$ICOS_HOME/admin.token")
until_learned() {  # until_learned ID: polls until the job has a learned estimate
  local deadline=$(( $(date +%s) + 120 ))
  until curl -sf -H "Authorization: Bearer $token" "$server/api/v1/jobs/$1" | grep -q '"source":"learned"'; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "job $1 got no learned estimate in 120 s" >&2; exit 1; }
    sleep 0.01
  done
}
sed -i 's/name: seed/name: tmpl7-run99999/' "$work/job.yaml"
t=$(now); id=$("$ICOS" submit "$work/job.yaml" | awk '{print $2}'); until_learned "$id"
echo "first_estimate_s $(since "$t" 1 .2f)"
echo "models_trained $(curl -sf "$server/metrics" | awk '/^icos_runtime_estimator_models_trained /{print $2}')"
t=$(now); id=$("$ICOS" submit "$work/job.yaml" | awk '{print $2}'); until_learned "$id"
echo "next_estimate_ms $(since "$t" 1000 .0f)"
