"""The icos checkpoint contract for PyTorch, in one object (docs/frameworks.md,
"Checkpoints").

icos gives every job a directory that outlives its attempts
(ICOS_CHECKPOINT_DIR). A job that declares `checkpoint:` in its spec is also
told before a planned stop (a preemption, a move to another device type, its
time limit) by a signal (ICOS_CHECKPOINT_SIGNAL, SIGUSR1 by default) and has
the spec's `grace` to save before SIGTERM. Each finished checkpoint is
reported by touching $ICOS_TASK_DIR/.checkpoint-done (what `icos
checkpoint-done` does), so the scheduler knows what a preemption would lose.

    ckpt = Checkpointer()
    state = ckpt.load()                 # None on the first attempt
    ...
    for step ...:
        train one step
        if ckpt.should_save(step):      # every N steps, or icos asked
            ckpt.save({"model": ..., "opt": ..., "step": step})
        if ckpt.stop_requested():       # after saving on the signal: leave
            break

With several ranks, every rank calls should_save()/stop_requested() at the
same step: they agree through one all-reduce, so all ranks stop at the same
step; rank 0 writes the file.
"""
import os
import pathlib
import signal

import torch
import torch.distributed as dist

FILE = "checkpoint.pt"


class Checkpointer:
    def __init__(self, every_steps=0):
        self.dir = os.environ.get("ICOS_CHECKPOINT_DIR")
        self.every = every_steps
        self._asked = False
        name = os.environ.get("ICOS_CHECKPOINT_SIGNAL")
        if name and hasattr(signal, name):
            signal.signal(getattr(signal, name), self._on_signal)
        self._agreed_stop = False

    def _on_signal(self, signum, frame):
        self._asked = True

    def _agree(self, flag):
        """True on every rank when any rank's flag is."""
        if not (dist.is_available() and dist.is_initialized()):
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item() > 0

    def load(self):
        """The last saved state, or None (no directory, or nothing saved yet)."""
        if not self.dir:
            return None
        path = os.path.join(self.dir, FILE)
        if not os.path.exists(path):
            return None
        return torch.load(path, weights_only=False)

    def should_save(self, step):
        """Whether to save after `step`: every `every_steps`, or icos asked
        (then stop_requested() is true from now on)."""
        periodic = self.every > 0 and step % self.every == 0
        self._agreed_stop = self._agree(self._asked)
        return periodic or self._agreed_stop

    def stop_requested(self):
        return self._agreed_stop

    def save(self, state):
        """Rank 0 writes `state` atomically and reports the checkpoint."""
        if self.dir and (not dist.is_initialized() or dist.get_rank() == 0):
            tmp = os.path.join(self.dir, FILE + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, os.path.join(self.dir, FILE))
            done()
        if dist.is_initialized():
            dist.barrier()  # nobody leaves before the checkpoint is on disk


def done():
    """Tells icos a checkpoint just finished (as `icos checkpoint-done`)."""
    task_dir = os.environ.get("ICOS_TASK_DIR")
    if task_dir:
        pathlib.Path(task_dir, ".checkpoint-done").touch()
