"""Validation grids: one row per held-out sample, columns reference | pose | generated | ground truth
(the columns a stage has), written as PNGs so progress is something to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from magicpose.pipelines.image_guidance import image_guidance
from magicpose.pipelines.schedulers import official_ddim_scheduler


@torch.no_grad()
def ddim_sample(eps_fn, shape: tuple, steps: int, device, dtype, seed: int = 42, start: torch.Tensor | None = None) -> torch.Tensor:
    """The official sampler (DDIM, eta 0) around any epsilon function eps_fn(x_t, t), from pure noise or,
    as exported models sample, from the latents `start` noised to the first timestep."""
    scheduler = official_ddim_scheduler()
    scheduler.set_timesteps(steps, device=device)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
    if start is not None:
        latents = scheduler.add_noise(start.to(latents), latents, scheduler.timesteps[:1])
    for t in scheduler.timesteps:
        latents = scheduler.step(eps_fn(latents, t), t, latents, return_dict=False)[0]
    return latents


@torch.no_grad()
def validation_columns(stage, batch: dict, steps: int, guidance_scale: float) -> list[tuple[str, torch.Tensor]]:
    """Images in [0, 1] for each column of the grid, computed with the stage's current weights."""
    from magicpose.training.stages import BaseUnetStage, ControlNetStage, MagicPoseStage, VaeStage

    if hasattr(stage, "validation_columns"):  # stages registered later (motion) bring their own
        return stage.validation_columns(batch, steps, guidance_scale)
    vae = stage.vae
    device, dtype = next(vae.parameters()).device, vae.dtype
    target = batch["target"].to(device, dtype)
    unit = lambda images: ((images.float() + 1) / 2).clamp(0, 1).cpu()  # noqa: E731
    pose = batch["pose_image"].to(device, dtype)
    if isinstance(stage, VaeStage):
        return [("input", unit(target)), ("reconstruction", unit(vae.decode(vae.encode(target).latent_dist.mode()).sample))]

    scale = vae.config.scaling_factor
    latent_shape = (target.shape[0], vae.config.latent_channels, *(s // 2 ** (len(vae.config.block_out_channels) - 1) for s in target.shape[-2:]))
    context = stage.context(target.shape[0]).to(device, dtype)
    start = None  # the MagicPose stages start from the noised reference, as their exports sample
    if isinstance(stage, BaseUnetStage):
        eps_fn = lambda x, t: stage.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]  # noqa: E731
        columns = []
    elif isinstance(stage, ControlNetStage):
        eps_fn = lambda x, t: stage.eps(x, t.expand(x.shape[0]), pose)  # noqa: E731
        columns = [("pose", pose.float().cpu())]
    elif isinstance(stage, MagicPoseStage):
        model = stage.model
        reference = batch["reference"].to(device, dtype)
        reference_latents = start = vae.encode(reference).latent_dist.mode() * scale
        pose_input = pose if stage.stage == "pose" else None

        def eps_fn(x, t):
            return image_guidance(
                lambda: model(x, t, context, reference_latents=reference_latents, pose_images=pose_input),
                lambda: model(x, t, context),
                guidance_scale,
            )

        columns = [("reference", unit(reference)), ("pose", pose.float().cpu())]
    else:
        raise TypeError(f"{type(stage).__name__} has no validation_columns(batch, steps, guidance_scale); set output.validate_every=0")
    latents = ddim_sample(eps_fn, latent_shape, steps, device, dtype, start=start)
    generated = vae.decode(latents / scale).sample
    return columns + [("generated", unit(generated)), ("ground truth", unit(target))]


def grid_image(columns: list[tuple[str, torch.Tensor]], gap: int = 2) -> np.ndarray:
    """(rows*H, cols*W, 3) uint8: sample i on row i, one column per entry, white gaps between."""
    rows, _, height, width = columns[0][1].shape
    canvas = np.full((rows * (height + gap) - gap, len(columns) * (width + gap) - gap, 3), 255, np.uint8)
    for c, (_, images) in enumerate(columns):
        pixels = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for r in range(rows):
            canvas[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = pixels[r]
    return canvas


def save_validation_grid(stage, batch: dict, path: str | Path, steps: int, guidance_scale: float) -> Path:
    from magicpose.media import write_image

    was_training = stage.training
    stage.eval()
    try:
        columns = validation_columns(stage, batch, steps, guidance_scale)
    finally:
        stage.train(was_training)
    write_image(path, grid_image(columns))
    return Path(path)
