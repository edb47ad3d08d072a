"""Training-time augmentation of image batches on the device: random crop and horizontal flip.

The rule (as in the paper's training, Royer et al. 2023, after the usual CIFAR/ImageNet recipes):

* ``crop = p``: the image is padded with ``p`` zero pixels on every side and a window of its own
  size is cut at a random offset ``(dy, dx)``, each uniform in ``0..2p``;
* ``flip``: with probability 1/2 the window is mirrored left to right.

The random numbers are drawn on the CPU, per sample, from the sampler's own augmentation
generator (``draw``), so they belong to the batch's draw: they are in the sampler's
``state_dict`` (a resumed run augments exactly as an uninterrupted one), each member of a stacked
population has its own, and they do not depend on the device, on the storage or on the loader
workers. ``apply`` then only moves pixels (a gather), so the same draw gives the same pixels on
uint8 or float inputs, in memory or streamed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Augmentation:
    """Random crop after zero padding of ``crop`` pixels, and random horizontal ``flip``."""

    crop: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 0:
            raise ValueError(f"augment.crop: expected an integer >= 0 (pixels of padding), got {self.crop!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"augment.flip: expected true or false, got {self.flip!r}")

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.flip

    def draw(self, count: int, generator: torch.Generator) -> Tensor:
        """``[count, 3]`` int64 on the CPU: each sample's ``(dy, dx, flipped)``."""
        offsets = (
            torch.randint(0, 2 * self.crop + 1, (count, 2), generator=generator)
            if self.crop
            else torch.full((count, 2), 0, dtype=torch.long)
        )
        flips = (
            torch.randint(0, 2, (count, 1), generator=generator)
            if self.flip
            else torch.zeros((count, 1), dtype=torch.long)
        )
        return torch.cat([offsets, flips], dim=1)

    def apply(self, images: Tensor, params: Tensor) -> Tensor:
        """``images [..., C, H, W]`` augmented with ``params [N, 3]`` (``N`` = the product of the
        leading dimensions), on the images' device."""
        if not self.active:
            return images
        lead, (channels, height, width) = images.shape[:-3], images.shape[-3:]
        flat = images.reshape(-1, channels, height, width)
        params = params.to(flat.device)
        if len(params) != len(flat):
            raise ValueError(f"augmentation: {len(params)} draws for {len(flat)} images")
        flipped = params[:, 2].bool()
        if not self.crop:
            out = torch.where(flipped[:, None, None, None], flat.flip(-1), flat)
            return out.reshape(images.shape)
        pad = self.crop
        padded = F.pad(flat, (pad, pad, pad, pad))
        rows = params[:, :1] + torch.arange(height, device=flat.device)  # [N, H] in padded coordinates
        columns = params[:, 1:2] + torch.arange(width, device=flat.device)  # [N, W]
        columns = torch.where(flipped[:, None], columns.flip(1), columns)
        samples = torch.arange(len(flat), device=flat.device)[:, None, None]
        out = padded[samples, :, rows[:, :, None], columns[:, None, :]]  # [N, H, W, C]
        return out.permute(0, 3, 1, 2).contiguous().reshape(*lead, channels, height, width)
