"""I3D, the inflated Inception-v1 of Carreira & Zisserman (2017, "Quo Vadis, Action Recognition?").

FVD (Unterthiner et al., 2018) compares I3D Kinetics-400 logits of real and generated videos. This
is the PyTorch port's layout (piergiaj/pytorch-i3d, used by TATS, DisCo and others), so
``i3d_pretrained_400.pt`` loads unchanged: end points are attributes named after the TF graph
(``Conv3d_1a_7x7``, ``Mixed_3b``, ...), each unit holds ``conv3d`` and ``bn``. Convolutions and
pools pad like TensorFlow's "SAME".
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicpose.evaluation.weights import load_exact, read_state_dict, weight_path


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """F.pad arguments for TensorFlow "SAME" padding of a (T, H, W) input (extra pixel at the end)."""
    pads: list[int] = []
    for s, k, st in reversed(list(zip(size, kernel, stride))):
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """Conv3d (+ BatchNorm, eps 1e-3) (+ ReLU) with "SAME" padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel=(1, 1, 1),
        stride=(1, 1, 1),
        activation: bool = True,
        batch_norm: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Zero padding, as the port does (inputs to these pools are post-ReLU, so zeros never win wrongly).
        x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, in_channels, branch widths) of every Inception module, from the I3D paper / TF graph.
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """I3D returning Kinetics logits (B, num_classes), averaged over time, for RGB in [-1, 1]."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule(*MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, InceptionModule(*MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule(*MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, activation=False, batch_norm=False, bias=True)
        self.order = [
            "Conv3d_1a_7x7",
            "MaxPool3d_2a_3x3",
            "Conv3d_2b_1x1",
            "Conv3d_2c_3x3",
            "MaxPool3d_3a_3x3",
            "Mixed_3b",
            "Mixed_3c",
            "MaxPool3d_4a_3x3",
            "Mixed_4b",
            "Mixed_4c",
            "Mixed_4d",
            "Mixed_4e",
            "Mixed_4f",
            "MaxPool3d_5a_2x2",
            "Mixed_5b",
            "Mixed_5c",
        ]

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> logits (B, num_classes).

        The port pools with a fixed 1x7x7 kernel, which at its 224x224 input is the spatial mean
        taken here; the logits of every remaining time step are then averaged.
        """
        x = clips
        for name in self.order:
            x = getattr(self, name)(x)
        x = x.mean(dim=(3, 4), keepdim=True)
        return self.logits(x).flatten(2).mean(dim=2)


def load_i3d(weights_dir: str | Path) -> InceptionI3d:
    """I3D with ``i3d_pretrained_400.pt`` (a plain state dict in the pytorch-i3d layout)."""
    path = weight_path(weights_dir, "i3d")
    return load_exact(InceptionI3d(), read_state_dict(path), path)
