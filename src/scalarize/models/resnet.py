"""A small ResNet trunk of basic blocks (He et al. 2016) scaled by ``width`` and ``depth``.

A 3x3 stem with ``round(16 * width)`` channels, then three stages (channels x1, x2, x4, the
last two halving the resolution), each of ``depth`` basic blocks (two 3x3 convolutions with batch
normalisation and an identity or 1x1 shortcut), then global average pooling. ``depth=1`` gives an
8-layer network, ``depth=3`` the classic ResNet-20 layout.
"""

from __future__ import annotations

from torch import Tensor, nn

BASE_CHANNELS = 16


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet_trunk(input_shape: tuple[int, ...], width: float = 1.0, depth: int = 1) -> tuple[nn.Module, int]:
    if len(input_shape) != 3:
        raise ValueError(f"the resnet family needs image inputs [C, H, W], got shape {input_shape}")
    channels = max(1, round(BASE_CHANNELS * width))
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    ]
    in_channels = channels
    for stage, multiplier in enumerate((1, 2, 4)):
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(in_channels, channels * multiplier, stride))
            in_channels = channels * multiplier
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), in_channels
