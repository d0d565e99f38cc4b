"""Segmentation networks: FC-DenseNet (the paper's) and a U-Net baseline (method.md §4.1).

Both map a one-channel image to ``n_classes`` logits of the same size; the paper's four
classes are background, heart, left lung and right lung.

**FC-DenseNet** (Jégou et al., "The One Hundred Layers Tiramisu", CVPRW 2017). A dense
block of ``n`` layers, each ``BN → ReLU → 3×3 conv (k channels) → dropout``, concatenates
every layer's ``k`` new feature maps to its input. The down path alternates dense blocks
and transitions down (``BN → ReLU → 1×1 conv → dropout → 2×2 max-pool``); the bottleneck
is a dense block; the up path alternates transitions up (a stride-2 3×3 transposed
convolution of the *new* features of the block below) and dense blocks, concatenated with
the skip connection of the same resolution. FC-DenseNet103: blocks 4-5-7-10-12, bottleneck
15, growth ``k = 16``, 48 channels after the first convolution, dropout 0.2 — about 9.3 M
parameters.

**U-Net** (Ronneberger et al., MICCAI 2015): ``depth`` levels of two ``3×3 conv → BN →
ReLU`` with ``base · 2^level`` channels, max-pool down, transposed convolution up, skip
concatenation.

Depth and width are parameters, so the CPU demo trains a small member of each family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class _DenseLayer(nn.Sequential):
    def __init__(self, channels: int, growth: int, dropout: float) -> None:
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, growth, 3, padding=1, bias=True),
            nn.Dropout2d(dropout),
        )


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; returns the ``n_layers · growth`` new maps, and the input
    concatenated with them when ``keep_input``.

    With ``memory_efficient`` (Pleiss et al., "Memory-efficient implementation of
    DenseNets", 2017) each layer's concatenation, batch norm and ReLU are recomputed in the
    backward pass instead of stored: training memory grows linearly instead of
    quadratically with the block's depth, for about a third more compute. Results are the
    same (dropout's random state is replayed).
    """

    def __init__(
        self,
        channels: int,
        growth: int,
        n_layers: int,
        dropout: float,
        keep_input: bool,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        self.keep_input = keep_input
        self.memory_efficient = memory_efficient
        self.layers = nn.ModuleList(_DenseLayer(channels + i * growth, growth, dropout) for i in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            if self.memory_efficient and torch.is_grad_enabled() and x.requires_grad:
                out = checkpoint(_concat_then(layer), *features, use_reentrant=False)
            else:
                out = layer(torch.cat(features, dim=1))
            features.append(out)
        return torch.cat(features if self.keep_input else features[1:], dim=1)


def _concat_then(layer: nn.Module) -> Callable[..., torch.Tensor]:
    """``layer`` on the concatenated features, for :func:`checkpoint`: the first call is the
    forward pass; a later call is the recomputation in the backward pass, which gives the
    same output (batch norm normalises with the batch's own statistics in training) but must
    not update the running statistics a second time (effective momentum 0.19 instead of
    0.1, ``num_batches_tracked`` counting two per step)."""
    calls = 0
    norms = [m for m in layer.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def run(*features: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return layer(torch.cat(features, dim=1))
        kept = [{k: v.clone() for k, v in m.named_buffers()} for m in norms]
        try:
            return layer(torch.cat(features, dim=1))
        finally:  # also when the recomputation stops early (torch ends it once it has what it needs)
            with torch.no_grad():
                for m, buffers in zip(norms, kept, strict=True):
                    for k, v in m.named_buffers():
                        v.copy_(buffers[k])

    return run


class _TransitionDown(nn.Sequential):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=True),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
        )


class FCDenseNet(nn.Module):
    """Fully convolutional DenseNet ("Tiramisu").

    Args:
        in_channels: image channels (1 for CXR).
        n_classes: output classes (4: background, heart, left lung, right lung).
        down_blocks: layers per dense block of the down path (paper: 4, 5, 7, 10, 12).
        bottleneck_layers: layers of the bottleneck block (paper: 15).
        growth: feature maps added per layer, ``k`` (paper: 16).
        first_channels: channels of the first 3×3 convolution (paper: 48).
        dropout: dropout after every convolution (paper: 0.2).
        memory_efficient: recompute concatenations in the backward pass (see
            :class:`DenseBlock`); keeps FC-DenseNet103 training at 256² under 4 GB.

    The input height and width must be multiples of ``2 ** len(down_blocks)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 4,
        down_blocks: Sequence[int] = (4, 5, 7, 10, 12),
        bottleneck_layers: int = 15,
        growth: int = 16,
        first_channels: int = 48,
        dropout: float = 0.2,
        memory_efficient: bool = True,
    ) -> None:
        super().__init__()
        self.factor = 2 ** len(down_blocks)
        self.first = nn.Conv2d(in_channels, first_channels, 3, padding=1, bias=True)
        channels = first_channels
        skips = []
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for n in down_blocks:
            self.down.append(DenseBlock(channels, growth, n, dropout, True, memory_efficient))
            channels += n * growth
            skips.append(channels)
            self.pool.append(_TransitionDown(channels, dropout))
        self.bottleneck = DenseBlock(channels, growth, bottleneck_layers, dropout, False, memory_efficient)
        prev_new = bottleneck_layers * growth
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        up_layers = list(reversed(down_blocks))
        for i, n in enumerate(up_layers):
            self.up.append(nn.ConvTranspose2d(prev_new, prev_new, 3, stride=2, padding=1, output_padding=1, bias=True))
            channels = prev_new + skips[-(i + 1)]
            last = i == len(up_layers) - 1
            self.up_blocks.append(DenseBlock(channels, growth, n, dropout, last, memory_efficient))
            prev_new = n * growth
            if last:
                channels += n * growth
        self.final = nn.Conv2d(channels, n_classes, 1, bias=True)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of {self.factor}")
        x = self.first(x)
        skips = []
        for block, pool in zip(self.down, self.pool, strict=True):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, block in zip(self.up, self.up_blocks, strict=True):
            x = torch.cat([up(x), skips.pop()], dim=1)
            x = block(x)
        return self.final(x)


def fc_densenet103(in_channels: int = 1, n_classes: int = 4, dropout: float = 0.2) -> FCDenseNet:
    """The paper's FC-DenseNet103 (method.md §4.1)."""
    return FCDenseNet(in_channels, n_classes, (4, 5, 7, 10, 12), 15, 16, 48, dropout)


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net baseline.

    Args:
        in_channels, n_classes: as :class:`FCDenseNet`.
        base: channels of the first level (64 in the original U-Net).
        depth: pooling steps (4 in the original).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 4, base: int = 64, depth: int = 4) -> None:
        super().__init__()
        self.factor = 2**depth
        widths = [base * 2**i for i in range(depth + 1)]
        self.enc = nn.ModuleList([_DoubleConv(in_channels, widths[0])])
        self.enc.extend(_DoubleConv(widths[i], widths[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.dec = nn.ModuleList(_DoubleConv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.final = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of {self.factor}")
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.ups, self.dec, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.final(x)


#: the ``memory_efficient`` machine setting of segmentation training (a profile's resource):
#: the model's own option, or recomputation forced on or off (same results, Pleiss et al.)
MEMORY_EFFICIENT_MODES = ("model", "on", "off")


def training_options(arch: str, options: Mapping[str, Any], memory_efficient: str = "model") -> dict[str, Any]:
    """A network's options for training on this machine: an FC-DenseNet's
    ``memory_efficient`` taken from the machine setting unless it is ``model`` (the
    recomputation trades time for memory and does not change the results)."""
    if memory_efficient not in MEMORY_EFFICIENT_MODES:
        raise ValueError(f"memory_efficient must be one of {MEMORY_EFFICIENT_MODES}, got {memory_efficient!r}")
    out = {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in options.items() if k != "arch"}
    if arch == "fcdensenet" and memory_efficient != "model":
        out["memory_efficient"] = memory_efficient == "on"
    return out


def build_segmentation_model(arch: str, n_classes: int = 4, **options: Any) -> nn.Module:
    """A segmentation network by name (config ``segmentation.models.<name>``).

    ``arch`` is ``fcdensenet`` (options ``down_blocks``, ``bottleneck_layers``, ``growth``,
    ``first_channels``, ``dropout``) or ``unet`` (options ``base``, ``depth``).
    """
    if arch == "fcdensenet":
        return FCDenseNet(1, n_classes, **options)
    if arch == "unet":
        return UNet(1, n_classes, **options)
    raise ValueError(f"unknown segmentation architecture {arch!r}; expected fcdensenet or unet")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
