"""3D ResNet-50 (Hara et al., 2018, "Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?").

The Kinetics-400 network of kenshohara/3D-ResNets-PyTorch that the field's FID-VID uses (DisCo's
``FVD-3DRN50``): shortcut type B, 16-frame 112x112 clips, features are the 2048-d global average
pool before the classifier. Module names match the published ``resnet-50-kinetics.pth``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicpose.evaluation.weights import load_exact, read_state_dict, weight_path

RESNET50_LAYERS = (3, 4, 6, 3)


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet3d(nn.Module):
    """3D ResNet with bottleneck blocks; ``forward`` returns the pooled (B, 2048) features."""

    def __init__(self, layers: tuple[int, int, int, int] = RESNET50_LAYERS, num_classes: int = 400):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.fc = nn.Linear(512 * Bottleneck3d.expansion, num_classes)  # in the file; FID-VID skips it

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * Bottleneck3d.expansion:
            # Shortcut type "B": a strided 1x1x1 convolution with batch norm.
            downsample = nn.Sequential(
                nn.Conv3d(self.in_planes, planes * 4, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(planes * 4),
            )
        modules = [Bottleneck3d(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * 4
        modules += [Bottleneck3d(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) mean-subtracted RGB in [0, 255] -> (B, 2048).

        The original pools with a fixed (ceil(T/16), ceil(H/32), ceil(W/32)) kernel, which for its
        16x112x112 clips is exactly the global average used here (and smaller test clips still work).
        """
        x = F.relu(self.bn1(self.conv1(clips)))
        x = F.max_pool3d(x, kernel_size=3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool3d(x, 1), 1)


def load_resnet3d(weights_dir: str | Path) -> ResNet3d:
    """3D ResNet-50 with ``resnet-50-kinetics.pth`` ({'state_dict': {'module.conv1.weight', ...}})."""
    path = weight_path(weights_dir, "resnet3d")
    checkpoint = read_state_dict(path)
    state = checkpoint.get("state_dict", checkpoint)
    # The file was saved from a DataParallel wrapper; its `module.` prefix is the wrapper, not the net.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return load_exact(ResNet3d(), state, path)
