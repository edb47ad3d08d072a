"""Encoder–decoder models for dense prediction: one shared encoder, one decoder per task.

Hard parameter sharing as in the dense benchmarks of MTAN (Liu et al., CVPR 2019), CAGrad,
Nash-MTL, FAMO and LibMTL: the encoder's feature map is the shared representation (what
MGDA-UB and GradNorm act on, and what per-task gradients go through: the model is a
:class:`~scalarize.models.MultiTaskModel`), each task's decoder maps it to a ``[B, C_task, H,
W]`` output at the input's resolution (``C_task`` = the task's ``num_outputs``: classes,
1 for depth, 3 for normals).

Families (``model.family``; ``model.options``):

* ``resnet_dilated`` — DeepLab (Chen et al., "Rethinking Atrous Convolution", 2017; LibMTL's
  and MTAN's ResNet-50 encoder): the bottleneck ResNet of
  :mod:`scalarize.models.bottleneck_resnet` (``depth`` 26/50/101 or 12n+2, ``width``) without its
  pooling, whose last ``dilated_stages`` stages (default 2: ``layer3`` and ``layer4``) replace
  their stride 2 by dilation (2 and 4), as Yu et al.'s dilated residual networks (2017): output
  stride 8 with the ImageNet stem. The first 3x3 convolution of a dilated stage takes half its
  stage's dilation (the CSAIL / MTAN ``_nostride_dilate`` rule). Options: ``stem`` (``auto``,
  ``imagenet``, ``cifar``), ``dilated_stages`` (0, 1, 2), ``decoder``, ``decoder_channels``.
* ``segnet`` — SegNet (Badrinarayanan et al. 2017) as MTAN's hard-sharing baseline
  (``model_segnet_split.py``) uses it: a VGG-16-like encoder of five stages (64, 128, 256, 512, 512
  channels x ``width``; 2, 2, 3, 3, 3 3x3 conv–BN–ReLU layers) with max-pooling, and a mirrored
  decoder that unpools with the encoder's pooling indices; all of it is shared, and its
  full-resolution ``64·width``-channel map is the representation. Options: ``decoder``
  (default ``light``: MTAN's task layer, a 3x3 conv–BN–ReLU then a 1x1 convolution).

Decoders (``decoder``): ``aspp`` — DeepLab-v3's head: atrous spatial pyramid pooling (a 1x1
branch, three 3x3 branches at ``aspp_rates``, default 12, 24, 36 for output stride 8, and an
image-pooling branch; ``decoder_channels`` each, BN and ReLU), a 1x1 projection, a 3x3
conv–BN–ReLU and a 1x1 classifier; ``light`` — a 3x3 conv–BN–ReLU and a 1x1 convolution.
Both end with bilinear upsampling to the input size. ``decoder_channels`` defaults to
``256·width`` for ``aspp`` and ``light`` on ``resnet_dilated`` (DeepLab's 256 at width 1) and to
the representation's channels on ``segnet``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalarize.data.task import Task
from scalarize.models.bottleneck_resnet import BottleneckResNet, blocks_per_stage, choose_stem, scaled
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.options import image_shape

DECODERS = ("aspp", "light")
DEFAULT_RATES = (12, 24, 36)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DilatedResNet(nn.Module):
    """A bottleneck ResNet's stem and four stages, the last ``dilated_stages`` dilated instead of
    strided; returns the ``[B, 2048·width, H/s, W/s]`` feature map."""

    def __init__(self, in_channels: int, depth: int, width: float, stem: str, dilated_stages: int) -> None:
        super().__init__()
        net = BottleneckResNet(in_channels, blocks_per_stage(depth), width, stem)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.num_features = net.num_features
        for offset, stage in enumerate((self.layer3, self.layer4)[2 - dilated_stages :] if dilated_stages else ()):
            _dilate(stage, 2 ** (offset + 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _dilate(stage: nn.Sequential, dilation: int) -> None:
    """Strides of 2 become 1; 3x3 convolutions get ``dilation`` (half of it for the one that was
    strided), with the padding that keeps the size."""
    for module in stage.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if module.stride == (2, 2):
            module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation, module.padding = (dilation // 2,) * 2, (dilation // 2,) * 2
        elif module.kernel_size == (3, 3):
            module.dilation, module.padding = (dilation,) * 2, (dilation,) * 2


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab-v3): 1x1, three dilated 3x3 and image pooling
    branches, concatenated and projected to ``channels``."""

    def __init__(self, in_channels: int, channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(in_channels, channels, 1)])
        self.branches.extend(_conv_bn_relu(in_channels, channels, 3, rate) for rate in rates)
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.project = nn.Sequential(
            nn.Conv2d(channels * (len(rates) + 2), channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pooling(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class Decoder(nn.Module):
    """One task's decoder: ASPP or a light conv head, a 1x1 classifier, upsampling to ``size``."""

    def __init__(
        self, kind: str, in_channels: int, channels: int, outputs: int, size: tuple[int, int], rates: Sequence[int]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if kind == "aspp":
            layers += [ASPP(in_channels, channels, rates), _conv_bn_relu(channels, channels)]
        else:
            layers += [_conv_bn_relu(in_channels, channels)]
        layers.append(nn.Conv2d(channels, outputs, 1))
        self.layers = nn.Sequential(*layers)
        self.size = tuple(size)

    def forward(self, features: Tensor) -> Tensor:
        out = self.layers(features)
        if tuple(out.shape[-2:]) != self.size:
            out = F.interpolate(out, size=self.size, mode="bilinear", align_corners=False)
        return out


def _check(decoder: str, rates) -> tuple[int, ...]:
    if decoder not in DECODERS:
        raise ValueError(f"option decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if (
        not isinstance(rates, (list, tuple))
        or len(rates) != 3
        or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rates)
    ):
        raise ValueError(f"option aspp_rates must be three positive integers, got {rates!r}")
    return tuple(rates)


def _decoders(tasks: Sequence[Task], kind: str, in_channels: int, channels: int, size, rates) -> dict[str, nn.Module]:
    return {t.name: Decoder(kind, in_channels, channels, t.num_outputs, size, rates) for t in tasks}


def resnet_dilated(
    input_shape: tuple[int, ...],
    tasks: Sequence[Task],
    width: float = 1.0,
    depth: int = 50,
    *,
    stem: str = "auto",
    dilated_stages: int = 2,
    decoder: str = "aspp",
    decoder_channels: int = 0,
    aspp_rates: Sequence[int] = DEFAULT_RATES,
) -> MultiTaskModel:
    """A dilated bottleneck ResNet encoder and one decoder per task (see the module docstring)."""
    channels_in, height, image_width = image_shape("resnet_dilated", tuple(input_shape))
    rates = _check(decoder, list(aspp_rates))
    if dilated_stages not in (0, 1, 2):
        raise ValueError(f"option dilated_stages must be 0, 1 or 2, got {dilated_stages!r}")
    encoder = DilatedResNet(channels_in, depth, width, choose_stem(stem, height, image_width), dilated_stages)
    channels = decoder_channels or scaled(256, width)
    return MultiTaskModel(
        encoder, _decoders(tasks, decoder, encoder.num_features, channels, (height, image_width), rates)
    )


class SegNet(nn.Module):
    """SegNet's encoder (five VGG stages, max-pooling with indices) and mirrored decoder (unpooling
    with the encoder's indices), shared by all tasks; returns the full-resolution feature map."""

    def __init__(self, in_channels: int, width: float) -> None:
        super().__init__()
        filters = [scaled(c, width) for c in (64, 128, 256, 512, 512)]
        layers = (2, 2, 3, 3, 3)
        self.encoder = nn.ModuleList()
        previous = in_channels
        for count, channels in zip(layers, filters):
            self.encoder.append(
                nn.Sequential(*[_conv_bn_relu(previous if i == 0 else channels, channels) for i in range(count)])
            )
            previous = channels
        self.decoder = nn.ModuleList()
        outputs = [filters[i - 1] if i else filters[0] for i in range(len(filters))]
        for stage in reversed(range(len(filters))):
            count, channels, out = layers[stage], filters[stage], outputs[stage]
            self.decoder.append(
                nn.Sequential(*[_conv_bn_relu(channels, out if i == count - 1 else channels) for i in range(count)])
            )
        self.num_features = filters[0]

    def forward(self, x: Tensor) -> Tensor:
        indices, sizes = [], []
        for stage in self.encoder:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, index = F.max_pool2d(x, 2, 2, return_indices=True)
            indices.append(index)
        for stage, index, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            x = stage(F.max_unpool2d(x, index, 2, 2, output_size=size))
        return x


def segnet(
    input_shape: tuple[int, ...],
    tasks: Sequence[Task],
    width: float = 1.0,
    *,
    decoder: str = "light",
    decoder_channels: int = 0,
    aspp_rates: Sequence[int] = (1, 2, 3),
) -> MultiTaskModel:
    """SegNet shared by every task and one decoder per task (see the module docstring)."""
    channels_in, height, image_width = image_shape("segnet", tuple(input_shape))
    rates = _check(decoder, list(aspp_rates))
    if min(height, image_width) < 32:
        raise ValueError(f"segnet pools 5 times: images need sides of at least 32 px, got {height}x{image_width}")
    trunk = SegNet(channels_in, width)
    channels = decoder_channels or trunk.num_features
    return MultiTaskModel(trunk, _decoders(tasks, decoder, trunk.num_features, channels, (height, image_width), rates))
