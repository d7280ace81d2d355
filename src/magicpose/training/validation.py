"""Validation grids: one row per held-out sample, columns reference | pose | generated | ground truth
(the columns a stage has), written as PNGs so progress is something to look at.

The MagicPose stages (appearance, pose, motion) sample their grids through `MagicPosePipeline.denoise`
on a pipeline of the stage's current networks with the config's `sampling:` recipe, the pipeline their
export writes, so a grid shows what the exported model samples. The prerequisite stages (base UNet,
ControlNet), which export no pipeline, sample with `ddim_sample`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.training.config import OutputConfig, SamplingConfig

SEED = 42  # the official sampling seed: every grid starts from the same noise


def validation_recipe(sampling: SamplingConfig, output: OutputConfig) -> SamplingConfig:
    """The recipe the grids sample with: `sampling`, with `output.validation_inference_steps` and
    `output.validation_guidance_scale` in place where they are set (None: the recipe's own)."""
    overrides = {
        "num_inference_steps": output.validation_inference_steps,
        "guidance_scale": output.validation_guidance_scale,
    }
    return dataclasses.replace(sampling, **{key: value for key, value in overrides.items() if value is not None})


@torch.no_grad()
def ddim_sample(eps_fn, shape: tuple, steps: int, device, dtype, seed: int = SEED) -> torch.Tensor:
    """The official sampler (DDIM, eta 0) from pure noise around any epsilon function eps_fn(x_t, t):
    the grids of the prerequisite stages, which have no pipeline to sample through."""
    scheduler = official_ddim_scheduler()
    scheduler.set_timesteps(steps, device=device)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
    for t in scheduler.timesteps:
        latents = scheduler.step(eps_fn(latents, t), t, latents, return_dict=False)[0]
    return latents


@torch.no_grad()
def sample_as_exported(
    model,
    vae,
    text_context,
    sampling: SamplingConfig,
    reference: torch.Tensor,
    pose_images: torch.Tensor,
    noise_batch: int,
    seed: int = SEED,
) -> torch.Tensor:
    """Frames in [-1, 1], one per pose image, sampled as the stage's export samples them:
    `MagicPosePipeline.denoise` on `model`'s networks (a `MagicPoseModel`, the modules themselves),
    `vae` and `text_context`, with the recipe `sampling` (`export.pipeline_for`).

    reference: (1 or N, 3, H, W) in [-1, 1], one per frame or one for all; pose_images: (N, 3, H, W) in
    [0, 1]; noise_batch: 1 (every frame starts from one draw, as `__call__` samples a video) or N (one
    draw per frame: independent samples). The noise, then any noise the scheduler draws, come from one
    generator seeded `seed`, as `__call__(generator=...)` draws them. All frames go through the networks
    in one batch, each with its own reference.
    """
    from magicpose.training.export import pipeline_for

    networks = {"unet": model.unet, "appearance_control": model.appearance_control, "pose_control": model.pose_control}
    pipeline = pipeline_for({**networks, "vae": vae, "text_context": text_context}, sampling)
    pipeline.set_progress_bar_config(disable=True)
    # The pipeline wraps the networks in a MagicPoseModel of its own (sharing the stage's reference bank),
    # which freezes the base UNet: a motion UNet's temporal layers train, so their flags are put back.
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    try:
        frames = pose_images.shape[0]
        generator = torch.Generator().manual_seed(seed)
        shape = (
            noise_batch,
            pipeline.unet.config.in_channels,
            *(side // pipeline.vae_scale_factor for side in reference.shape[-2:]),
        )
        noise = torch.randn(shape, generator=generator).to(pipeline.device, pipeline.unet.dtype)
        latents = pipeline.denoise(
            noise,
            pipeline.encode_reference(reference).to(pipeline.unet.dtype),
            pose_images.to(noise),
            pipeline.encode_context(None),
            generator=generator,
            frame_chunk_size=frames,
        )
        return pipeline.decode_latents(latents, frames)
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


def unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as float images in [0, 1] on the CPU."""
    return ((images.float() + 1) / 2).clamp(0, 1).cpu()


@torch.no_grad()
def validation_columns(stage, batch: dict, sampling: SamplingConfig) -> list[tuple[str, torch.Tensor]]:
    """Images in [0, 1] for each column of the grid, computed with the stage's current weights and,
    where the stage samples, the recipe `sampling` (`validation_recipe`)."""
    from magicpose.training.stages import BaseUnetStage, ControlNetStage, MagicPoseStage, VaeStage

    if hasattr(stage, "validation_columns"):  # stages registered later (motion) bring their own
        return stage.validation_columns(batch, sampling)
    vae = stage.vae
    device, dtype = next(vae.parameters()).device, vae.dtype
    target = batch["target"].to(device, dtype)
    pose = batch["pose_image"].to(device, dtype)
    if isinstance(stage, VaeStage):
        return [
            ("input", unit(target)),
            ("reconstruction", unit(vae.decode(vae.encode(target).latent_dist.mode()).sample)),
        ]
    if isinstance(stage, MagicPoseStage):
        # Both stages sample with poses, as their exports do: stage 1's export carries the ControlNet it was
        # given (frozen) or, without one, `from_unet`'s, whose zero-initialised outputs add nothing.
        reference = batch["reference"].to(device, dtype)
        generated = sample_as_exported(
            stage.model, vae, stage.text_context, sampling, reference, pose, noise_batch=target.shape[0]
        )
        return [
            ("reference", unit(reference)),
            ("pose", pose.float().cpu()),
            ("generated", unit(generated)),
            ("ground truth", unit(target)),
        ]

    scale = vae.config.scaling_factor
    latent_shape = (
        target.shape[0],
        vae.config.latent_channels,
        *(s // 2 ** (len(vae.config.block_out_channels) - 1) for s in target.shape[-2:]),
    )
    context = stage.context(target.shape[0]).to(device, dtype)
    if isinstance(stage, BaseUnetStage):
        eps_fn = lambda x, t: stage.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]  # noqa: E731
        columns = []
    elif isinstance(stage, ControlNetStage):
        eps_fn = lambda x, t: stage.eps(x, t.expand(x.shape[0]), pose)  # noqa: E731
        columns = [("pose", pose.float().cpu())]
    else:
        raise TypeError(
            f"{type(stage).__name__} has no validation_columns(batch, sampling); set output.validate_every=0"
        )
    latents = ddim_sample(eps_fn, latent_shape, sampling.num_inference_steps, device, dtype)
    generated = vae.decode(latents / scale).sample
    return columns + [("generated", unit(generated)), ("ground truth", unit(target))]


def grid_image(columns: list[tuple[str, torch.Tensor]], gap: int = 2) -> np.ndarray:
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
    from magicpose.media import write_image

    was_training = stage.training
    stage.eval()
    try:
        columns = validation_columns(stage, batch, sampling)
    finally:
        stage.train(was_training)
    write_image(path, grid_image(columns))
    return Path(path)
