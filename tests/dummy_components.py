"""Tiny random MagicPose components for fast CPU tests (diffusers' get_dummy_components() style)."""

import torch

from magicpose.models.presets import build_components


def get_dummy_components(seed: int = 0) -> dict:
    """The official oracle's tiny architecture (32 base channels) with a live pose path."""
    return build_components("tiny", seed=seed, zero_init_controlnet=False)


def get_dummy_inputs(frames: int = 3, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "noisy_latents": torch.randn(frames, 4, 16, 16, generator=generator),
        "reference_latents": torch.randn(1, 4, 16, 16, generator=generator),
        "pose_images": torch.rand(frames, 3, 128, 128, generator=generator),
        "context": torch.randn(1, 77, 32, generator=generator),
    }
