"""What a training stage is (`Stage`), and what every epsilon-MSE stage shares (`DenoisingStage`: base
UNet, ControlNet, stages 1-3): the frozen VAE that encodes images, the fixed text context, and the
official noise recipe

    x_t = sqrt(a_t) z + sqrt(1 - a_t) eps,   t ~ U{0..999} on the scaled-linear schedule,

with z = VAE posterior sample * scaling factor (the official code samples the posterior too).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler

from magicpose.models.noise_schedule import OFFICIAL_SCHEDULE
from magicpose.models.text_context import TextContext
from magicpose.training.config import SamplingConfig, TrainingConfig
from magicpose.training.export import export_components
from magicpose.training.validation import Columns


def clip_noise(shape: torch.Size, clips: int, shared: float, generator: torch.Generator) -> torch.Tensor:
    """Unit-variance noise for `clips` clips of frames laid out clip-major, (clips x F, C, h, w), whose
    frames share the fraction `shared` of its variance: sqrt(s) eps_clip + sqrt(1 - s) eps_frame.

    The mixed noise prior of PYoCo (Ge et al. 2023, "Preserve Your Own Correlation: A Noise Prior for
    Video Diffusion Models", Eq. 3, with s = alpha^2 / (1 + alpha^2)). MagicPose samples every frame of a
    video from one shared draw, so a motion module trained on independent noise (s = 0, AnimateDiff)
    meets at inference inputs it never saw; s near 1 trains it on what it will be given.
    """
    independent = torch.randn(shape, generator=generator)
    if shared == 0.0:
        return independent  # the same draws as before the option existed
    per_clip = torch.randn((clips, 1, *shape[1:]), generator=generator)
    common = per_clip.expand(clips, shape[0] // clips, *shape[1:]).reshape(shape)
    return shared**0.5 * common + (1.0 - shared) ** 0.5 * independent


class Stage(torch.nn.Module):
    """One training stage: everything the trainer needs to know about it, so that adding a stage is
    adding one class (and its name in `stages.STAGE_CLASSES` and `config.STAGES`, which reads no model code).

    `forward(batch, generator) -> loss` (one module whatever the stage, for accelerate/DDP); `trains`,
    the names of the components it trains; `vae`, the autoencoder whose device and dtype the batch takes;
    `validation_columns(batch, sampling)`, the columns of its validation grid; `exported()`, the
    components its export writes; `export(out, config)`, writing them.
    """

    trains: tuple[str, ...] = ()
    clips = False  # batches of clips (T frames per sample, `ClipDataset`) rather than frame pairs

    def validation_columns(self, batch: dict, sampling: SamplingConfig) -> Columns:
        """(title, images (rows, 3, H, W) in [0, 1] on the CPU) per column, with the current weights and,
        where the stage samples, the recipe `sampling` (`validation.validation_recipe`)."""
        raise NotImplementedError(f"{type(self).__name__} draws no validation grid; set output.validate_every=0")

    def exported(self) -> dict:
        """Name -> module (with `save_pretrained`) of what the export writes."""
        raise NotImplementedError

    def export(self, out: Path, config: TrainingConfig) -> Path:
        """Write `exported()` to `out`: a whole pipeline folder that samples with `config.sampling` when
        every pipeline part is there, else one folder per component (`export.export_components`)."""
        return export_components(self.exported(), out, config.sampling)

    def batch_on_device(self, batch: dict) -> dict:
        """The images of `batch` on the VAE's device in its dtype."""
        device = next(self.vae.parameters()).device
        return {
            key: value.to(device, self.vae.dtype) if torch.is_tensor(value) and value.is_floating_point() else value
            for key, value in batch.items()
        }


class DenoisingStage(Stage):
    """Base of the epsilon-MSE stages: frozen VAE, fixed context, noise schedule. Every random draw
    comes from the `generator` handed to `forward`, on the CPU, so that every device agrees."""

    def __init__(self, vae: AutoencoderKL, text_context: TextContext):
        super().__init__()
        self.vae = vae.requires_grad_(False)
        self.text_context = text_context.requires_grad_(False)
        self.schedule = DDPMScheduler(**OFFICIAL_SCHEDULE)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """z = VAE posterior sample * scaling factor."""
        posterior = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
        return (posterior.mean + posterior.std * noise) * self.vae.config.scaling_factor

    def noised(self, latents: torch.Tensor, generator: torch.Generator, clips: int | None = None, shared: float = 0.0):
        """(x_t, t, eps) with t per sample and eps drawn from `generator`. With `clips`, the latents are
        that many clips of frames (clip-major): the frames of a clip share one t (the motion UNet embeds
        one per clip, as AnimateDiff trains) and the fraction `shared` of their noise (`clip_noise`)."""
        clips = clips or latents.shape[0]
        noise = clip_noise(latents.shape, clips, shared, generator).to(latents)
        per_clip = torch.randint(0, self.schedule.config.num_train_timesteps, (clips,), generator=generator)
        timesteps = per_clip.repeat_interleave(latents.shape[0] // clips).to(latents.device)
        return self.schedule.add_noise(latents, noise, timesteps), timesteps, noise

    def context(self, batch: int) -> torch.Tensor:
        return self.text_context(batch)
