"""Stage 3 (paper, appendix C): the AnimateDiff temporal layers of the base UNet, trained on clips.

Everything else is frozen: base UNet, Appearance Control Model, Pose ControlNet, VAE. Each sample is
a clip of F consecutive frames of one video with one reference frame; all frames of a clip share one
timestep (the motion UNet embeds one per clip, as AnimateDiff trains) and draw their own noise.
Loss: epsilon MSE over every frame, as in stages 1 and 2.

Separate from `magicpose.training.stages` so that the motion module stays optional; that module's
`"motion"` builder returns `MotionStage(components, config)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.motion_module import (
    build_motion_unet,
    extract_motion_adapter,
    load_motion_adapter,
    motion_adapter_config_for_unet,
    set_motion_training,
    zero_init_motion_output,
)


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


class MotionStage(torch.nn.Module):
    """`forward(batch, generator) -> loss` for clip batches: reference (B, 3, H, W), target and
    pose_image (B, F, 3, H, W). Starts from `config.model.motion_adapter` (an AnimateDiff v2 file or
    folder) when given, else from a zero-initialised adapter fitted to the base UNet."""

    trains = ("motion_adapter",)

    def __init__(self, components: dict, config):
        super().__init__()
        from diffusers import DDPMScheduler, MotionAdapter

        from magicpose.models.noise_schedule import OFFICIAL_SCHEDULE

        source = getattr(config.model, "motion_adapter", None)
        if source:
            adapter = load_motion_adapter(source)
        else:
            with torch.random.fork_rng():
                torch.manual_seed(getattr(config.model, "seed", 0))
                adapter = zero_init_motion_output(MotionAdapter(**motion_adapter_config_for_unet(components["unet"])))
        self.vae = components["vae"].requires_grad_(False)
        self.text_context = components["text_context"].requires_grad_(False)
        motion_unet = build_motion_unet(components["unet"], adapter)
        self.model = MagicPoseModel(motion_unet, components["appearance_control"], components["pose_control"])
        set_motion_training(self.model)
        self.schedule = DDPMScheduler(**OFFICIAL_SCHEDULE)
        self.shared_noise = float(config.train.shared_noise)

    @torch.no_grad()
    def _encode(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        posterior = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
        return (posterior.mean + posterior.std * noise) * self.vae.config.scaling_factor

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        clips, frames = batch["target"].shape[:2]
        latents = self._encode(torch.cat([batch["target"].flatten(0, 1), batch["reference"]]), generator)
        target, reference = latents[: clips * frames], latents[clips * frames :]
        noise = clip_noise(target.shape, clips, self.shared_noise, generator).to(target)
        clip_timesteps = torch.randint(0, self.schedule.config.num_train_timesteps, (clips,), generator=generator)
        timesteps = clip_timesteps.repeat_interleave(frames).to(target.device)
        noisy = self.schedule.add_noise(target, noise, timesteps)
        context = self.text_context(1)
        with torch.no_grad():  # the appearance branch is frozen in stage 3
            features = self.model.encode_reference(reference, clip_timesteps.to(target.device), context)
        poses = batch["pose_image"].flatten(0, 1).to(noisy.dtype)
        # MagicPoseModel gives the motion UNet its whole batch as one clip: one call per clip, each
        # with its own reference (a batch of 1, broadcast to the clip's frames).
        eps = []
        for clip in range(clips):
            span = slice(clip * frames, (clip + 1) * frames)
            clip_features = {name: tokens[clip : clip + 1] for name, tokens in features.items()}
            eps.append(
                self.model(
                    noisy[span], timesteps[span], context, pose_images=poses[span], reference_features=clip_features
                )
            )
        eps = torch.cat(eps)
        return F.mse_loss(eps.float(), noise.float())

    @torch.no_grad()
    def validation_columns(self, batch: dict, sampling, rows: int = 4) -> list:
        """reference | pose | generated | ground truth for the first `rows` frames of the first clip, the
        clip sampled as the stage-2 pipeline with this motion module samples a video: `MagicPosePipeline.denoise`
        with the recipe `sampling` (a `SamplingConfig`; its windows apply), one noise draw for every frame."""
        from magicpose.training.validation import sample_as_exported, unit

        vae = self.vae
        device, dtype = next(vae.parameters()).device, vae.dtype
        target = batch["target"][0].to(device, dtype)
        poses = batch["pose_image"][0].to(device, dtype)
        reference = batch["reference"][:1].to(device, dtype)
        generated = sample_as_exported(self.model, vae, self.text_context, sampling, reference, poses, noise_batch=1)
        return [
            ("reference", unit(reference.expand(rows, -1, -1, -1))),
            ("pose", poses[:rows].float().cpu()),
            ("generated", unit(generated[:rows])),
            ("ground truth", unit(target[:rows])),
        ]

    def exported(self) -> dict:
        """The trained temporal layers as a `MotionAdapter` folder (`MotionAdapter.from_pretrained`)."""
        return {"motion_adapter": extract_motion_adapter(self.model.unet)}
