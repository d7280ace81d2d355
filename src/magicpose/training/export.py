"""Trained components -> folders the rest of the project loads.

Stages 1 and 2 write a whole pipeline folder (`load_pipeline` reads it) that samples with the config's
`sampling:` recipe (default: the official one). The prerequisite stages write per-component folders
(`OUT/export/vae`, `unet` + `text_context`, `pose_control`) that the next stage's config names in its
`model:` section; stage 3 writes `motion_adapter/`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from magicpose.files import atomic_folder
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.pipelines.assembly import save_pipeline_atomically
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from magicpose.pipelines.schedulers import scheduler_named
from magicpose.training.config import SamplingConfig

PIPELINE_PARTS = ("unet", "appearance_control", "pose_control", "vae", "text_context")


@torch.no_grad()
def calibrate_vae_latents(vae, images: torch.Tensor) -> float:
    """Centre the latents per channel and return the scaling factor that gives them unit variance.

    SD's convention is scaling_factor = 1 / std of the latents. A VAE trained from scratch can put large
    per-channel offsets into its latents (ours: means of -3.5 to 4.5 against a spread of about 1.2), and
    the diffusion model then has to learn those offsets as a global shift while the details it should
    learn sit at a third of the noise level the schedule assumes: after 2,000 steps our base UNet still
    sampled noise. SD3 and Flux carry a `shift_factor` for this; the SD-1.5 pipelines we match have only
    the scale, so the shift is folded into the VAE itself, exactly: the encoder's `quant_conv` subtracts
    the per-channel mean m and the decoder's `post_quant_conv` (a 1x1 convolution W z + b) adds it back
    through its bias, b + W m. Reconstructions do not change.
    """
    latents = vae.encode(images.to(vae.device, vae.dtype)).latent_dist.mode().float()
    mean = latents.mean(dim=(0, 2, 3))
    channels = mean.numel()
    vae.quant_conv.bias[:channels] -= mean.to(vae.quant_conv.bias)  # the moments are (mean, logvar) channels
    weight = vae.post_quant_conv.weight[:, :, 0, 0].float()
    vae.post_quant_conv.bias += (weight @ mean).to(vae.post_quant_conv.bias)
    return float(1.0 / (latents - mean.view(1, -1, 1, 1)).std().clamp_min(1e-6))


def pipeline_for(parts: dict, sampling: SamplingConfig | None = None) -> MagicPosePipeline:
    """A `MagicPosePipeline` of `parts` (the modules themselves, not copies) that samples with `sampling`
    (default: the official recipe) by default: what a whole-pipeline export writes, and what every
    validation grid samples through (training/validation.py). A stage without an appearance branch
    or a pose ControlNet leaves them out: the pipeline then runs without them."""
    sampling = sampling or SamplingConfig()
    return MagicPosePipeline(
        **{name: parts.get(name) for name in PIPELINE_PARTS},
        scheduler=scheduler_named(sampling.scheduler, official_ddim_scheduler().config),
        start_from_reference=sampling.start_from_reference,
        num_inference_steps=sampling.num_inference_steps,
        guidance_scale=sampling.guidance_scale,
        guidance_interval=list(sampling.guidance_interval) if sampling.guidance_interval is not None else None,
        window_frames=sampling.window_frames,
        window_overlap=sampling.window_overlap,
    )


def export_components(parts: dict, out: str | Path, sampling: SamplingConfig | None = None) -> Path:
    """Write the stage's components: a pipeline folder when all parts are there, else one folder each.

    A pipeline folder carries `sampling` (default: the official recipe) as its own: the scheduler in
    `scheduler/`, the other settings in `model_index.json`, where `load_pipeline` and `__call__` find them.
    """
    out = Path(out)
    parts = {
        name: module.float() if hasattr(module, "float") else module
        for name, module in parts.items()
        if module is not None
    }
    if all(name in parts for name in PIPELINE_PARTS):
        return save_pipeline_atomically(pipeline_for(parts, sampling), out, overwrite=True)
    with atomic_folder(out, overwrite=True) as temporary:
        for name, module in parts.items():
            module.save_pretrained(temporary / name)
    return out
