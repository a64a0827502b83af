#!/usr/bin/python3
"""Writes an openb pod list in which a share of the GPU pods may run on some
GPU models only, in the manner of FGD's "gpuspec" workloads (Weng et al.,
ATC'23): FGD's own variant lists are not in ../shared/data, so this makes
stand-ins from the default list. Each GPU pod is constrained with
probability SHARE to one model, drawn in proportion to the cluster's GPUs
of each model (the two V100 variants count as one: "V100M16|V100M32").
Deterministic for a seed. How FGD drew its constraints is not published in
that detail: compare these results with FGD's published figures only as
the same kind of workload, not the same one.

Usage: bench/openb_gpuspec.py SHARE OUT.csv [--seed N] [--traces DIR]
"""
import argparse
import csv
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("share", type=float, help="share of GPU pods constrained, 0..1")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--traces", default=os.environ.get("ICOS_TRACES", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "traces")))
    a = ap.parse_args()
    if not 0 <= a.share <= 1:
        sys.exit("share must be within 0..1")
    base = os.path.join(a.traces, "alibaba-openb")
    capacity = {}
    with open(os.path.join(base, "openb_node_list_gpu_node.csv")) as f:
        for n in csv.DictReader(f):
            model = "V100M16|V100M32" if n["model"].startswith("V100") else n["model"]
            capacity[model] = capacity.get(model, 0) + int(n["gpu"])
    models = sorted(capacity)
    weights = [capacity[m] for m in models]
    rng = random.Random(a.seed)
    with open(os.path.join(base, "openb_pod_list_default.csv")) as f:
        rows = list(csv.DictReader(f))
    constrained = 0
    for r in rows:
        if int(r["num_gpu"]) > 0 and rng.random() < a.share:
            r["gpu_spec"] = rng.choices(models, weights)[0]
            constrained += 1
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    # The node list the simulator reads beside the pods.
    nodes = os.path.join(os.path.dirname(os.path.abspath(a.out)), "openb_node_list_gpu_node.csv")
    if not os.path.exists(nodes):
        os.symlink(os.path.abspath(os.path.join(base, "openb_node_list_gpu_node.csv")), nodes)
    print(f"{a.out}: {constrained} of {sum(1 for r in rows if int(r['num_gpu']) > 0)} GPU pods constrained")


if __name__ == "__main__":
    main()
