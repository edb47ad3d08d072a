"""Checkpoints: written by atomic rename (a killed process leaves the last complete one), read
without running code.

:func:`load_checkpoint` reads with ``torch.load(weights_only=True)``: a pickle may only rebuild
tensors, containers, numbers and strings, plus the few numpy types a checkpoint holds (numpy
generator states, arrays and scalars, allowlisted by :func:`safe_globals`). A checkpoint from a
shared experiment directory that carries anything else, such as a pickled callable, is refused
with one line (:class:`CheckpointError`) instead of being executed; so is a truncated or corrupt
file, with what to do about it.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from scalarize.errors import ScalarizeError
from scalarize.files import refuse_linked_folders, write_bytes


class CheckpointError(ScalarizeError):
    """A checkpoint that cannot be read safely (reported to users as one line)."""


def _numpy_globals() -> list[Any]:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed the module
    allowed: list[Any] = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "uint32", "uint8", "bool")]
    return allowed + [np.float64, np.float32, np.int64, np.int32, np.uint32, np.bool_]


def safe_globals() -> list[Any]:
    """What a checkpoint may hold besides tensors and builtins: numpy arrays, dtypes, scalars."""
    return _numpy_globals()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, on the CPU (RNG and generator states must be CPU tensors;
    ``load_state_dict`` copies the rest onto the device of what it loads into)."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
            return checkpoint
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise CheckpointError(
                f"{path}: refused: it holds objects other than tensors and plain data (a checkpoint "
                "that could run code when loaded); delete it to retrain that run"
            ) from None
        raise CheckpointError(f"{path}: corrupt checkpoint; delete it to retrain that run (the rest is kept)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint; delete it to retrain that run (the rest is kept)"
        ) from None


MODEL_FILE = "model.pt"


def run_directory(directory: str | Path, name: str) -> Path:
    """Where a run of an experiment directory keeps its files (checkpoint, reported model)."""
    return Path(directory) / "runs" / name.replace("/", "_")


def save_atomically(state: object, path: Path) -> None:
    """``torch.save`` to a temporary file renamed over ``path``: a kill leaves the old file or the
    new one, never half of one (a leftover temporary file of a killed process is removed when the next command takes the
    experiment directory, see ``scalarize.store.database.hold_directory``), and a planted symlink
    at ``path`` is replaced, never written through (:mod:`scalarize.files`)."""
    refuse_linked_folders(path)  # before mkdir: a linked runs/ would get its folder made outside
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised first: a full disk is then an OSError naming the file
    try:
        write_bytes(path, buffer.getbuffer())
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None


class Checkpointable:
    """For classes with ``state_dict``/``load_state_dict``, ``checkpoint_path`` (or ``None``)
    and ``device``: save and resume their whole state."""

    checkpoint_path: Path | None
    device: torch.device

    if TYPE_CHECKING:  # provided by the class that mixes this in

        def state_dict(self) -> dict[str, Any]: ...

        def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            save_atomically(self.state_dict(), self.checkpoint_path)

    def try_resume(self) -> bool:
        """Loads the checkpoint if there is one; returns whether it did."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return False
        self.load_state_dict(load_checkpoint(self.checkpoint_path))
        return True
