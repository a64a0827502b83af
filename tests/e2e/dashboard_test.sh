#!/usr/bin/env bash
# The web dashboard in a real headless browser (Debian's chromium, driven by
# playwright-core from web/node_modules): a two-node cluster with NVIDIA,
# Ascend and Cambricon devices (sim inventories) and a few running jobs;
# web/tests/dashboard.spec.mjs signs in, reads the cluster map, submits a job
# through the UI, follows its log and cancels it. Screenshots go to
# $ICOS_ARTIFACTS (CTest sets build/<preset>/test-artifacts/dashboard).
# Exit 77 (skip) only when no chromium is installed.
source "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ] || [ ! -x "$CHROMIUM" ]; then
  echo "SKIP dashboard: no chromium (apt-get install chromium; scripts/install-deps.sh does)"
  exit 77
fi
command -v node >/dev/null || fail "node is missing (scripts/install-deps.sh installs it)"
WEB="$REPO_ROOT/web"
if [ ! -f "$WEB/node_modules/playwright-core/package.json" ]; then
  (cd "$WEB" && npm ci --prefer-offline --no-audit --no-fund) || fail "npm ci in web/ failed"
fi
ARTIFACTS=${ICOS_ARTIFACTS:-$REPO_ROOT/build/debug/test-artifacts/dashboard}
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png

GATEWAY_PORT=$(free_port)
start_up --node-name gpu-a --inventory "$REPO_ROOT/tests/e2e/testdata/mixed_cluster.json" --cpus 16 --memory-mib 32768 \
  --utilisation-step 1 --gateway-port "$GATEWAY_PORT"
# The binary must carry the built dashboard, not the "how to build it" page.
curl -sf "$ICOS_SERVER/" | grep -q '/assets/' ||
  fail "icos was built without web/dist: run scripts/build-web.sh, then build icos again"
start_agent mlu-b --devices cambricon/MLU370:4,nvidia/V100:2 --cpus 8 --memory-mib 16384

# A queue with a guarantee and a limit, so the queues page has bars to draw.
cat > "$E2E_DIR/queue.json" <<JSON
{"name": "research", "guaranteed": {"devices": 4, "ascend": 4}, "limit": {"devices": 8, "cpu": 8}}
JSON
icos queue put "$E2E_DIR/queue.json" > /dev/null

# Background work for the map: an Ascend job on one HCCS island, a half share
# of an A100, and a Cambricon job on the second node.
job_yaml() {  # name queue vendor resources
  cat <<YAML
name: $1
queue: $2
tasks:
  - command: ["sleep", "300"]
    resources: $4
    devices: [{vendor: $3}]
YAML
}
job_yaml npu-train research ascend "{cpu: 1, memory: 64Mi, devices: 4}" > "$E2E_DIR/npu.yaml"
job_yaml half-a100 default nvidia "{cpu: 1, memory: 64Mi, device_share: 50%}" > "$E2E_DIR/half.yaml"
job_yaml mlu-infer default cambricon "{cpu: 1, memory: 64Mi, devices: 2}" > "$E2E_DIR/mlu.yaml"
for f in npu half mlu; do
  id=$(submit "$E2E_DIR/$f.yaml")
  wait_until 30 bash -c "[ \"\$(icos job $id -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = Running ]" ||
    fail "background job $f ($id) did not start"
done

# A service for the services page: one replica serving HTTP on its port,
# ready once it answers (its command line names the test's directory, so
# the cleanup finds it).
cat > "$E2E_DIR/service.yaml" <<YAML
name: web-ui
kind: service
service: {replicas: 1, readiness: {http: /, period: 1s}}
tasks:
  - command: ["sh", "-c", "exec /usr/bin/python3 -m http.server \"\$ICOS_PORT\" --directory /tmp", "$E2E_DIR"]
    resources: {cpu: 100m, memory: 64Mi}
YAML
icos submit "$E2E_DIR/service.yaml" > /dev/null || fail "the service for the services page was refused"
# Steady requests through the gateway, for the services page's charts.
(while true; do curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/web-ui/"; sleep 0.05; done) &
PIDS+=($!)

MARKER="dashboard-marker-$RANDOM$RANDOM"
export ICOS_URL="$ICOS_SERVER" ICOS_TOKEN="$(cat "$ICOS_HOME/admin.token")" ICOS_ARTIFACTS="$ARTIFACTS" CHROMIUM MARKER
node "$WEB/tests/dashboard.spec.mjs" || fail "browser test failed (screenshots in $ARTIFACTS)"

# The browser's cancel reached the controller.
ui_job=$(icos jobs --all -o json | /usr/bin/python3 -c "
import json,sys
print(max(j['id'] for j in json.load(sys.stdin)['jobs'] if j['name'] == 'from-the-browser'))")
[ "$(job_field "$ui_job" state)" = Cancelled ] || fail "job $ui_job submitted in the browser is not Cancelled"
echo "screenshots: $ARTIFACTS"
ls "$ARTIFACTS"
echo "PASS dashboard"
