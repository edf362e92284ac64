"""Training in several processes (DistributedDataParallel under ``torchrun``).

``torchrun`` starts one process per device and tells each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``).
:func:`setup` reads it and joins the process group (``nccl`` on CUDA, ``gloo`` on the
CPU); without those variables it returns the single-process :data:`SINGLE` and
nothing distributed happens.

What makes N ranks train like one process with the same global batch:

- :class:`GlobalBatchSampler`: every epoch is a permutation of the dataset drawn from
  ``(seed, epoch)`` alone, cut into global batches; rank r takes every W-th image of
  each global batch.  The union of the ranks' batches at step k is one process's
  batch k, at any world size that divides the global batch, so a run can resume at
  another world size on the same data order.
- :meth:`Dist.sum`: the loss normalisers (positive priors, images) are summed over all
  ranks; each rank's loss is its share of the global loss, scaled by W because
  DistributedDataParallel averages gradients.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

#: seconds a collective may wait for the other ranks before it fails (``--dist-timeout``)
DEFAULT_TIMEOUT_S = 900.0

#: torchrun's variables; all of them present means "launched by torchrun"
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (``world_size`` 1: a plain single process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or bool(self.backend)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics, the log and the progress bar."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over all ranks (a new tensor; the input is left alone)."""
        if not self.enabled:
            return tensor
        out = tensor.detach().clone()
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None on the others)."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def _object_device(self) -> torch.device | None:
        # nccl moves pickled objects through the GPU; gloo through the CPU
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else None


#: the process is alone
SINGLE = Dist()


def launched_by_torchrun(environ: "os._Environ[str] | dict[str, str] | None" = None) -> bool:
    env = os.environ if environ is None else environ
    return all(name in env for name in TORCHRUN_VARIABLES)


def split_batch(global_batch: int, world_size: int) -> int:
    """Images per rank of a global batch; one error line when the world size does not divide it."""
    if global_batch < 1:
        raise ValueError("--batch-size must be >= 1")
    if global_batch % world_size:
        lower = global_batch - global_batch % world_size
        fits = " or ".join(str(b) for b in (lower, lower + world_size) if b > 0)
        raise ValueError(
            f"--batch-size {global_batch} is the global batch and must divide evenly over "
            f"{world_size} processes (e.g. {fits})"
        )
    return global_batch // world_size


def environment_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def environment_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Dist, str]:
    """Join torchrun's process group; returns (this rank's :class:`Dist`, its device string).

    ``device`` is ``--device``: ``auto`` / ``cuda`` mean this rank's local GPU
    (``cuda:LOCAL_RANK``) when CUDA is present, ``cpu`` the CPU; an explicit ``cuda:N``
    is refused under torchrun (each rank has its own GPU).  Without torchrun's
    environment: (:data:`SINGLE`, ``device`` unchanged).
    """
    if not launched_by_torchrun():
        return SINGLE, device
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    name = str(device).strip().lower()
    if name.startswith("cuda:"):
        raise ValueError(
            f"--device {device} under torchrun: use 'cuda' (each rank takes its local GPU, cuda:LOCAL_RANK) or 'cpu'"
        )
    use_cuda = name == "cuda" or (name in ("", "auto") and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError("--device cuda under torchrun, but no CUDA device is available")
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"local rank {local} has no GPU: this machine has {torch.cuda.device_count()} "
                "(--nproc-per-node must not exceed the GPU count)"
            )
        torch.cuda.set_device(local)
        backend, dev = "nccl", f"cuda:{local}"
    elif name in ("", "auto", "cpu"):
        backend, dev = "gloo", "cpu"
    else:
        raise ValueError(f"invalid device {device!r}: use 'auto', 'cpu' or 'cuda'")
    if not torch.distributed.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed")
    device_id: dict[str, Any] = {"device_id": torch.device(dev)} if backend == "nccl" else {}
    timeout = datetime.timedelta(seconds=float(timeout_s))
    torch.distributed.init_process_group(
        backend=backend,
        timeout=timeout,
        store=_attempt_store(rank, world, timeout),
        rank=rank,
        world_size=world,
        **device_id,
    )
    return Dist(rank=rank, local_rank=local, world_size=world, backend=backend), dev


def _attempt_store(rank: int, world: int, timeout: datetime.timedelta) -> torch.distributed.Store:
    """The rendezvous store, with keys private to this restart attempt.

    Under torchrun the agent's store (``MASTER_ADDR:MASTER_PORT``) outlives a restart
    (``--max-restarts``): without a per-attempt prefix a restarted rank can read the
    address a dead rank of the previous attempt published and fail with "connection
    refused" while connecting to it.
    """
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = torch.distributed.TCPStore(
        host, port, world, is_master=not agent_store and rank == 0, timeout=timeout, wait_for_workers=False
    )
    return torch.distributed.PrefixStore(
        f"yolact_ros/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store
    )


def teardown(dist: Dist) -> None:
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class GlobalBatchSampler(torch.utils.data.Sampler):
    """This rank's share of every global batch, epoch after epoch, from ``(start_epoch, start_batch)`` on.

    Epoch e is ``randperm(len, seed + e)`` cut into ``len // global_batch`` batches (the
    rest of the permutation is dropped, as ``drop_last``); a dataset smaller than
    the global batch gives one batch of all of it (single process only).  Rank r of W
    takes positions r, r+W, r+2W, ... of each global batch.  Infinite: the trainer
    counts iterations; :attr:`batches_per_epoch` turns them into epochs.
    """

    def __init__(
        self,
        size: int,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_epoch: int = 0,
        start_batch: int = 0,
    ):
        if size < 1:
            raise ValueError("the training set is empty")
        split_batch(global_batch, world_size)
        if world_size > 1 and size < global_batch:
            raise ValueError(f"the training set has {size} images, fewer than the global batch {global_batch}")
        self.size = size
        self.global_batch = global_batch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_epoch = start_epoch
        self.start_batch = start_batch
        self.batches_per_epoch = max(1, size // global_batch)

    def epoch_order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        epoch, first = self.start_epoch, self.start_batch
        while True:
            order = self.epoch_order(epoch)
            for k in range(first, self.batches_per_epoch):
                batch = order[k * self.global_batch : (k + 1) * self.global_batch]
                yield batch[self.rank :: self.world_size]
            epoch, first = epoch + 1, 0


__all__ = [
    "Dist",
    "SINGLE",
    "DEFAULT_TIMEOUT_S",
    "setup",
    "teardown",
    "split_batch",
    "environment_rank",
    "environment_world_size",
    "launched_by_torchrun",
    "GlobalBatchSampler",
]
