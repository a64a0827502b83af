#!/usr/bin/env bash
# The 2-node PyTorch DDP example with one rank per machine: controller, two
# nodes and the user's workstation are four hosts (network namespaces,
# tests/e2e/netns.sh), each with its own address and host name, which no
# name service knows. Rank 1 reaches rank 0's rendezvous at rank 0's node
# address as its agent registered it, and gloo on each rank uses its own
# node's interface (GLOO_SOCKET_IFNAME, substituted by the agent): gloo's
# default, the address the host name resolves to, does not exist here.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
netns_init
netns_add ctl
netns_add n1
netns_add n2
netns_add user
netns_start_server ctl
netns_start_agent n1 node-a --cpus 1
netns_start_agent n2 node-b --cpus 1
netns_cli user
two_ready() { [ "$(icos nodes | grep -c Ready)" = 2 ]; }
wait_until 10 two_ready || fail "two nodes did not become ready: $(icos nodes)"

cat > "$E2E_DIR/ddp2.yaml" <<YAML
name: ddp-two-hosts
framework: pytorch
tasks:
  - name: worker
    replicas: 2
    affinity: spread
    workdir: $REPO_ROOT/examples/pytorch-ddp
    command: ["bash", "-c", "echo gloo-interface=\$GLOO_SOCKET_IFNAME; exec /usr/bin/python3 train.py --epochs 4"]
    resources: {cpu: 1, memory: 1Gi}
YAML
id=$(submit "$E2E_DIR/ddp2.yaml")
icos wait "$id" --timeout 120 || { icos logs "$id" --task 0; icos logs "$id" --task 1; fail "2-host DDP job $id did not succeed: $(icos job "$id")"; }
read -r node0 node1 < <(icos job "$id" -o json | /usr/bin/python3 -c "import json,sys; t=json.load(sys.stdin)['tasks']; print(t[0]['node'], t[1]['node'])")
[ "$node0" != "$node1" ] || fail "both ranks ran on $node0"
declare -A host_of=([node-a]=n1 [node-b]=n2)
master=$(netns_ip "${host_of[$node0]}")
for task in 0 1; do
  log=$(icos logs "$id" --task "$task")
  grep -q "RESULT .*world=2 .*in_sync=True" <<< "$log" || fail "rank $task did not finish in sync: $log"
  grep -q "^gloo-interface=eth0$" <<< "$log" || fail "rank $task's gloo was not pinned to its node's eth0: $log"
  grep -q "rank $task/2 up: master $master:" <<< "$log" || fail "rank $task did not meet at rank 0's node address $master: $log"
done
host1=$(icos logs "$id" --task 1 | grep -o 'host [a-z0-9]*' | head -1)
[ "$host1" = "host ${host_of[$node1]}" ] || fail "rank 1 ran on '$host1', not on ${host_of[$node1]}"
echo "PASS netns_ddp (rank 0 on $node0 at $master, rank 1 on $node1; gloo over each host's eth0)"
