"""Data-parallel training of one model on N processes: ``torchrun`` or ``scalarize train --nproc N``.

Every rank holds the whole model, draws the same global batch of ``batch_size`` indices (the same
sampler, seed and state on every rank) and reads only its own rows of it (every N-th row: a
disjoint shard, and in MDL the same domain mixture on every rank). Its losses are scaled so
that their mean over the ranks is the global batch's loss, and the step's
:class:`~scalarize.methods.StepContext` gets a :class:`ProcessGroupReducer`: the context hands
every method already-reduced quantities (global losses, the mean Jacobian, Gramians of the
representation's gradients summed over the ranks, the all-reduced ``.grad``; see
``methods/context.py``), so that **N ranks at batch B/N make the update one process makes at
batch B** (tested for every kind of method, to 1e-6 in float64), and no method knows about ranks.

Why not ``DistributedDataParallel``: its reducer all-reduces what backward passes accumulate into
``.grad``, in buckets, once per forward. Methods on per-task gradients take their ``[T, n]``
Jacobian with ``torch.autograd.grad`` (which never reaches ``.grad``, so DDP never sees it),
backward several times per forward (``retain_graph``), and write ``.grad`` themselves
(``set_shared_gradient``); a method may also read the global gradient in its backward (FAMO's
clipping). So the reduction is explicit and lives in the context: one all-reduce of every
parameter's gradient after a local backward (what DDP does, without overlapping it with the
backward), one of the Jacobian and the heads' gradients for gradient methods, a few numbers for
losses and Gramians.

What differs from one process: batch norm computes its batch statistics on each rank's B/N
samples (PyTorch's ``SyncBatchNorm`` needs a GPU and cannot run under the vectorised per-task
gradients); the running statistics are rank 0's, broadcast before every evaluation. Dropout
draws from each rank's own generator (their states are checkpointed).

Rank 0 is the driver: it runs the command (plan, store, reports), writes the checkpoints, the
store and the reports, and tells the other ranks which run to train next (``train.run.drive`` and ``serve``);
evaluation runs on every rank (the same model, the same numbers), so every rank takes the same
decisions. A checkpoint is read by rank 0 and broadcast, so only rank 0 needs the experiment
directory. A killed rank ends the others (torchrun stops the group); the same command then
resumes from the last checkpoint.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from scalarize.data.benchmark import Benchmark
from scalarize.data.sampling import Batch, Draw, EpochSampler, MixtureSampler, read_draws
from scalarize.errors import ScalarizeError
from scalarize.train.losses import objective_losses

#: ``--dist-backend``: ``auto`` is nccl on GPUs, gloo on CPUs.
BACKENDS = ("auto", "gloo", "nccl")
#: How long a rank waits for the others in one collective (a rank that died ends the others
#: sooner: torchrun stops the group).
TIMEOUT = datetime.timedelta(minutes=30)


class DistributedError(ScalarizeError):
    """Data-parallel settings that cannot work (reported to users as one line)."""


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched() -> bool:
    """Whether this process is one of several ranks started by torchrun."""
    return world_size_from_env() > 1


def resolve_backend(backend: str, device: str) -> str:
    """``gloo`` or ``nccl`` for ``--dist-backend`` and the config's device; one-line errors."""
    if backend not in BACKENDS:
        raise DistributedError(f"--dist-backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    cuda = torch.cuda.is_available()
    if backend == "nccl" and not cuda:
        raise DistributedError("--dist-backend nccl: needs CUDA GPUs and none is available; use gloo (CPU)")
    if device == "cuda" and not cuda:
        raise DistributedError("device: 'cuda' was asked for but no CUDA device is available; use cpu or auto")
    if backend == "nccl" and device == "cpu":
        raise DistributedError("--dist-backend nccl: reduces CUDA tensors only, but device is cpu; use gloo")
    if backend != "auto":
        return backend
    return "nccl" if cuda and device != "cpu" else "gloo"


def check_processes(nproc: int, backend: str, device: str) -> str:
    """Checks ``--nproc`` against the machine before anything starts; returns the backend."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise DistributedError(f"--nproc: must be a positive integer, got {nproc!r}")
    resolved = resolve_backend(backend, device)
    if resolved == "nccl" and nproc > torch.cuda.device_count():
        raise DistributedError(
            f"--nproc {nproc}: nccl needs one GPU per process and this machine has {torch.cuda.device_count()}; "
            "use --nproc <= the GPU count, or several machines (docs/CLUSTER.md)"
        )
    return resolved


class ProcessGroupReducer:
    """Sums over the ranks of a process group (the context's
    :class:`~scalarize.methods.context.Reducer`)."""

    def __init__(self, world: int, group: Any = None) -> None:
        self.world = world
        self.group = group

    def sum(self, tensor: Tensor) -> Tensor:
        out = tensor.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=self.group)
        return out


@dataclass
class Distributed:
    """This process's place in data-parallel training (see the module docstring)."""

    rank: int
    world: int
    local_rank: int
    backend: str
    device: torch.device
    #: gloo group for Python objects (commands, checkpoints), whatever the data backend
    control: Any = None
    reducer: ProcessGroupReducer = field(init=False)
    #: rank 0: between runs, the other ranks wait for a command (see :func:`finish`)
    idle: bool = True

    def __post_init__(self) -> None:
        self.reducer = ProcessGroupReducer(self.world)

    @property
    def is_driver(self) -> bool:
        return self.rank == 0

    # -- objects, from rank 0 ----------------------------------------------------------------
    def broadcast(self, value: Any = None) -> Any:
        """Rank 0's ``value`` on every rank (pickled over the control group)."""
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value, group=self.control)
        return out

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank."""
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() > 0)

    # -- tensors, from rank 0 ----------------------------------------------------------------
    def broadcast_tensors(self, tensors: Sequence[Tensor]) -> None:
        """Overwrites ``tensors`` (parameters, buffers) with rank 0's, in place."""
        for tensor in tensors:
            if not isinstance(tensor, Tensor) or tensor.device != self.device:
                continue  # e.g. a CPU generator state held by a module
            data = tensor.detach()
            if not data.is_contiguous():
                copy = data.contiguous()
                dist.broadcast(copy, src=0)
                data.copy_(copy)
            else:
                dist.broadcast(data, src=0)


_CURRENT: Distributed | None = None


def current() -> Distributed | None:
    """This process's :class:`Distributed` after :func:`init` (``None`` in one process)."""
    return _CURRENT


def _loopback_interface() -> str | None:
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:  # pragma: no cover - platform without it
        return None
    return next((n for n in names if n == "lo" or n.startswith("lo")), None)


def init(backend: str = "auto", device: str = "auto") -> Distributed:
    """Joins the process group that torchrun described in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); ``backend`` as
    ``--dist-backend``, ``device`` the config's. Idempotent."""
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    resolved = resolve_backend(backend, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if resolved == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {local_rank}: this machine has {torch.cuda.device_count()} GPU(s); start at most one "
                "process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(local_rank)
        where = torch.device("cuda", local_rank)
    else:
        where = (
            torch.device("cpu")
            if device == "cpu" or not torch.cuda.is_available()
            else torch.device("cuda", local_rank)
        )
        if where.type == "cuda":
            torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        options: dict[str, Any] = {"backend": resolved, "timeout": TIMEOUT}
        if resolved == "nccl":
            options["device_id"] = where
        dist.init_process_group(**options)
    control = dist.new_group(backend="gloo") if resolved != "gloo" else None
    _CURRENT = Distributed(dist.get_rank(), dist.get_world_size(), local_rank, resolved, where, control)
    return _CURRENT


def shutdown() -> None:
    """Leaves the process group (end of the command)."""
    global _CURRENT
    if _CURRENT is not None and dist.is_initialized():
        dist.destroy_process_group()
    _CURRENT = None


# -- the shard of each batch ---------------------------------------------------------------------


@dataclass
class ShardBatch(Batch):
    """This rank's rows of a global batch: ``counts`` per domain here, ``total`` in the batch."""

    total: Tensor = None  # type: ignore[assignment]


class ShardedSampler:
    """Draws the global batches of ``sampler`` (the same on every rank) and reads this rank's
    rows of each (every ``world``-th, see :meth:`shard`): disjoint shards whose union is the
    global batch, each with the batches' domain mixture (MDL). Its state is ``sampler``'s, so a
    checkpoint resumes on any number of processes."""

    def __init__(self, sampler: EpochSampler | MixtureSampler, rank: int, world: int) -> None:
        if not isinstance(sampler, (EpochSampler, MixtureSampler)):
            raise DistributedError(f"data-parallel training cannot shard a {type(sampler).__name__}")
        self.sampler = sampler
        self.rank = rank
        self.world = world

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    @property
    def batch_size(self) -> int:
        return self.sampler.batch_size

    def set_weights(self, weights: Tensor | None) -> None:
        self.sampler.set_weights(weights)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)

    def shard(self, draw: Draw) -> Draw:
        """This rank's rows of a global batch: rows ``k, k + world, ...`` of the domain-grouped
        batch, ``k = (rank + o) mod world`` with an offset ``o`` read from the batch itself (its
        first index), so that no rank always takes the odd row of a domain: every rank's stream
        has the batches' mixture. Each row keeps its augmentation."""
        offset = int(draw.groups[0][1][0]) if draw.groups else 0
        groups, counts, positions, start = [], torch.zeros_like(draw.counts), [], 0
        for domain, rows in draw.groups:
            first = (self.rank - offset - start) % self.world  # the first row of this group that is ours
            mine = torch.arange(first, len(rows), self.world)
            if len(mine):
                groups.append((domain, rows[mine]))
                counts[domain] += len(mine)
                positions.append(mine + start)
            start += len(rows)
        augment = draw.augment[torch.cat(positions)] if draw.augment is not None and positions else None
        return Draw(groups, counts, augment)

    def next_batch(self) -> ShardBatch:
        draw = self.sampler.next_draw()
        batch = read_draws(self.sampler.splits, [self.shard(draw)], self.sampler.augmentation)
        return ShardBatch(batch.inputs, batch.targets, batch.counts, draw.counts.clone())


def check_batches(benchmark: Benchmark, batch_size: int, world: int) -> None:
    """Every rank must get at least one sample of every batch (one-line error otherwise)."""
    if batch_size < world:
        raise DistributedError(
            f"batch_size: {batch_size} is smaller than the {world} processes; every process needs at least one "
            "sample per batch (batch_size is the global batch, split across the processes)"
        )
    if benchmark.setting == "mtl":
        last = len(benchmark.split("train")) % batch_size
        if 0 < last < world:
            raise DistributedError(
                f"batch_size: the last batch of each epoch holds {last} sample(s) ({len(benchmark.split('train'))} "
                f"training samples mod {batch_size}), fewer than the {world} processes; choose a batch size that "
                "leaves at least one sample per process"
            )


def shard_losses(
    benchmark: Benchmark,
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    counts: Tensor,
    total: Tensor,
    world: int,
) -> Tensor:
    """``[T]``: this rank's losses scaled so that their mean over the ranks is the global batch's.

    MTL: each task's mean over this rank's ``n_r`` rows times ``world · n_r / n`` (1 for equal
    shards: the plain mean). MDL: each domain's mean over this rank's rows of it times
    ``world · n_{r,d} / n_d`` (0 for a domain absent from the global batch). Exact for losses that
    are means over samples (every built-in task kind).
    """
    if benchmark.setting == "mtl":
        factor = world * int(counts.sum()) / int(total.sum())
        losses = [t.loss(outputs[t.name], targets[t.name]) for t in benchmark.tasks]
        return torch.stack(losses if factor == 1.0 else [loss * factor for loss in losses])
    local = objective_losses(benchmark, outputs, targets, counts)
    factors = world * counts.to(torch.float64) / total.clamp(min=1).to(torch.float64)
    return local * factors.to(local)


def rank_seed(seed: int, rank: int) -> int:
    """The global RNG's seed of rank ``rank > 0`` (dropout and the like draw apart on each rank)."""
    return (seed * 1_000_003 + rank * 7_919) % (2**63 - 1)


# -- the end of a command (rank 0 drives the runs and the others serve them: train/run.py) -------


def finish(context: Distributed) -> None:
    """Rank 0, at the end of the command: tells the waiting ranks to stop. After a failure in
    the middle of a run the others are inside a collective: rank 0 just exits, which ends them."""
    if context.is_driver and context.idle:
        context.broadcast(("stop",))


# -- scalarize train --nproc N ------------------------------------------------------------------


def launch(arguments: Sequence[str], nproc: int, *, log: Callable[[str], None] = print) -> int:
    """Starts ``python -m scalarize train <arguments>`` on ``nproc`` local processes with
    torch's elastic launcher (what ``torchrun --standalone`` does); returns the exit code (rank
    0's when it failed: 2 for bad input, as in one process)."""
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed").setLevel(logging.ERROR)
    env = os.environ
    if "GLOO_SOCKET_IFNAME" not in env:  # one machine: the processes talk over loopback
        interface = _loopback_interface()
        if interface:
            env["GLOO_SOCKET_IFNAME"] = interface
    env.setdefault("OMP_NUM_THREADS", "1")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"scalarize-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    try:
        elastic_launch(config, sys.executable)("-m", "scalarize", "train", *arguments)
    except ChildFailedError as error:
        failures = error.failures
        first_rank, first = min(failures.items(), key=lambda item: (item[1].timestamp, item[0]))
        if first.exitcode < 0:  # killed by a signal (the OOM killer, kill -9): nobody interrupted
            log(
                f"scalarize: error: training stopped: process {first_rank} was killed ({first.signal_name()}); "
                "run the same command again to resume from the last checkpoint"
            )
            return 1
        code = failures[0].exitcode if 0 in failures else next(iter(failures.values())).exitcode
        ranks = ", ".join(f"{rank} (exit code {f.exitcode})" for rank, f in sorted(failures.items()))
        if code not in (2, 130, 143):  # those already said what happened in one line
            log(
                f"scalarize: error: training stopped: process(es) {ranks} failed; run the same command again to "
                "resume from the last checkpoint"
            )
        return code if code > 0 else 1
    return 0
