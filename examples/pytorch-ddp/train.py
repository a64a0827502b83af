"""A small but real PyTorch DistributedDataParallel training job.

icos starts one process per rank and tells each, through the PyTorch
adapter, everything torch.distributed needs: MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE, LOCAL_RANK (and torchrun's PET_* variables). This script only reads
them. It trains a two-layer regression network on a synthetic, learnable
problem with the gloo backend on CPU, so it runs anywhere Debian's
python3-torch does; on GPU nodes it would use NCCL and the device icos assigned.

Each rank prints its loss per epoch; rank 0 also prints a final summary line
that the end-to-end test and the README's main job read:
    RESULT rank=0 world=2 first_loss=... final_loss=... steps=...

With --checkpoint-every N it meets icos' checkpoint contract
(icos_checkpoint.py): it saves every N steps and when icos signals a planned
stop, and a later attempt resumes at the step saved, so a preempted run ends
with the same loss as an undisturbed one.
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
from icos_checkpoint import Checkpointer
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def make_data(n=4096, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    true_w = torch.randn(dim, 1, generator=g)
    y = torch.tanh(x @ true_w) + 0.05 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: none)")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="sleep per step (tests: a longer run)")
    args = parser.parse_args()

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    torch.manual_seed(1234)  # same initial weights on every rank
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    print(f"rank {rank}/{world} up: master {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}, "
          f"local_rank {os.environ.get('LOCAL_RANK')}, host {os.uname().nodename}", flush=True)

    data = make_data()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=7)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.MSELoss()

    first_loss = None
    steps = 0
    start = time.time()
    ckpt = Checkpointer(args.checkpoint_every)
    resume = ckpt.load()
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        steps, first_loss = resume["steps"], resume["first_loss"]
    print(f"rank {rank} starts at step {steps}", flush=True)
    per_epoch = len(loader)
    for epoch in range(steps // per_epoch, args.epochs):
        sampler.set_epoch(epoch)
        # Resuming mid-epoch: the batches before the checkpoint are done.
        batches = steps % per_epoch if resume is not None else 0
        total = resume["total"] if batches > 0 else 0.0
        resume = None
        for i, (x, y) in enumerate(loader):
            if i < batches:
                continue  # done before the checkpoint this attempt resumed from
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()  # DDP all-reduces gradients across ranks here
            opt.step()
            total += loss.item()
            batches += 1
            steps += 1
            if args.step_seconds > 0:
                time.sleep(args.step_seconds)
            if args.checkpoint_every > 0 and ckpt.should_save(steps):
                ckpt.save({"model": model.state_dict(), "opt": opt.state_dict(), "steps": steps,
                           "first_loss": first_loss, "total": total, "batches": batches})
                if ckpt.stop_requested():
                    print(f"rank {rank} checkpointed at step {steps} for a planned stop", flush=True)
                    dist.destroy_process_group()
                    return
        # The mean loss over all ranks, so every rank reports the same number.
        t = torch.tensor([total / batches])
        dist.all_reduce(t)
        mean = t.item() / world
        if first_loss is None:
            first_loss = mean
        print(f"rank {rank} epoch {epoch} loss {mean:.5f}", flush=True)

    # Proof that the replicas stayed in sync: identical parameters on every rank.
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    in_sync = all(torch.allclose(gathered[0], g) for g in gathered)
    print(f"RESULT rank={rank} world={world} first_loss={first_loss:.5f} final_loss={mean:.5f} "
          f"steps={steps} in_sync={in_sync} seconds={time.time() - start:.1f}", flush=True)
    dist.destroy_process_group()
    if not in_sync:
        raise SystemExit("replicas diverged")


if __name__ == "__main__":
    main()
