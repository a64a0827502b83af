#!/usr/bin/env bash
# The main job end to end: `icos up`, the real 2-worker PyTorch DDP example,
# both ranks train, their replicas stay in sync, and the loss falls.
source "$(dirname "$0")/lib.sh"
start_up
cd "$REPO_ROOT/examples/pytorch-ddp"
id=$(submit job.yaml)
icos wait "$id" --timeout 120 || { icos job "$id"; fail "DDP job did not succeed"; }
for task in 0 1; do
  line=$(icos logs "$id" --task "$task" | grep '^RESULT') || fail "task $task printed no RESULT"
  echo "$line"
  /usr/bin/python3 - "$line" "$task" <<'PY'
import sys
fields = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
assert fields["rank"] == sys.argv[2], fields
assert fields["world"] == "2", fields
assert fields["in_sync"] == "True", fields
first, final = float(fields["first_loss"]), float(fields["final_loss"])
assert final < first * 0.5, f"loss did not fall: {first} -> {final}"
PY
done
echo "PASS ddp_single_node"
