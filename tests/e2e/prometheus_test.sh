#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) scrapes icos: with a job
# holding half a device, `promtool check metrics` accepts the exposition with
# no errors or lint warnings, and a Prometheus server scraping every second
# answers a PromQL query with the value icos exported.
source "$(dirname "$0")/lib.sh"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "SKIP: prometheus/promtool not installed (scripts/install-deps.sh installs Debian's prometheus)"
  exit 77
fi
start_up --devices nvidia/A100:2 --cpus 2 --utilisation-step 1
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["sleep", "120"]
    resources: {cpu: 1, memory: 64Mi, device_share: 50%}
YAML
id=$(submit "$E2E_DIR/job.yaml")
job_running() { [ "$(job_field "$id" state)" = Running ]; }
wait_until 30 job_running || fail "job $id did not start: $(icos job "$id")"
# A second, unauthenticated request on a route that does not exist, for the
# request counter's "unmatched" label.
curl -s "$ICOS_SERVER/no/such/route" >/dev/null || true

curl -sf "$ICOS_SERVER/metrics" > "$E2E_DIR/metrics.txt" || fail "GET /metrics failed"
grep -q '^icos_queue_allocated_devices{queue="default"} 0.5$' "$E2E_DIR/metrics.txt" ||
  fail "queue allocation missing: $(grep icos_queue_allocated "$E2E_DIR/metrics.txt")"
grep -q 'route="unmatched"' "$E2E_DIR/metrics.txt" || fail "unmatched requests not counted"
lint=$(promtool check metrics < "$E2E_DIR/metrics.txt" 2>&1) || fail "promtool check metrics failed: $lint"
[ -z "$lint" ] || fail "promtool check metrics warned: $lint"

# Prometheus on its own free port and a private storage directory, so a
# Debian prometheus service (if one runs) is neither needed nor disturbed.
PROM_PORT=$(free_port)
cat > "$E2E_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: icos
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
YAML
promtool check config "$E2E_DIR/prometheus.yml" > "$E2E_DIR/promtool-config.log" 2>&1 ||
  fail "prometheus config rejected: $(cat "$E2E_DIR/promtool-config.log")"
prometheus --config.file="$E2E_DIR/prometheus.yml" --storage.tsdb.path="$E2E_DIR/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$E2E_DIR/prometheus.log" 2>&1 &
PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"

# query EXPR: the value of the first series of an instant query ("" if none).
query() {
  curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
scraped() { [ "$(query 'up{job="icos"}')" = 1 ]; }
wait_until 60 scraped || fail "prometheus never scraped icos: $(tail -5 "$E2E_DIR/prometheus.log")"
allocation_arrived() { [ "$(query 'icos_queue_allocated_devices{queue="default"}')" = 0.5 ]; }
wait_until 30 allocation_arrived || fail "icos_queue_allocated_devices did not reach prometheus"
got=$(query 'icos_queue_allocated_devices{queue="default"}')
[ "$got" = "0.5" ] || fail "prometheus has icos_queue_allocated_devices=$got, want 0.5"
running=$(query 'icos_jobs{state="Running"}')
[ "$running" = "1" ] || fail "prometheus has icos_jobs{state=Running}=$running, want 1"
heartbeats=$(query 'sum(icos_agent_heartbeats_total)')
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$heartbeats') > 0 else 1)" || fail "no heartbeats in prometheus: $heartbeats"

# The same allocation in the controller's own history and accounting.
util_has_half() {
  curl -sf -H "Authorization: Bearer $(cat "$ICOS_HOME/admin.token")" "$ICOS_SERVER/api/v1/utilisation" |
    /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)["samples"]; sys.exit(0 if s and s[-1]["by_queue"].get("default")==0.5 and s[-1]["by_type"]["nvidia/A100"]=={"allocated":0.5,"total":2} else 1)'
}
wait_until 10 util_has_half || fail "utilisation history lacks the half device"
icos usage -o json > "$E2E_DIR/usage.json"
/usr/bin/python3 - "$E2E_DIR/usage.json" <<'PY' || fail "icos usage: $(cat "$E2E_DIR/usage.json")"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
assert len(rows) == 1 and rows[0]["key"] == "admin", rows
assert rows[0]["jobs"]["submitted"] == 1, rows
# Half an A100 for the seconds the job has run so far: more than 0, under 0.5 x 1 h.
assert 0 < rows[0]["device_hours"]["nvidia/A100"] < 0.5, rows
PY
icos usage --since 1h --by queue | grep -q "^default " || fail "icos usage table has no default queue row"
icos cancel "$id" >/dev/null
echo "PASS prometheus (promtool clean; prometheus scraped icos_queue_allocated_devices=0.5, icos_jobs{Running}=1, heartbeats=$heartbeats)"
