"""AdaFace's IR-101 face embedding network (Kim et al., 2022, "AdaFace: Quality Adaptive Margin").

An improved-residual ("IR") ResNet on aligned 112x112 BGR faces scaled to [-1, 1]; the output is
a unit-norm 512-d embedding. Module names match mk-minchul/AdaFace's ``net.Backbone`` so the
published Lightning checkpoint (``state_dict`` with ``model.``-prefixed backbone keys and the
training head's ``head.kernel``) loads without renaming.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from magicpose.evaluation.weights import load_exact, read_state_dict, weight_path

IR101_UNITS = (3, 13, 30, 3)
STAGE_DEPTHS = (64, 128, 256, 512)
FACE_SIZE = 112


class BasicBlockIR(nn.Module):
    """Pre-activation residual unit: BN-Conv-BN-PReLU-Conv(stride)-BN plus a (projected) shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """IR ResNet; ``units`` per stage (3, 13, 30, 3) gives IR-101. Returns unit-norm (B, 512) embeddings."""

    def __init__(self, units: tuple[int, int, int, int] = IR101_UNITS):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks: list[nn.Module] = []
        in_channels = 64
        for depth, count in zip(STAGE_DEPTHS, units):
            blocks.append(BasicBlockIR(in_channels, depth, stride=2))
            blocks += [BasicBlockIR(depth, depth, stride=1) for _ in range(count - 1)]
            in_channels = depth
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512, affine=False),
        )

    @torch.no_grad()
    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, 3, 112, 112) BGR in [-1, 1] -> (B, 512) embeddings of unit length."""
        x = self.output_layer(self.body(self.input_layer(faces)))
        return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)


def adaface_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The backbone's tensors from an AdaFace checkpoint, as AdaFace's own ``inference.py`` selects them."""
    state = checkpoint.get("state_dict", checkpoint)
    return {key[len("model.") :]: value for key, value in state.items() if key.startswith("model.")}


def load_adaface(weights_dir: str | Path, units: tuple[int, int, int, int] = IR101_UNITS) -> IRBackbone:
    """IR-101 with ``adaface_ir101_webface12m.ckpt`` loaded from `weights_dir`."""
    path = weight_path(weights_dir, "adaface")
    return load_exact(IRBackbone(units), adaface_state_dict(read_state_dict(path)), path)
