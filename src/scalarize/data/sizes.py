"""How large a generated benchmark may be: the sizes a user sets (``train_size``,
``num_tasks`` …) are checked against the memory their arrays would take *before* anything is
allocated, as ``model.width`` is checked against the parameters it gives
(:func:`scalarize.train.setup.check_model_size`), so that ``train_size=10000000000`` is one line
naming the option instead of numpy's out-of-memory traceback.

The bound is the machine's physical memory (:func:`memory_bytes`): a build past it cannot
succeed here; below it, it may still be refused by the operating system, like any allocation.
"""

from __future__ import annotations

import os

#: When the machine's memory cannot be read.
FALLBACK_BYTES = 64 * 2**30


def memory_bytes() -> int:
    """The machine's physical memory in bytes (``FALLBACK_BYTES`` when it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return FALLBACK_BYTES


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"


def check_build_size(
    benchmark: str, sizes: dict[str, int], bytes_per_sample: float, peak_bytes: float = 0.0, sample: str = ""
) -> None:
    """Raises a one-line ``ValueError`` naming the largest of ``sizes`` (``{option: samples}``)
    and ``sample`` (the options that set a sample's size, e.g. ``input_dim=64``) when
    ``sum(sizes) * bytes_per_sample + peak_bytes`` (what the build holds at its peak) exceeds the
    machine's memory."""
    for option, value in sizes.items():
        if value < 0:
            raise ValueError(f"{option} must be >= 0, got {value:,}")
    need = sum(sizes.values()) * bytes_per_sample + peak_bytes
    have = memory_bytes()
    if need > have:
        option = max(sizes, key=sizes.__getitem__)
        raise ValueError(
            f"{option}={sizes[option]:,}{f' ({sample})' if sample else ''} needs about {_bytes(need)} of memory to build {benchmark}; this "
            f"machine has {_bytes(have)}: choose a smaller {option}{' or smaller samples' if sample else ''}"
        )
