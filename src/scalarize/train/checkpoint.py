"""Checkpoints written by atomic rename: a killed process leaves the last complete one."""

from __future__ import annotations

import os
from pathlib import Path

import torch


class Checkpointable:
    """For classes with ``state_dict``/``load_state_dict``, ``checkpoint_path`` (or ``None``)
    and ``device``: save and resume their whole state."""

    checkpoint_path: Path | None
    device: torch.device

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, self.checkpoint_path)

    def try_resume(self) -> bool:
        """Loads the checkpoint if there is one; returns whether it did."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return False
        # on the CPU: RNG and generator states must be CPU tensors; load_state_dict copies the
        # rest onto the device of what it loads into
        self.load_state_dict(torch.load(self.checkpoint_path, map_location="cpu", weights_only=False))
        return True
