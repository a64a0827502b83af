#!/usr/bin/env bash
# Real hosts on one machine for end-to-end tests. Each host is a network
# namespace with its own interface (eth0), its own address on one bridge and
# its own host name, so a controller, agents, PostgreSQL and the CLI each run
# "on their own machine": loopback is private to each, and whatever one
# advertises must be reachable from the others. Between them the harness can
# add latency and loss (tc netem; on kernels without sch_netem, the same done
# in user space through NFQUEUE, tests/e2e/nfq_delay.py) and cut a host off.
#
# Usage, after lib.sh:
#   source "$(dirname "$0")/netns.sh"
#   netns_init                      # skips (exit 77) unless root with network namespaces
#   netns_add ctl; netns_add n1     # hosts; netns_ip n1 prints an address
#   netns_start n1 "$E2E_DIR/x.log" CMD...   # CMD on n1 in the background (killed at exit); LAST_PID
#   netns_run n1 CMD...             # CMD on n1 in the foreground
#   netns_cli ctl                   # `icos` (lib.sh) and netns_curl run on host ctl from now on
#   netns_start_server ctl; netns_start_agent ctl n1 [flags]   # icos on hosts
#   netns_impair ctl 25 1           # +25 ms each way and 1% loss each way on ctl's link (50 ms RTT)
#   netns_cut n1 [drop|down]; netns_heal n1   # partition a host (silent drops, or its link down)
#   netns_start_postgres db         # PostgreSQL on TCP on host db; PG_URI
# Everything it makes (namespaces, bridge, veths, rules, delayers, processes in
# the namespaces) carries this run's unique id and is removed on exit, also on
# failure; a run killed before its trap ran is swept by the next netns_init.
# Processes enter a host's network (nsenter --net, what `ip netns exec` does)
# and UTS namespace but keep the machine's mounts: `ip netns exec` would
# remount /sys and hide the cgroup hierarchies the agent places tasks in.

NETNS_STATE_DIR=/run/icos-e2e-netns
declare -gA NETNS_NS=() NETNS_IP=() NETNS_VETH=() NETNS_DELAYER=()
NETNS_HOSTS=()
NETNS_ID=""
NETNS_BR=""

# netns_skip REASON: exit 77. Before netns_init nothing has started: lib.sh's
# trap (which treats 77 as a failure, and as another user may stumble) is
# not needed; after it, netns_exit cleans up as for a pass.
netns_skip() {
  echo "SKIP: $*"
  if [ -z "$NETNS_ID" ]; then
    trap - EXIT
    rm -rf "$E2E_DIR"
  fi
  exit 77
}

# netns_sweep: removes what runs killed before their cleanup left behind.
netns_sweep() {
  local f id pid ns
  for f in "$NETNS_STATE_DIR"/*; do
    [ -f "$f" ] || continue
    id=$(basename "$f")
    pid=$(cat "$f" 2>/dev/null)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && continue
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^icos-e2e-$id-"); do
      netns_delete "$ns"
    done
    ip link del "ie${id}br" 2>/dev/null || true
    rm -f "$f"
  done
}

netns_delete() {  # NAMESPACE: ends its processes, then removes it
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 20); do [ -z "$(ip netns pids "$1" 2>/dev/null)" ] && break; sleep 0.1; done
  ip netns del "$1" 2>/dev/null || true
}

netns_init() {
  [ "$(id -u)" -eq 0 ] || netns_skip "this test runs hosts in network namespaces and needs root"
  command -v ip >/dev/null && command -v nsenter >/dev/null && command -v unshare >/dev/null ||
    netns_skip "needs ip (iproute2), nsenter and unshare (util-linux); scripts/install-deps.sh installs them"
  mkdir -p "$NETNS_STATE_DIR"
  netns_sweep
  NETNS_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-5)
  echo $$ > "$NETNS_STATE_DIR/$NETNS_ID"
  trap 'netns_exit $?' EXIT
  ip netns add "icos-e2e-$NETNS_ID-probe" 2>/dev/null ||
    netns_skip "cannot create network namespaces here (ip netns add failed; a container without CAP_SYS_ADMIN?)"
  ip netns del "icos-e2e-$NETNS_ID-probe"
  NETNS_BR="ie${NETNS_ID}br"
  ip link add "$NETNS_BR" type bridge 2>/dev/null || netns_skip "cannot create a bridge (ip link add type bridge failed)"
  # Bridged frames must not pass the machine's own iptables (br_netfilter).
  ip link set "$NETNS_BR" type bridge nf_call_iptables 0 nf_call_ip6tables 0 2>/dev/null || true
  ip link set "$NETNS_BR" up
  # 10.X.Y.0/24 from the run id: no address is added outside the namespaces,
  # so runs could share a subnet; distinct ones keep logs unambiguous.
  NETNS_NET="10.$((16#${NETNS_ID:0:2} % 200 + 50)).$((16#${NETNS_ID:2:2}))"
  echo "netns: run $NETNS_ID, hosts on bridge $NETNS_BR, $NETNS_NET.0/24"
}

netns_cleanup() {
  local name
  for name in "${NETNS_HOSTS[@]}"; do netns_delete "${NETNS_NS[$name]}"; done
  [ -z "$NETNS_BR" ] || ip link del "$NETNS_BR" 2>/dev/null || true
  [ -z "$NETNS_ID" ] || rm -f "$NETNS_STATE_DIR/$NETNS_ID"
}

# The EXIT trap: PostgreSQL (if started), lib.sh's cleanup (processes, logs),
# then the namespaces. A skip is not a failure: no logs to show.
netns_exit() {
  local rc=$1
  set +e
  [ -z "${PG_DIR:-}" ] || pg_stop
  cleanup "$([ "$rc" -eq 77 ] && echo 0 || echo "$rc")"
  netns_cleanup
  # A test's own teardown, once every process on its hosts is gone (e.g.
  # removing a package whose user ran one).
  if declare -F netns_after_cleanup >/dev/null; then netns_after_cleanup; fi
  exit "$rc"
}

# netns_add NAME: a new host with its own namespace, eth0 and address.
netns_add() {
  local name=$1 idx=$((${#NETNS_HOSTS[@]} + 1))
  local ns="icos-e2e-$NETNS_ID-$name" veth="ie${NETNS_ID}v$idx" peer="ie${NETNS_ID}p$idx"
  local ip="$NETNS_NET.$((10 + idx))"
  ip netns add "$ns" || fail "ip netns add $ns failed"
  NETNS_HOSTS+=("$name")
  NETNS_NS[$name]=$ns
  ip link add "$veth" type veth peer name "$peer" || fail "cannot create a veth pair"
  ip link set "$peer" netns "$ns"
  ip -n "$ns" link set "$peer" name eth0
  ip link set "$veth" master "$NETNS_BR" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" addr add "$ip/24" dev eth0
  NETNS_IP[$name]=$ip
  NETNS_VETH[$name]=$veth
}

netns_ip() { echo "${NETNS_IP[$1]}"; }

# netns_run NAME CMD...: CMD on host NAME (its network and host name).
netns_run() {
  local name=$1; shift
  nsenter --net="/run/netns/${NETNS_NS[$name]}" -- unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' "$name" "$@"
}

# netns_start NAME LOG CMD...: CMD on host NAME in the background, appending
# to LOG; stopped at exit with the test's other processes. Sets LAST_PID.
netns_start() {
  local name=$1 log=$2; shift 2
  # One simple command, so that $! is CMD itself (exec all the way down), not
  # a subshell that ignores lib.sh's SIGINT.
  nsenter --net="/run/netns/${NETNS_NS[$name]}" -- unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' \
    "$name" "$@" >> "$log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# netns_cli NAME: the icos CLI (lib.sh's `icos`, also in `bash -c`) and
# netns_curl run on host NAME, as a user's machine would.
netns_cli() {
  export ICOS_CLI_NETNS="/run/netns/${NETNS_NS[$1]}"
  icos() { nsenter --net="$ICOS_CLI_NETNS" -- "$ICOS_BIN" "$@"; }
  netns_curl() { nsenter --net="$ICOS_CLI_NETNS" -- curl "$@"; }
  export -f icos netns_curl
}

# netns_start_server HOST [flags]: `icos server` on HOST, listening on its
# address; ICOS_SERVER is its URL. The tokens stay in $ICOS_HOME.
netns_start_server() {
  local host=$1; shift
  PORT=${PORT:-$(free_port)}
  local ip=${NETNS_IP[$host]}
  netns_start "$host" "$E2E_DIR/server.log" "$ICOS_BIN" server --host "$ip" --port "$PORT" --data-dir "$ICOS_HOME" "$@"
  SERVER_PID=$LAST_PID
  wait_until 20 grep -q "listening" "$E2E_DIR/server.log" || fail "icos server on $host did not start: $(cat "$E2E_DIR/server.log")"
  export ICOS_SERVER="http://$ip:$PORT"
}

# netns_start_agent HOST NODE [flags]: `icos agent` named NODE on HOST,
# joined to $ICOS_SERVER, with no --address: it finds its own.
netns_start_agent() {
  local host=$1 node=$2; shift 2
  netns_start "$host" "$E2E_DIR/agent-$node.log" "$ICOS_BIN" agent --server "$ICOS_SERVER" --allow-root-tasks \
    --token "$(cat "$ICOS_HOME/agent.token")" --node-name "$node" --work-dir "$E2E_DIR/agent-$node" "$@"
  wait_until 20 grep -q "joined" "$E2E_DIR/agent-$node.log" || fail "agent $node on $host did not join: $(cat "$E2E_DIR/agent-$node.log")"
}

# netns_impair NAME DELAY_MS LOSS_PCT: every packet into and out of host NAME
# waits DELAY_MS more and is lost with LOSS_PCT% probability, each way (so
# NAME's round trips to any other host take 2 x DELAY_MS more).
netns_impair() {
  local name=$1 delay=$2 loss=$3 ns=${NETNS_NS[$1]}
  if tc -n "$ns" qdisc replace dev eth0 root netem delay "${delay}ms" loss "${loss}%" 2>/dev/null &&
     tc qdisc replace dev "${NETNS_VETH[$name]}" root netem delay "${delay}ms" loss "${loss}%" 2>/dev/null; then
    echo "netns: $name: +$delay ms and $loss% loss each way (tc netem)"
    return
  fi
  tc -n "$ns" qdisc del dev eth0 root 2>/dev/null || true
  # No sch_netem in this kernel: queue the host's packets to a user-space delayer.
  command -v iptables >/dev/null ||
    netns_skip "needs tc netem (kernel sch_netem) or iptables with NFQUEUE to add latency; apt-get install iptables"
  local queue=$((${#NETNS_DELAYER[@]} + 1)) log="$E2E_DIR/delayer-$name.log"
  netns_start "$name" "$log" /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/nfq_delay.py" "$queue" "$delay" "$loss" 1
  NETNS_DELAYER[$name]=$LAST_PID
  wait_until 10 grep -q "nfq_delay: queue" "$log" || netns_skip "cannot bind an NFQUEUE here: $(cat "$log")"
  nsenter --net="/run/netns/$ns" -- iptables -w -A OUTPUT -o eth0 -j NFQUEUE --queue-num "$queue" --queue-bypass &&
    nsenter --net="/run/netns/$ns" -- iptables -w -A INPUT -i eth0 -j NFQUEUE --queue-num "$queue" --queue-bypass ||
    netns_skip "iptables cannot queue packets here (no NFQUEUE target)"
  echo "netns: $name: +$delay ms and $loss% loss each way (NFQUEUE delayer; this kernel has no sch_netem)"
}

# netns_unimpair NAME: back to a clean link.
netns_unimpair() {
  local name=$1 ns=${NETNS_NS[$1]}
  tc -n "$ns" qdisc del dev eth0 root 2>/dev/null || true
  tc qdisc del dev "${NETNS_VETH[$name]}" root 2>/dev/null || true
  if [ -n "${NETNS_DELAYER[$name]:-}" ]; then
    nsenter --net="/run/netns/$ns" -- iptables -w -F INPUT 2>/dev/null || true
    nsenter --net="/run/netns/$ns" -- iptables -w -F OUTPUT 2>/dev/null || true
    kill "${NETNS_DELAYER[$name]}" 2>/dev/null || true
    unset "NETNS_DELAYER[$name]"
  fi
}

# netns_cut NAME [drop|down]: partitions host NAME from all others. drop
# (default): its switch port drops every frame, silently, both ways, while
# its link stays up (a dead switch or a firewall: peers only time out).
# down: its link goes down (a pulled cable: the host sees no carrier).
netns_cut() {
  local name=$1 how=${2:-drop} veth=${NETNS_VETH[$1]}
  case $how in
    drop) bridge link set dev "$veth" state 0 || fail "cannot disable bridge port $veth" ;;
    down) ip link set "$veth" down || fail "cannot take $veth down" ;;
    *) fail "netns_cut: drop or down, not '$how'" ;;
  esac
  echo "netns: $name cut off ($how)"
}

# netns_heal NAME: reconnects a host cut off by netns_cut.
netns_heal() {
  local veth=${NETNS_VETH[$1]}
  ip link set "$veth" up
  bridge link set dev "$veth" state 3 2>/dev/null || true  # forwarding
  echo "netns: $1 reconnected"
}

# netns_start_postgres HOST: a PostgreSQL server on host HOST listening on
# its address (TCP, password authentication) with an empty database "icos"
# owned by role icos; sets PG_URI for --store. psql_icos (lib.sh) works too,
# over the server's unix socket. Skips where the server is not installed.
netns_start_postgres() {
  local host=$1 ip=${NETNS_IP[$1]}
  PG_BIN=${ICOS_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
  [ -x "$PG_BIN/initdb" ] || netns_skip "no PostgreSQL server binaries in $PG_BIN (apt-get install postgresql)"
  PG_DIR="$E2E_DIR/pg"
  mkdir -p "$PG_DIR"
  chmod 711 "$E2E_DIR"
  chown postgres "$PG_DIR"
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -E UTF8 --locale=C --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 > "$E2E_DIR/initdb.log" 2>&1 || fail "initdb failed: $(cat "$E2E_DIR/initdb.log")"
  echo "host icos icos $NETNS_NET.0/24 scram-sha-256" >> "$PG_DIR/data/pg_hba.conf"
  netns_run "$host" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w \
    -o "-c listen_addresses='$ip' -k $PG_DIR" start >/dev/null || fail "PostgreSQL did not start: $(cat "$PG_DIR/postgres.log")"
  local password
  password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  as_pg "$PG_BIN/psql" -q -h "$PG_DIR" -U postgres -c "CREATE ROLE icos LOGIN PASSWORD '$password'" >/dev/null &&
    as_pg "$PG_BIN/createdb" -h "$PG_DIR" -U postgres -O icos icos || fail "cannot create the icos role and database"
  PG_URI="postgresql://icos:$password@$ip:5432/icos"
}
