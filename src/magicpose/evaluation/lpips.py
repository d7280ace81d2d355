"""LPIPS (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

d(x, y) = sum_l  mean_{h,w} || w_l * (f_l(x) - f_l(y)) ||^2  where f_l are the unit-normalised
(channel-wise) activations of five trunk layers and w_l the learned linear weights (Eq. 1).

Two published files are needed: the trunk as torchvision publishes it (keys ``features.N.*``) and
the LPIPS v0.1 linear layers as the ``lpips`` package ships them (keys ``linK.model.1.weight``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from magicpose.evaluation.weights import load_exact, read_state_dict, weight_path

# Trunk layers: (channels, index range in torchvision's `features`) after each ReLU LPIPS taps.
TRUNKS = {
    "vgg": {
        "config": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
        "taps": [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)],
        "channels": [64, 128, 256, 512, 512],
        "weights": "vgg16",
        "linear": "lpips_vgg",
    },
    "alex": {
        "taps": [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)],
        "channels": [64, 192, 384, 256, 256],
        "weights": "alexnet",
        "linear": "lpips_alex",
    },
}


def vgg16_features(config: list) -> nn.Sequential:
    """torchvision's VGG-16 `features` up to relu5_3 (the last max-pool is never used by LPIPS)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` up to relu5."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
    )


class NetLinLayer(nn.Module):
    """A 1x1 convolution to one channel; the Dropout slot keeps the published key ``model.1.weight``."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


class LPIPS(nn.Module):
    """Learned perceptual distance with a VGG-16 or AlexNet trunk; inputs are RGB in [-1, 1]."""

    def __init__(self, net: str = "vgg"):
        super().__init__()
        if net not in TRUNKS:
            raise ValueError(f"LPIPS trunk must be one of {sorted(TRUNKS)}, got {net!r}")
        spec = TRUNKS[net]
        self.net_name = net
        self.features = vgg16_features(spec["config"]) if net == "vgg" else alexnet_features()
        self.taps = spec["taps"]
        # LPIPS v0.1 "ScalingLayer": maps [-1, 1] input to the trunk's ImageNet normalisation.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.lins = nn.ModuleList(NetLinLayer(c) for c in spec["channels"])

    def trunk_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        activations = []
        for start, stop in self.taps:
            for layer in self.features[start:stop]:
                x = layer(x)
            activations.append(x)
        return activations

    @staticmethod
    def unit_normalise(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distances of shape (B,) between two batches (B, 3, H, W) in [-1, 1]."""
        distance = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for lin, fx, fy in zip(self.lins, self.trunk_activations(x), self.trunk_activations(y)):
            squared = (self.unit_normalise(fx) - self.unit_normalise(fy)) ** 2
            distance = distance + lin.model(squared).mean(dim=(1, 2, 3))
        return distance


def load_lpips(weights_dir: str | Path, net: str = "vgg") -> LPIPS:
    """Build LPIPS and load torchvision's trunk file and the ``lpips`` package's v0.1 linear layers."""
    model = LPIPS(net)
    spec = TRUNKS[net]
    trunk_path = weight_path(weights_dir, spec["weights"])
    trunk = read_state_dict(trunk_path)
    # The torchvision file also holds the classifier, which LPIPS does not use.
    features = {k[len("features.") :]: v for k, v in trunk.items() if k.startswith("features.")}
    features = {k: v for k, v in features.items() if k in model.features.state_dict()}
    load_exact(model.features, features, trunk_path)
    linear_path = weight_path(weights_dir, spec["linear"])
    linear = read_state_dict(linear_path)
    # Published keys are `linK.model.1.weight`; here the K-th entry of a ModuleList.
    lins = {k[len("lin") :]: v for k, v in linear.items() if k.startswith("lin")}
    load_exact(model.lins, lins, linear_path)
    return model.eval()
