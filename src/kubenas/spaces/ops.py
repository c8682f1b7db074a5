"""Torch building blocks shared by the spaces, for 1-D signals (N, C, L) and 2-D images (N, C, H, W).

Every strided block here maps a spatial size L to ceil(L / 2), so branches that meet at a node always agree
on shape, whatever the input resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kubenas.spaces.vocabulary import NONE_OP, OP_NAMES, check_ops, scaled, spatial_dims  # noqa: F401 - re-exported


def conv(dim: int, *args, **kwargs) -> nn.Module:
    return (nn.Conv1d if dim == 1 else nn.Conv2d)(*args, **kwargs)


def batchnorm(dim: int, channels: int, affine: bool = True) -> nn.Module:
    return (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(channels, affine=affine)


def maxpool(dim: int, kernel: int, stride: int) -> nn.Module:
    return (nn.MaxPool1d if dim == 1 else nn.MaxPool2d)(kernel, stride=stride, padding=kernel // 2)


def avgpool(dim: int, kernel: int, stride: int) -> nn.Module:
    cls = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
    return cls(kernel, stride=stride, padding=kernel // 2, count_include_pad=False)


def global_pool(dim: int) -> nn.Module:
    return (nn.AdaptiveAvgPool1d if dim == 1 else nn.AdaptiveAvgPool2d)(1)


class ReLUConvBN(nn.Sequential):
    def __init__(self, dim: int, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.ReLU(),
            conv(
                dim, c_in, c_out, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, bias=False
            ),
            batchnorm(dim, c_out),
        )


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise conv, pointwise conv, BN (DARTS' dil_conv)."""

    def __init__(self, dim: int, c_in: int, c_out: int, kernel: int, stride: int, dilation: int = 2):
        pad = dilation * (kernel // 2)
        super().__init__(
            nn.ReLU(),
            conv(dim, c_in, c_in, kernel, stride=stride, padding=pad, dilation=dilation, groups=c_in, bias=False),
            conv(dim, c_in, c_out, 1, bias=False),
            batchnorm(dim, c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs (DARTS' sep_conv); only the first one strides."""

    def __init__(self, dim: int, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(
            DilConv(dim, c_in, c_in, kernel, stride, dilation=1), DilConv(dim, c_in, c_out, kernel, 1, dilation=1)
        )


class Zero(nn.Module):
    """The 'none' operation: zeros of the output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        index = (slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.dim() - 2)
        return x[index].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two offset strided 1x1 convs, concatenated (DARTS)."""

    def __init__(self, dim: int, c_in: int, c_out: int):
        super().__init__()
        self.dim = dim
        half = (c_out + 1) // 2
        self.relu = nn.ReLU()
        self.conv_a = conv(dim, c_in, half, 1, stride=2, bias=False)
        self.conv_b = conv(dim, c_in, c_out - half, 1, stride=2, bias=False) if c_out > half else None
        self.bn = batchnorm(dim, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        if self.conv_b is None:
            return self.bn(self.conv_a(x))
        shifted = F.pad(x, (0, 1) * self.dim)[(slice(None), slice(None)) + (slice(1, None),) * self.dim]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class ResBlock(nn.Module):
    """NAS-Bench-201's residual reduction block: two ReLU-conv-BN, the first strided, and a 1x1 shortcut."""

    def __init__(self, dim: int, c_in: int, c_out: int):
        super().__init__()
        self.a = ReLUConvBN(dim, c_in, c_out, 3, stride=2)
        self.b = ReLUConvBN(dim, c_out, c_out, 3)
        self.shortcut = nn.Sequential(conv(dim, c_in, c_out, 1, stride=2, bias=False), batchnorm(dim, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


def _skip(dim: int, c: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(dim, c, c)


# The modules behind ``OP_NAMES``: each entry maps (dim, channels, stride) to a module with as many output
# channels as input channels.
OPS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "none": lambda dim, c, s: Zero(s),
    "skip_connect": _skip,
    "max_pool_3x3": lambda dim, c, s: maxpool(dim, 3, s),
    "avg_pool_3x3": lambda dim, c, s: avgpool(dim, 3, s),
    "nor_conv_1x1": lambda dim, c, s: ReLUConvBN(dim, c, c, 1, s),
    "nor_conv_3x3": lambda dim, c, s: ReLUConvBN(dim, c, c, 3, s),
    "conv_3x3": lambda dim, c, s: ReLUConvBN(dim, c, c, 3, s),
    "conv_5x5": lambda dim, c, s: ReLUConvBN(dim, c, c, 5, s),
    "sep_conv_3x3": lambda dim, c, s: SepConv(dim, c, c, 3, s),
    "sep_conv_5x5": lambda dim, c, s: SepConv(dim, c, c, 5, s),
    "dil_conv_3x3": lambda dim, c, s: DilConv(dim, c, c, 3, s),
    "dil_conv_5x5": lambda dim, c, s: DilConv(dim, c, c, 5, s),
}
