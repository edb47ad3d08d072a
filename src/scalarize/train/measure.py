"""Peak tensor memory of one training step, the same way on a CPU and on a GPU.

What is measured: the most bytes of tensor storage alive at once during the step **above what
was allocated when it started** (the model, the optimizer's state, the data): activations,
gradients, per-task Jacobians and a method's temporaries. This is the part of memory that
depends on the method and on the number of tasks.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
  ``memory_allocated`` at the start (the caching allocator's reserve is not counted);
* CPU: the process's resident size mixes in the allocator's retained pages, Python objects and
  every earlier run of the process, and the peak cannot be reset portably. Instead a
  :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees every tensor an operator
  returns (backward passes and ``vmap`` included), counts each storage once while it is alive
  (a weak reference tells when it is freed) and keeps the peak: what
  ``max_memory_allocated`` counts on a GPU, without allocator rounding. Tensors allocated
  outside operators (none in a training step) and NumPy arrays (a few ``[T, T]`` matrices) are
  not seen.

The CPU meter costs a Python call per operator, so the trainer measures one step per evaluation
interval, not every step (and leaves that step out of its timing).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

R = TypeVar("R")


# torch leaves TorchDispatchMode's __init_subclass__ and __init__ unannotated
class _StorageCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Bytes of the tensor storages that operators return while active: current and peak."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._alive: dict[int, weakref.ref[torch.UntypedStorage]] = {}
        self.current = 0
        self.peak = 0

    def _count(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._alive:
            return
        size = storage.nbytes()

        def freed(_ref: weakref.ref[torch.UntypedStorage], key: int = key, size: int = size) -> None:
            if self._alive.pop(key, None) is not None:
                self.current -= size

        self._alive[key] = weakref.ref(storage, freed)
        self.current += size
        self.peak = max(self.peak, self.current)

    def __torch_dispatch__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                try:
                    self._count(value)
                except (RuntimeError, NotImplementedError):  # e.g. a tensor without storage
                    pass
        return out


def step_memory(fn: Callable[[], R], device: torch.device | str) -> tuple[R, int]:
    """Runs ``fn()`` and returns ``(its result, peak bytes above the start)`` (module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, max(0, torch.cuda.max_memory_allocated(device) - start)
    counter = _StorageCounter()
    with counter:
        result = fn()
    return result, counter.peak
