"""Training on several processes at once: torchrun's processes, their process group, and which one is first.

Hand-written, not generated: starting processes and connecting them is plumbing, not what the book teaches.

``torchrun --nproc_per_node=N -m zero2gpt train ...`` starts N copies of the command and gives each, in its
environment, a ``RANK`` (0 to N-1 over all machines), a ``LOCAL_RANK`` (its number on this machine) and the
``WORLD_SIZE`` (N times the number of machines). Inside ``distributed_training()`` these processes form one
*process group*: gloo on CPUs, NCCL on CUDA GPUs (one GPU per process, by LOCAL_RANK). Without torchrun's
variables, nothing changes: one process, rank 0 of a world of 1, and every helper here costs nothing.

The rules the library keeps (chapter 13's ``train_gpt``): every process holds the same model and takes its own
batches; DistributedDataParallel averages their gradients, so every process takes the same step; rank 0 alone
prints, shows progress and writes checkpoints, and every decision that could differ between processes (to
stop, what a checkpoint holds) is made once and shared.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.distributed as dist

from zero2gpt.runtime import device as runtime_device

_Value = TypeVar("_Value")

# A CPU (gloo) group for small agreements, so that asking "does any process want to stop?" at every step
# never waits for a GPU. None outside distributed_training().
_AGREEMENT_GROUP = None


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher that sets RANK and WORLD_SIZE) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    """This process's number among all the processes training together; 0 when it trains alone."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """How many processes train together; 1 when this one trains alone."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0: the one that prints, shows progress and writes files."""
    return rank() == 0


def any_process(flag: bool) -> bool:
    """True on every process if ``flag`` is true on any of them (a CPU all-reduce); ``flag`` alone otherwise."""
    if world_size() == 1:
        return bool(flag)
    vote = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=_AGREEMENT_GROUP)
    return bool(vote.item())


def all_processes(value: _Value) -> list[_Value]:
    """Every process's ``value`` (any picklable object), in rank order, on every process."""
    if world_size() == 1:
        return [value]
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, value, group=_AGREEMENT_GROUP)
    return gathered


def from_main_process(function: Callable[[], _Value]) -> _Value:
    """``function()`` run by rank 0 alone, its result (or the exception it raised) sent to every process.

    For what only rank 0 may do, such as reading a checkpoint: the others get the same answer, or the same
    error, instead of waiting forever for a rank 0 that failed.
    """
    if world_size() == 1:
        return function()
    message: list = [None]
    if is_main_process():
        try:
            message[0] = ("result", function())
        except Exception as error:  # any: the other processes must hear of it
            message[0] = ("error", error)
    dist.broadcast_object_list(message, src=0, group=_AGREEMENT_GROUP)
    kind, payload = message[0]
    if kind == "error":
        raise payload
    return payload


@contextlib.contextmanager
def distributed_training(device: str | torch.device | None = None) -> Iterator[torch.device]:
    """Within it, the processes torchrun started form one process group; it yields this process's device.

    ``device`` (as zero2gpt.runtime.device takes it) picks the kind; under torchrun a CUDA process takes the
    GPU numbered LOCAL_RANK. Without torchrun it yields the device and sets nothing up. The group is taken
    down at the end, however the block ends.
    """
    global _AGREEMENT_GROUP
    place = runtime_device(None if device is None else str(device))
    if not launched_by_torchrun() or dist.is_initialized():
        yield place
        return
    if not dist.is_available():
        raise RuntimeError("this PyTorch was built without torch.distributed: train in one process, without torchrun")
    if place.type == "cuda":
        place = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(place)
    elif place.type == "mps":
        raise RuntimeError("torchrun training runs on CUDA GPUs (nccl) or CPUs (gloo), not on mps: "
                           "add --device cpu, or train without torchrun")
    dist.init_process_group(backend="nccl" if place.type == "cuda" else "gloo")
    try:
        _AGREEMENT_GROUP = dist.new_group(backend="gloo") if place.type == "cuda" else None
        yield place
    finally:
        _AGREEMENT_GROUP = None
        dist.destroy_process_group()
