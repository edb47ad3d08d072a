"""Bottleneck ResNets (He et al. 2016): ResNet-26/50/101/152 with a width multiplier.

The layout of Royer et al. (NeurIPS 2023), who trained ResNet-26, -50 and -101 at widths 0.25,
0.5 and 1 on 64 px images. Four stages of bottleneck blocks (1x1 → 3x3 → 1x1 convolutions, the
last with 4x the block's channels, batch normalisation, an identity or 1x1 projection shortcut,
stride on the 3x3 convolution as in torchvision and timm), then global average pooling: its
``[B, 2048·width]`` output is the shared representation.

* ``depth`` is the number of weighted layers, ``3·(blocks) + 2``: 26, 50, 101 and 152 are the
  published layouts (2-2-2-2, 3-4-6-3, 3-4-23-3, 3-8-36-3 blocks per stage); any other depth
  ``12n + 2`` (14, 38, 62, ...) has ``n`` blocks in every stage.
* ``width`` multiplies every channel count: the stem and the stages' ``64, 128, 256, 512``
  (blocks output 4x that). Width 1 is the standard ResNet-50 trunk (23,508,032 parameters).
* option ``stem``: ``imagenet`` (7x7 stride-2 convolution and 3x3 stride-2 max-pool: /4),
  ``cifar`` (one 3x3 stride-1 convolution, no pooling: for small images) or ``auto`` (default:
  ``cifar`` when the image's shorter side is at most 64 px, else ``imagenet``).

Parameter names are those of torchvision's and timm's ``ResNet`` (without ``fc``): an ImageNet
checkpoint at width 1 loads with ``load_state_dict(..., strict=False)``. Written here rather than
taken from timm or torchvision because neither scales the stage widths, and timm needs a
torchvision whose compiled operators match the installed torch (a CPU build of torch and
PyPI's torchvision do not).
"""

from __future__ import annotations

from torch import Tensor, nn

from scalarize.models.options import image_shape, reject_unknown_options

FAMILY = "resnet_bottleneck"
BASE_CHANNELS = 64
EXPANSION = 4
#: Blocks per stage of the published depths (He et al. 2016; ResNet-26 as in timm).
LAYOUTS = {26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STEMS = ("auto", "imagenet", "cifar")
#: ``stem: auto`` picks the CIFAR stem for images whose shorter side is at most this.
SMALL_IMAGE_SIDE = 64


class Bottleneck(nn.Module):
    """1x1 (reduce) → 3x3 (stride) → 1x1 (expand x4), each with batch norm, plus the shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        out_channels = channels * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class BottleneckResNet(nn.Module):
    """Stem, four stages ``layer1``..``layer4`` of bottleneck blocks, global average pooling."""

    def __init__(self, in_channels: int, blocks: tuple[int, ...], width: float, stem: str) -> None:
        super().__init__()
        stem_channels = scaled(BASE_CHANNELS, width)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        channels = stem_channels
        for stage, count in enumerate(blocks):
            planes = scaled(BASE_CHANNELS * 2**stage, width)
            stride = 1 if stage == 0 else 2
            layer = [Bottleneck(channels, planes, stride)]
            layer += [Bottleneck(planes * EXPANSION, planes, 1) for _ in range(count - 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
            channels = planes * EXPANSION
        self.num_features = channels
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self._initialise()

    def _initialise(self) -> None:
        """He (fan-out) initialisation of the convolutions, as torchvision and timm; the last batch
        norm of each residual branch starts at zero (Goyal et al. 2017; timm's default), so that
        every block starts as the identity."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for module in self.modules():
            if isinstance(module, Bottleneck):
                nn.init.zeros_(module.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x)


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def blocks_per_stage(depth: int) -> tuple[int, ...]:
    """The published layout of ``depth``, else ``n`` blocks per stage for ``depth = 12n + 2``."""
    if depth in LAYOUTS:
        return LAYOUTS[depth]
    if depth >= 14 and (depth - 2) % 12 == 0:
        return ((depth - 2) // 12,) * 4
    raise ValueError(f"{FAMILY}: depth must be 26, 50, 101, 152 or 12n+2 (14, 38, 62, ...), got {depth}")


def choose_stem(stem: str, height: int, width: int) -> str:
    if stem not in STEMS:
        raise ValueError(f"{FAMILY}: option stem must be one of {', '.join(STEMS)}, got {stem!r}")
    if stem == "auto":
        return "cifar" if min(height, width) <= SMALL_IMAGE_SIDE else "imagenet"
    return stem


def resnet_bottleneck_trunk(
    input_shape: tuple[int, ...], width: float = 1.0, depth: int = 50, *, stem: str = "auto", **unknown: object
) -> tuple[nn.Module, int]:
    """A bottleneck ResNet trunk and its feature size ``2048·width`` (see the module docstring)."""
    reject_unknown_options(FAMILY, unknown, ["stem"])
    channels, height, image_width = image_shape(FAMILY, input_shape)
    trunk = BottleneckResNet(channels, blocks_per_stage(depth), width, choose_stem(stem, height, image_width))
    return trunk, trunk.num_features
