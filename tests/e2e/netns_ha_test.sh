#!/usr/bin/env bash
# High availability across machines: PostgreSQL, two controllers, a node and
# the user's workstation are five hosts (network namespaces,
# tests/e2e/netns.sh). The node and the CLI are given both controllers. The
# leader's machine is then cut off the network (its switch port drops every
# frame: no RST, no FIN, peers only time out), which a kill on one machine
# never shows: the database must notice the dead session (TCP keepalives and
# user timeout, README "Standby controllers"), the standby take over, and the
# agent move to it while its connections to the old leader hang. The running
# job finishes under the new leader with its log read from the node, new work
# runs, and the old leader, reconnected, stands by.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
netns_init
netns_add db
netns_add ctl-a
netns_add ctl-b
netns_add n1
netns_add user
netns_start_postgres db

PORT_A=$(free_port)
PORT_B=$(free_port)
URL_A="http://$(netns_ip ctl-a):$PORT_A"
URL_B="http://$(netns_ip ctl-b):$PORT_B"
start_controller() {  # HOST PORT
  mkdir -p "$E2E_DIR/$1"
  netns_start "$1" "$E2E_DIR/server-$1.log" "$ICOS_BIN" server --host "$(netns_ip "$1")" --port "$2" \
    --data-dir "$E2E_DIR/$1" --store "$PG_URI"
}
start_controller ctl-a "$PORT_A"
wait_until 20 grep -q "listening" "$E2E_DIR/server-ctl-a.log" || fail "controller a did not start: $(cat "$E2E_DIR/server-ctl-a.log")"
start_controller ctl-b "$PORT_B"
# The standby names the leader by its host name and the URL it advertises.
wait_until 20 grep -q "standby: 'ctl-a:[0-9]*' at $URL_A (epoch 1) leads" "$E2E_DIR/server-ctl-b.log" ||
  fail "controller b did not stand by behind a: $(cat "$E2E_DIR/server-ctl-b.log")"

export ICOS_HOME="$E2E_DIR/ctl-a"  # the tokens' files; the tokens themselves live in the database
export ICOS_SERVER="$URL_A,$URL_B"
netns_start_agent n1 n1 --devices nvidia/A100-80G:2
netns_cli user

cat > "$E2E_DIR/long.yaml" <<YAML
name: survives-a-lost-machine
tasks:
  - command: ["bash", "-c", "echo started on \$(hostname); sleep 8; echo done-after-failover"]
    resources: {cpu: 1, memory: 64Mi, devices: 1}
YAML
id=$(submit "$E2E_DIR/long.yaml")
[ -n "$id" ] || fail "submit gave no job id"
job_state() { icos job "$1" -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
is_state() { [ "$(job_state "$1")" = "$2" ]; }
wait_until 20 is_state "$id" Running || fail "job $id did not start: $(icos job "$id" 2>&1)"

cut=$(date +%s.%N)
netns_cut ctl-a
wait_until 40 grep -q "listening" "$E2E_DIR/server-ctl-b.log" ||
  fail "controller b did not take over from the cut-off leader: $(cat "$E2E_DIR/server-ctl-b.log")"
took=$(/usr/bin/python3 -c "import time; print(f'{time.time() - $cut:.1f}')")
grep -q "leading, epoch 2" "$E2E_DIR/server-ctl-b.log" || fail "b does not lead at epoch 2: $(cat "$E2E_DIR/server-ctl-b.log")"

# The job ends under b: the agent found b and reported the exit there.
wait_until 60 is_state "$id" Succeeded || fail "job $id did not succeed under the new leader: $(icos job "$id" 2>&1)"
followed=$(/usr/bin/python3 -c "import time; print(f'{time.time() - $cut:.1f}')")
icos logs "$id" | grep -q done-after-failover || fail "job $id's log, read through b from n1, is incomplete: $(icos logs "$id" 2>&1)"
cat > "$E2E_DIR/after.yaml" <<YAML
name: after-failover
tasks:
  - command: ["true"]
    resources: {cpu: 1, memory: 64Mi, devices: 1}
YAML
id2=$(submit "$E2E_DIR/after.yaml")
wait_until 30 is_state "$id2" Succeeded || fail "job $id2, submitted after the failover, did not succeed: $(icos job "$id2" 2>&1)"

# Still cut off, the old leader has noticed it lost its lock and stopped
# serving (its database sessions time out in seconds, not the kernel's
# fifteen minutes of retransmissions); reconnected, it stands by behind b.
wait_until 30 grep -q "stopped serving: lost the session that holds the leadership lock" "$E2E_DIR/server-ctl-a.log" ||
  fail "the cut-off old leader did not stop serving: $(tail -3 "$E2E_DIR/server-ctl-a.log")"
netns_heal ctl-a
wait_until 30 grep -q "standby: 'ctl-b:[0-9]*' at $URL_B (epoch 2) leads" "$E2E_DIR/server-ctl-a.log" ||
  fail "the reconnected old leader did not stand by behind b: $(tail -5 "$E2E_DIR/server-ctl-a.log")"
[ "$(psql_icos "SELECT epoch FROM leader")" = 2 ] || fail "the leader record is not at epoch 2"
echo "PASS netns_ha (leader's machine cut off: standby served ${took} s later; job $id finished under it, ${followed} s after the cut)"
