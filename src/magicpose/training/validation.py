"""Validation grids: one row per held-out sample, columns reference | pose | generated | ground truth
(the columns a stage has), written as PNGs so progress is something to look at.

Each stage says what its grid shows (`stage.validation_columns(batch, sampling)`); every stage that
samples does so through `MagicPosePipeline.denoise` on a pipeline of its current networks
(`sample_frames`), the one sampling loop there is. The MagicPose stages sample with the config's
`sampling:` recipe, the pipeline their export writes, so a grid shows what the exported model samples.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from magicpose.media import write_image
from magicpose.training.config import OutputConfig, SamplingConfig
from magicpose.training.export import pipeline_for

SEED = 42  # the official sampling seed: every grid starts from the same noise
Columns = list[tuple[str, torch.Tensor]]


def validation_recipe(sampling: SamplingConfig, output: OutputConfig) -> SamplingConfig:
    """The recipe the grids sample with: `sampling`, with `output.validation_inference_steps` and
    `output.validation_guidance_scale` in place where they are set (None: the recipe's own)."""
    overrides = {
        "num_inference_steps": output.validation_inference_steps,
        "guidance_scale": output.validation_guidance_scale,
    }
    return dataclasses.replace(sampling, **{key: value for key, value in overrides.items() if value is not None})


@torch.no_grad()
def sample_frames(
    networks: dict,
    sampling: SamplingConfig,
    size: tuple[int, int],
    frames: int,
    reference: torch.Tensor | None = None,
    pose_images: torch.Tensor | None = None,
    noise_batch: int | None = None,
    seed: int = SEED,
) -> torch.Tensor:
    """`frames` images (frames, 3, H, W) in [-1, 1] of `size` (H, W), sampled as a pipeline of `networks`
    samples them: `MagicPosePipeline.denoise` with the recipe `sampling` (`export.pipeline_for`).

    networks: the modules themselves (not copies): unet, vae, text_context, and appearance_control and
    pose_control where the stage has them. reference: (1 or N, 3, H, W) in [-1, 1], one per frame or one
    for all; None runs without the appearance branch. pose_images: (N, 3, H, W) in [0, 1]; None runs the
    base UNet alone. noise_batch: 1 (every frame starts from one draw, as `__call__` samples a video) or
    `frames` (the default: one draw per frame, independent samples). The noise, then any noise the
    scheduler draws, come from one generator seeded `seed`, as `__call__(generator=...)` draws them. All
    frames go through the networks in one batch.
    """
    pipeline = pipeline_for(networks, sampling)
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    shape = (
        noise_batch or frames,
        pipeline.unet.config.in_channels,
        *(s // pipeline.vae_scale_factor for s in size),
    )
    noise = torch.randn(shape, generator=generator).to(pipeline.device, pipeline.unet.dtype)
    latents = pipeline.denoise(
        noise,
        None if reference is None else pipeline.encode_reference(reference).to(noise.dtype),
        None if pose_images is None else pose_images.to(noise),
        pipeline.encode_context(None),
        generator=generator,
        frame_chunk_size=frames,
    )
    return pipeline.decode_latents(latents, frames)


def unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as float images in [0, 1] on the CPU."""
    return ((images.float() + 1) / 2).clamp(0, 1).cpu()


def grid_image(columns: Columns, gap: int = 2) -> np.ndarray:
    """(rows*H, cols*W, 3) uint8: sample i on row i, one column per entry, white gaps between."""
    rows, _, height, width = columns[0][1].shape
    canvas = np.full((rows * (height + gap) - gap, len(columns) * (width + gap) - gap, 3), 255, np.uint8)
    for c, (_, images) in enumerate(columns):
        pixels = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for r in range(rows):
            canvas[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = (
                pixels[r]
            )
    return canvas


def save_validation_grid(stage, batch: dict, path: str | Path, sampling: SamplingConfig) -> Path:
    """Write the grid of `stage` (in eval mode for the duration) sampled with `sampling` to `path`."""
    was_training = stage.training
    stage.eval()
    try:
        with torch.no_grad():
            columns = stage.validation_columns(batch, sampling)
    finally:
        stage.train(was_training)
    write_image(path, grid_image(columns))
    return Path(path)
