#!/usr/bin/env bash
# Two agents on this machine are two nodes; a 2-node DDP job spans them.
source "$(dirname "$0")/lib.sh"
start_server
start_agent node-a --cpus 1
start_agent node-b --cpus 1
wait_until 10 bash -c "icos nodes | grep -c Ready | grep -q 2" || fail "two nodes did not become ready"
cat > "$E2E_DIR/ddp2.yaml" <<YAML
name: ddp-two-nodes
framework: pytorch
tasks:
  - name: worker
    replicas: 2
    affinity: spread
    workdir: $REPO_ROOT/examples/pytorch-ddp
    command: ["/usr/bin/python3", "train.py", "--epochs", "4"]
    resources: {cpu: 1, memory: 1Gi}
YAML
id=$(submit "$E2E_DIR/ddp2.yaml")
icos wait "$id" --timeout 120 || { icos job "$id"; fail "2-node DDP job did not succeed"; }
nodes=$(icos job "$id" -o json | /usr/bin/python3 -c "import json,sys; print(' '.join(sorted(t['node'] for t in json.load(sys.stdin)['tasks'])))")
[ "$nodes" = "node-a node-b" ] || fail "tasks ran on '$nodes', expected one per node"
for task in 0 1; do
  icos logs "$id" --task "$task" | grep -q 'RESULT .*world=2 .*in_sync=True' || fail "rank $task did not finish in sync"
done
echo "PASS ddp_two_nodes ($nodes)"
