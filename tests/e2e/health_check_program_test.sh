#!/usr/bin/env bash
# A node health-check program (Slurm's HealthCheckProgram) fails: the node
# says it is unhealthy with the program's first output line, gets no new work,
# and takes work again once the program passes.
source "$(dirname "$0")/lib.sh"
check="$E2E_DIR/check.sh"
cat > "$check" <<SH
#!/bin/sh
if [ -e "$E2E_DIR/broken" ]; then echo "scratch disk missing (test)"; exit 1; fi
exit 0
SH
chmod +x "$check"
touch "$E2E_DIR/broken"
start_up --cpus 2 --health-check-program "$check" --health-check-interval 0.5
icos nodes | tee "$E2E_DIR/nodes.txt"
grep -q "Ready,Unhealthy" "$E2E_DIR/nodes.txt" || fail "node failing its health check not shown unhealthy"
grep -q "scratch disk missing (test)" "$E2E_DIR/nodes.txt" || fail "health check reason not shown"
icos nodes -o json | grep -q '"unhealthy_reason": "scratch disk missing (test)"' || fail "reason missing from the API"
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo ran"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
sleep 2
[ "$(job_field "$id" state)" = Pending ] || fail "job started on a node failing its health check"
rm "$E2E_DIR/broken"
icos wait "$id" --timeout 30 || { icos job "$id"; fail "job did not run once the health check passed"; }
icos nodes | grep -q "Unhealthy" && fail "node still unhealthy after its check passed"
# And back: the check fails again while nothing runs.
touch "$E2E_DIR/broken"
wait_until 10 bash -c "icos nodes | grep -q Unhealthy" || fail "second failure not noticed"
echo "PASS health_check_program"
