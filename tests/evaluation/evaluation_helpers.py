"""Shared helpers: random weights that keep activations alive, and noisy copies of frames."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """He-normal weights and unit BatchNorm statistics, so deep random networks neither vanish nor explode.

    (PyTorch's default init shrinks activations by about 3x per layer, which leaves a 90-layer
    Inception with features near 1e-8.) Linear LPIPS weights are made non-negative, as trained ones are.
    """
    generator = torch.Generator().manual_seed(seed)
    for name, child in module.named_modules():
        if isinstance(child, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = child.weight[0].numel()
            weight = torch.randn(child.weight.shape, generator=generator) * math.sqrt(2.0 / fan_in)
            child.weight.data.copy_(weight.abs() if ".model." in f"{name}." and "lin" in name else weight)
            if child.bias is not None:
                child.bias.data.copy_(0.01 * torch.randn(child.bias.shape, generator=generator))
        elif isinstance(child, nn.PReLU):
            child.weight.data.fill_(0.25)
    return module.eval()


def noisy(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    """Frames with Gaussian noise of standard deviation `sigma` (in 0..255 units), clipped to uint8."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def smooth_frames(count: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour images (blurred noise, then a drifting offset: frames of one 'video')."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (size * 2, size * 2, 3)).astype(np.float32), (0, 0), 4)
    base = (base - base.min()) / (base.max() - base.min()) * 255
    return [base[i : i + size, i : i + size].astype(np.uint8) for i in range(count)]
