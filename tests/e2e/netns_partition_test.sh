#!/usr/bin/env bash
# A node cut off the network (its switch port drops every frame) for longer
# than its lease, on real hosts (tests/e2e/netns.sh): its shim stops the
# task before the lease ends, and only then does the controller start the
# retry on the other node. The tasks' own timestamps (a file on the shared
# disk, which the cut does not touch) must not overlap; after the heal the
# node rejoins, the old attempt does not come back, and the job succeeds
# having run exactly twice.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
netns_init
netns_add ctl
netns_add n1
netns_add n2
netns_add user
netns_start_server ctl --node-lease 12
netns_start_agent n1 node-1 --cpus 1
netns_start_agent n2 node-2 --cpus 1
netns_cli user
two_ready() { [ "$(icos nodes | grep -c Ready)" = 2 ]; }
wait_until 20 two_ready || fail "two nodes did not become ready: $(icos nodes)"
# The first attempt ticks for 60 s; the retry (a second line in attempts)
# ticks for 3 s and succeeds.
cat > "$E2E_DIR/job.yaml" <<YAML
restart: {policy: OnFailure, max_retries: 2}
max_disconnect: 12s
tasks:
  - command: ["sh", "-c", "echo \$ICOS_TASK_ID \$(hostname) >> $E2E_DIR/attempts; n=600; [ \$(wc -l < $E2E_DIR/attempts) -gt 1 ] && n=30; for i in \$(seq \$n); do echo \"\$ICOS_TASK_ID \$(date +%s%N)\" >> $E2E_DIR/ticks; sleep 0.1; done"]
    resources: {cpu: 1, memory: 64Mi}
YAML
id=$(submit "$E2E_DIR/job.yaml")
wait_until 30 test -s "$E2E_DIR/ticks" || fail "the job did not start: $(icos job "$id")"
host=$(awk '{print $2}' "$E2E_DIR/attempts" | head -1)
cut_at=$(date +%s)
netns_cut "$host"
wait_until 60 bash -c "[ \$(wc -l < $E2E_DIR/attempts) -ge 2 ]" || { netns_heal "$host"; fail "no retry elsewhere: $(icos job "$id")"; }
moved=$(( $(date +%s) - cut_at ))
second_host=$(awk 'NR == 2 {print $2}' "$E2E_DIR/attempts")
[ "$second_host" != "$host" ] || fail "the retry ran on the cut-off host $host"
sleep 2
netns_heal "$host"
icos wait "$id" --timeout 60 >/dev/null || fail "job $id did not succeed after the move: $(icos job "$id")"
wait_until 40 two_ready || fail "the healed node did not rejoin: $(icos nodes)"
first=$(awk 'NR == 1 {print $1}' "$E2E_DIR/attempts")
second=$(awk 'NR == 2 {print $1}' "$E2E_DIR/attempts")
/usr/bin/python3 - "$E2E_DIR/ticks" "$first" "$second" <<'PY' || fail "the two attempts overlapped"
import sys
ticks = [l.split() for l in open(sys.argv[1]) if l.strip()]
old = [int(t) for a, t in ticks if a == sys.argv[2]]
new = [int(t) for a, t in ticks if a == sys.argv[3]]
gap = (min(new) - max(old)) / 1e9
print(f"old attempt: {len(old)} ticks; new attempt: {len(new)} ticks; gap between them {gap:.2f} s")
sys.exit(0 if new and old and gap > 0 else 1)
PY
n_old=$(grep -c "^$first " "$E2E_DIR/ticks")
sleep 3
[ "$(grep -c "^$first " "$E2E_DIR/ticks")" = "$n_old" ] || fail "the old attempt ticked again after the heal"
[ "$(wc -l < "$E2E_DIR/attempts")" = 2 ] || fail "the job ran $(wc -l < "$E2E_DIR/attempts") times, want 2"
[ "$(job_field "$id" state)" = Succeeded ] || fail "job $id is $(job_field "$id" state)"
echo "PASS netns_partition ($host cut off; the retry started on $second_host ${moved} s after the cut; ran exactly twice)"
