"""Vision Transformers (Dosovitskiy et al. 2021): ViT-Ti/S/B with any patch size.

Royer et al. (NeurIPS 2023) trained ViT-S/4 (ViT-S on 4x4 patches) on 64 px CelebA. The image is
cut into ``patch_size`` x ``patch_size`` patches, each linearly embedded; a learned class token is
prepended and learned position embeddings added; then ``depth`` pre-norm blocks (multi-head
self-attention and a 4x MLP with GELU, each in a residual branch after a LayerNorm). The shared
representation is ``[B, embed_dim]``:

* option ``pool: token`` (default): the final-LayerNorm'ed class token, as in Dosovitskiy et al.
  and timm's default (``global_pool='token'``);
* ``pool: avg``: the mean of the patch tokens followed by a LayerNorm (timm's ``global_pool='avg'``).

Sizes: every ViT has 64-dimensional heads, and ``embed_dim = 64·heads``. Option ``size`` names
the base model, ``ti`` (3 heads, 192), ``s`` (6 heads, 384, the default) or ``b`` (12 heads,
768); ``width`` multiplies its number of heads (rounded half up, at least 1), so that width 0.5,
1 and 2 of ``s`` are exactly ViT-Ti, -S and -B. ``depth`` is the number of blocks (12 for the
published models). Option ``patch_size``: a side that divides the image's, or ``auto`` (default):
the largest of 16, 8, 4, 2, 1 that divides it and leaves at least 14 patches per side, i.e. /16 at
224 px, /4 at 64 px (the paper's ViT-S/4), /2 at 32 px. Option ``drop_path``: the stochastic depth
rate of the last block, rising linearly from 0 over the blocks (Huang et al. 2016, as in DeiT);
default 0. Random, so a vmapped population needs ``vmap(..., randomness="different")`` with it.

Parameter names and initialisation are those of timm's ``VisionTransformer`` (without ``head``):
``vit_small_patch16_224`` weights load into ``vit`` at ``size: s``, depth 12, patch 16, 224 px.
Written here rather than imported from timm, because timm needs a torchvision whose compiled
operators match the installed torch (a CPU build of torch and PyPI's torchvision do not).
Attention is ``F.scaled_dot_product_attention``, which runs under ``vmap`` and batched gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalarize.models.options import image_shape, reject_unknown_options

FAMILY = "vit"
HEAD_DIM = 64
MLP_RATIO = 4
#: Heads of the named sizes (Touvron et al. 2021 for Ti and S; Dosovitskiy et al. 2021 for B).
SIZES = {"ti": 3, "s": 6, "b": 12}
POOLS = ("token", "avg")
AUTO_PATCH_SIDES = (16, 8, 4, 2, 1)
MIN_PATCHES_PER_SIDE = 14


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (timm's layout)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Drops a residual branch per sample with probability ``rate`` while training (stochastic
    depth, Huang et al. 2016), scaling the kept ones by ``1 / (1 - rate)``."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = torch.bernoulli(torch.full((x.shape[0],) + (1,) * (x.dim() - 1), 1 - self.rate, device=x.device))
        return x * keep.to(x.dtype) / (1 - self.rate)


class Block(nn.Module):
    """``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (pre-norm)."""

    def __init__(self, dim: int, heads: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * MLP_RATIO)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch`` x ``patch`` patches → ``[B, patches, dim]``."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """Patch embedding, class token and position embeddings, ``depth`` blocks, pooling."""

    def __init__(
        self,
        in_channels: int,
        patches: int,
        patch: int,
        dim: int,
        heads: int,
        depth: int,
        pool: str,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.num_features = dim
        self.patch_embed = PatchEmbed(in_channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, dim))
        rates = [drop_path * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.Sequential(*(Block(dim, heads, rate) for rate in rates))
        self.norm = nn.LayerNorm(dim, eps=1e-6) if pool == "token" else nn.Identity()
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6) if pool == "avg" else nn.Identity()
        self._initialise()

    def _initialise(self) -> None:
        """timm's ``init_weights_vit_timm``: truncated normal (std 0.02) for the linear layers and
        position embeddings, zero biases, a near-zero class token."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        pooled = x[:, 0] if self.pool == "token" else x[:, 1:].mean(dim=1)
        return self.fc_norm(pooled)


def heads_for(size: str, width: float) -> int:
    if size not in SIZES:
        raise ValueError(f"{FAMILY}: option size must be one of {', '.join(SIZES)}, got {size!r}")
    return max(1, math.floor(SIZES[size] * width + 0.5))


def choose_patch(patch_size: int | str, height: int, width: int) -> int:
    """The patch side: ``patch_size`` checked, or the ``auto`` rule of the module docstring."""
    if patch_size == "auto":
        fits = [p for p in AUTO_PATCH_SIDES if height % p == 0 and width % p == 0]
        return next((p for p in fits if min(height, width) // p >= MIN_PATCHES_PER_SIDE), fits[-1])
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"{FAMILY}: option patch_size must be 'auto' or a positive integer, got {patch_size!r}")
    if height % patch_size or width % patch_size:
        raise ValueError(f"{FAMILY}: option patch_size {patch_size} must divide the image size {height}x{width}")
    return patch_size


def check_option(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{FAMILY}: option {name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def vit_trunk(
    input_shape: tuple[int, ...],
    width: float = 1.0,
    depth: int = 12,
    *,
    size: str = "s",
    patch_size: int | str = "auto",
    pool: str = "token",
    drop_path: float = 0.0,
    **unknown: object,
) -> tuple[nn.Module, int]:
    """A ViT trunk and its feature size ``embed_dim`` (see the module docstring)."""
    reject_unknown_options(FAMILY, unknown, ["size", "patch_size", "pool", "drop_path"])
    channels, height, image_width = image_shape(FAMILY, input_shape)
    if depth < 1:
        raise ValueError(f"{FAMILY}: depth (the number of blocks) must be >= 1, got {depth}")
    check_option("pool", pool, POOLS)
    if isinstance(drop_path, bool) or not isinstance(drop_path, (int, float)) or not 0 <= drop_path < 1:
        raise ValueError(f"{FAMILY}: option drop_path must be in [0, 1), got {drop_path!r}")
    heads = heads_for(size, width)
    patch = choose_patch(patch_size, height, image_width)
    patches = (height // patch) * (image_width // patch)
    trunk = VisionTransformer(channels, patches, patch, HEAD_DIM * heads, heads, depth, pool, float(drop_path))
    return trunk, trunk.num_features
