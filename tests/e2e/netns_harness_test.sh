#!/usr/bin/env bash
# The namespace harness itself (tests/e2e/netns.sh), so tests built on it
# (the node-lease partition test to come) can trust it: hosts reach each
# other at their addresses and not over loopback; netns_impair adds the
# round trip it says; netns_cut makes a host silently unreachable (a
# connection attempt times out, it is not refused) and netns_heal brings it
# back; names carry the run's id, and a dead run's leftovers are swept.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
netns_init
netns_add a
netns_add b
cat > "$E2E_DIR/echo.py" <<'PY'
import signal, socket, sys
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("0.0.0.0", 9999)); l.listen()
print("listening", flush=True)
while True:
    c, _ = l.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (d := c.recv(1)): c.sendall(d)
    c.close()
PY
cat > "$E2E_DIR/rtt.py" <<'PY'
import socket, sys, time
try:
    s = socket.create_connection((sys.argv[1], 9999), timeout=float(sys.argv[2]))
except socket.timeout:
    print("timeout"); sys.exit(0)
except OSError as e:
    print(f"error {e}"); sys.exit(0)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ts = []
for _ in range(20):
    t = time.monotonic(); s.sendall(b"x"); s.recv(1); ts.append((time.monotonic() - t) * 1000)
print(f"median {sorted(ts)[10]:.1f}")
PY
netns_start b "$E2E_DIR/echo.log" /usr/bin/python3 "$E2E_DIR/echo.py"
wait_until 10 grep -q listening "$E2E_DIR/echo.log" || fail "echo server did not start"
rtt() { netns_run a /usr/bin/python3 "$E2E_DIR/rtt.py" "$1" "${2:-3}"; }

[ "$(netns_run a hostname)" = a ] || fail "host a is called '$(netns_run a hostname)'"
out=$(rtt "$(netns_ip b)"); [[ $out == median* ]] || fail "a cannot reach b: $out"
out=$(rtt 127.0.0.1); [[ $out == error* ]] || fail "a reached b's server over its own loopback: $out"
[ "$(netns_run a ip -o -4 addr show dev eth0 | awk '{print $4}')" = "$(netns_ip a)/24" ] || fail "a's eth0 lacks its address"

netns_impair a 25 0
ms=$(rtt "$(netns_ip b)" | awk '{print $2}')
/usr/bin/python3 -c "import sys; sys.exit(0 if 50 <= $ms < 80 else 1)" || fail "+25 ms each way gave a median round trip of $ms ms"
netns_unimpair a
ms=$(rtt "$(netns_ip b)" | awk '{print $2}')
/usr/bin/python3 -c "import sys; sys.exit(0 if $ms < 10 else 1)" || fail "after netns_unimpair the round trip is still $ms ms"

netns_cut b
out=$(rtt "$(netns_ip b)" 2); [ "$out" = timeout ] || fail "a cut-off host answered or refused: $out"
netns_heal b
out=$(rtt "$(netns_ip b)"); [[ $out == median* ]] || fail "b is unreachable after netns_heal: $out"
netns_cut b down
out=$(rtt "$(netns_ip b)" 2); [[ $out == timeout || $out == error* ]] || fail "a host whose link is down answered: $out"
netns_heal b
wait_until 10 bash -c "[[ \$(nsenter --net=/run/netns/${NETNS_NS[a]} /usr/bin/python3 $E2E_DIR/rtt.py $(netns_ip b) 2) == median* ]]" ||
  fail "b is unreachable after its link came back"

# Names carry this run's id; everything is listed for the sweep.
ip netns list | grep -q "^icos-e2e-$NETNS_ID-a" || fail "namespace names lack the run id"
[ "$(cat "$NETNS_STATE_DIR/$NETNS_ID")" = $$ ] || fail "the run is not registered for the sweep"
# What a run killed before its trap left behind goes at the next netns_init.
true & dead=$!; wait "$dead"
echo "$dead" > "$NETNS_STATE_DIR/zzzzz"
ip netns add icos-e2e-zzzzz-x && ip link add iezzzzzbr type bridge || fail "cannot fake a stale run"
netns_sweep
! ip netns list | grep -q icos-e2e-zzzzz && ! ip link show iezzzzzbr >/dev/null 2>&1 && [ ! -e "$NETNS_STATE_DIR/zzzzz" ] ||
  fail "the sweep left a dead run's namespace, bridge or record"
ip netns list | grep -q "^icos-e2e-$NETNS_ID-a" || fail "the sweep removed this live run's namespaces"
echo "PASS netns_harness (reach, private loopback, +50 ms RTT, silent cut, link down, heal, sweep)"
