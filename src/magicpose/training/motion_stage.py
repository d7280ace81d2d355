"""Stage 3 (paper, appendix C): the AnimateDiff temporal layers of the base UNet, trained on clips.

Everything else is frozen: base UNet, Appearance Control Model, Pose ControlNet, VAE. Each sample is
a clip of F consecutive frames of one video with one reference frame; all frames of a clip share one
timestep (the motion UNet embeds one per clip, as AnimateDiff trains) and draw their own noise, of
which they share the fraction `train.shared_noise` (`stage_base.clip_noise`). Loss: epsilon MSE over
every frame, as in stages 1 and 2; encoding and noising are theirs (`stage_base.DenoisingStage`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.motion_module import (
    MagicPoseMotionAdapter,
    build_motion_unet,
    extract_motion_adapter,
    load_motion_adapter,
    motion_adapter_config_for_unet,
    set_motion_training,
    zero_init_motion_output,
)
from magicpose.training.config import SamplingConfig
from magicpose.training.stage_base import DenoisingStage
from magicpose.training.validation import Columns, sample_frames, unit


class MotionStage(DenoisingStage):
    """`forward(batch, generator) -> loss` for clip batches: reference (B, 3, H, W), target and
    pose_image (B, F, 3, H, W). Starts from `config.model.motion_adapter` (an AnimateDiff v2 file or
    folder) when given, else from a zero-initialised adapter fitted to the base UNet."""

    trains = ("motion_adapter",)
    clips = True

    def __init__(self, components: dict, config):
        super().__init__(components["vae"], components["text_context"])
        source = getattr(config.model, "motion_adapter", None)
        if source:
            adapter = load_motion_adapter(source)
        else:
            with torch.random.fork_rng():
                torch.manual_seed(getattr(config.model, "seed", 0))
                adapter = zero_init_motion_output(
                    MagicPoseMotionAdapter(**motion_adapter_config_for_unet(components["unet"]))
                )
        motion_unet = build_motion_unet(components["unet"], adapter)
        self.model = MagicPoseModel(motion_unet, components["appearance_control"], components["pose_control"])
        set_motion_training(self.model)
        self.shared_noise = float(config.train.shared_noise)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        clips, frames = batch["target"].shape[:2]
        latents = self.encode(torch.cat([batch["target"].flatten(0, 1), batch["reference"]]), generator)
        target, reference = latents[: clips * frames], latents[clips * frames :]
        noisy, timesteps, noise = self.noised(target, generator, clips=clips, shared=self.shared_noise)
        context = self.context(1)
        with torch.no_grad():  # the appearance branch is frozen in stage 3
            features = self.model.encode_reference(reference, timesteps[::frames], context)
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
        return F.mse_loss(torch.cat(eps).float(), noise.float())

    @torch.no_grad()
    def validation_columns(self, batch: dict, sampling: SamplingConfig, rows: int = 4) -> Columns:
        """reference | pose | generated | ground truth for the first `rows` frames of the first clip, the
        clip sampled as the stage-2 pipeline with this motion module samples a video: `MagicPosePipeline.denoise`
        with the recipe `sampling` (a `SamplingConfig`; its windows apply), one noise draw for every frame."""
        batch = self.batch_on_device(batch)
        target, poses, reference = batch["target"][0], batch["pose_image"][0], batch["reference"][:1]
        networks = {"unet": self.model.unet, "appearance_control": self.model.appearance_control}
        networks.update(pose_control=self.model.pose_control, vae=self.vae, text_context=self.text_context)
        generated = sample_frames(
            networks,
            sampling,
            target.shape[-2:],
            poses.shape[0],
            reference=reference,
            pose_images=poses,
            noise_batch=1,
        )
        return [
            ("reference", unit(reference.expand(rows, -1, -1, -1))),
            ("pose", poses[:rows].float().cpu()),
            ("generated", unit(generated[:rows])),
            ("ground truth", unit(target[:rows])),
        ]

    def exported(self) -> dict:
        """The trained temporal layers as a `MotionAdapter` folder (`MotionAdapter.from_pretrained`)."""
        return {"motion_adapter": extract_motion_adapter(self.model.unet)}
