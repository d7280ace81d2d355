"""The training stages. Each is a `Stage` (training/stage_base.py): an `nn.Module` whose
`forward(batch, generator)` returns the loss, so the trainer hands one module to accelerate/DDP whatever
the stage, and which draws its own validation grid and writes its own export.

Prerequisites that real users download, trained from scratch for the puppet world:
    vae         a small AutoencoderKL: reconstruction MSE + a small KL term
    base_unet   the image prior (empty context): epsilon MSE
    controlnet  an OpenPose ControlNet on the frozen base UNet: epsilon MSE
The paper's stages (§3.3), base UNet frozen throughout:
    appearance  stage 1, Eq. 4: eps_theta(x_t, t, c; reference) with the Appearance Control Model trained
    pose        stage 2, Eq. 5: the appearance branch and the whole Pose ControlNet trained jointly
    motion      stage 3 (appendix C): the temporal layers only (training/motion_stage.py)

Every denoising stage uses the official recipe (`stage_base.DenoisingStage`); loss ||eps - eps_theta||^2
averaged over elements.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, UNet2DConditionModel, UNetMotionModel

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.training.components import load_components
from magicpose.training.config import SamplingConfig, TrainingConfig
from magicpose.training.data import validation_batch
from magicpose.training.export import calibrate_vae_latents
from magicpose.training.motion_stage import MotionStage
from magicpose.training.stage_base import DenoisingStage, Stage
from magicpose.training.validation import Columns, sample_frames, unit


class VaeStage(Stage):
    """Autoencoder: ||D(z) - x||^2 + kl_weight * KL(q(z|x) || N(0, I)), z ~ q(z|x)."""

    trains = ("vae",)

    def __init__(self, components: dict, config: TrainingConfig):
        super().__init__()
        self.vae = components["vae"].requires_grad_(True)
        self.kl_weight = config.train.kl_weight

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        images = batch["target"]
        posterior = self.vae.encode(images).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
        reconstruction = self.vae.decode(posterior.mean + posterior.std * noise).sample
        return (
            F.mse_loss(reconstruction.float(), images.float())
            + self.kl_weight * posterior.kl().mean() / images[0].numel()
        )

    @torch.no_grad()
    def validation_columns(self, batch: dict, sampling: SamplingConfig) -> Columns:
        target = self.batch_on_device(batch)["target"]
        reconstruction = self.vae.decode(self.vae.encode(target).latent_dist.mode()).sample
        return [("input", unit(target)), ("reconstruction", unit(reconstruction))]

    def exported(self) -> dict:
        return {"vae": self.vae}

    def export(self, out: Path, config: TrainingConfig) -> Path:
        """Centre and scale the latents first (`export.calibrate_vae_latents`), on whole frames as the
        diffusion stages will see them (puppet_size, not training patches)."""
        data = dataclasses.replace(config.data, size=config.data.puppet_size or config.data.size)
        frames = validation_batch(dataclasses.replace(config, data=data), 32)["target"]
        self.vae.register_to_config(scaling_factor=calibrate_vae_latents(self.vae, frames))
        return super().export(out, config)


class BaseUnetStage(DenoisingStage):
    """The image prior: eps_theta(x_t, t, c) with c the fixed (empty-prompt) context."""

    trains = ("unet",)

    def __init__(self, components: dict, config: TrainingConfig):
        super().__init__(components["vae"], components["text_context"])
        self.unet = components["unet"].requires_grad_(True)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        noisy, timesteps, noise = self.noised(self.encode(batch["target"], generator), generator)
        eps = self.unet(noisy, timesteps, encoder_hidden_states=self.context(noisy.shape[0]), return_dict=False)[0]
        return F.mse_loss(eps.float(), noise.float())

    @torch.no_grad()
    def validation_columns(self, batch: dict, sampling: SamplingConfig) -> Columns:
        """Samples of the prior alone: the pipeline with neither reference nor pose."""
        target = self.batch_on_device(batch)["target"]
        networks = {"unet": self.unet, "vae": self.vae, "text_context": self.text_context}
        generated = sample_frames(networks, _unguided(sampling), target.shape[-2:], target.shape[0])
        return [("generated", unit(generated)), ("ground truth", unit(target))]

    def exported(self) -> dict:
        return {"unet": self.unet, "text_context": self.text_context}


class ControlNetStage(DenoisingStage):
    """An OpenPose ControlNet on the frozen base UNet (what lllyasviel trained for SD-1.5)."""

    trains = ("pose_control",)

    def __init__(self, components: dict, config: TrainingConfig):
        super().__init__(components["vae"], components["text_context"])
        self.unet = components["unet"].requires_grad_(False)
        self.pose_control = components["pose_control"].requires_grad_(True)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        noisy, timesteps, noise = self.noised(self.encode(batch["target"], generator), generator)
        context = self.context(noisy.shape[0])
        down, mid = self.pose_control(
            noisy,
            timesteps,
            encoder_hidden_states=context,
            controlnet_cond=batch["pose_image"].to(noisy.dtype),
            return_dict=False,
        )
        eps = self.unet(
            noisy,
            timesteps,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
        return F.mse_loss(eps.float(), noise.float())

    @torch.no_grad()
    def validation_columns(self, batch: dict, sampling: SamplingConfig) -> Columns:
        """Samples of the base UNet with the pose ControlNet: the pipeline without a reference."""
        batch = self.batch_on_device(batch)
        target, pose = batch["target"], batch["pose_image"]
        networks = {"unet": self.unet, "pose_control": self.pose_control, "vae": self.vae}
        networks["text_context"] = self.text_context
        generated = sample_frames(networks, _unguided(sampling), target.shape[-2:], target.shape[0], pose_images=pose)
        return [("pose", pose.float().cpu()), ("generated", unit(generated)), ("ground truth", unit(target))]

    def exported(self) -> dict:
        return {"pose_control": self.pose_control}


class MagicPoseStage(DenoisingStage):
    """Stage 1 (`appearance`, Eq. 4: no pose) and stage 2 (`pose`, Eq. 5: joint with the ControlNet).

    Image-guidance dropout: with probability p a sample gets neither reference nor pose, i.e. it
    trains the unconditional branch, which is the frozen base UNet (official: p = 0).
    """

    def __init__(self, components: dict, config: TrainingConfig):
        super().__init__(components["vae"], components["text_context"])
        self.stage = config.stage
        self.trains = ("appearance_control",) + (("pose_control",) if self.stage == "pose" else ())
        self.dropout = config.train.image_guidance_dropout
        self.model = MagicPoseModel(components["unet"], components["appearance_control"], components["pose_control"])
        self.model.set_training_stage(self.stage)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        images = torch.cat([batch["target"], batch["reference"]])
        latents = self.encode(images, generator)
        target, reference = latents.chunk(2)
        noisy, timesteps, noise = self.noised(target, generator)
        keep = None
        if self.dropout > 0:
            keep = (torch.rand(noisy.shape[0], generator=generator) >= self.dropout).to(noisy.device)
        pose = batch["pose_image"].to(noisy.dtype) if self.stage == "pose" else None
        eps = self.model(
            noisy, timesteps, self.context(1), reference_latents=reference, pose_images=pose, condition_mask=keep
        )
        return F.mse_loss(eps.float(), noise.float())

    @torch.no_grad()
    def validation_columns(self, batch: dict, sampling: SamplingConfig) -> Columns:
        """One independent sample per row, as the export samples. Both stages sample with poses, as their
        exports do: stage 1's export carries the ControlNet it was given (frozen) or, without one,
        `from_unet`'s, whose zero-initialised outputs add nothing."""
        batch = self.batch_on_device(batch)
        target, pose, reference = batch["target"], batch["pose_image"], batch["reference"]
        generated = sample_frames(
            self.exported(), sampling, target.shape[-2:], target.shape[0], reference=reference, pose_images=pose
        )
        return [
            ("reference", unit(reference)),
            ("pose", pose.float().cpu()),
            ("generated", unit(generated)),
            ("ground truth", unit(target)),
        ]

    def exported(self) -> dict:
        return {
            "unet": self.model.unet,
            "appearance_control": self.model.appearance_control,
            "pose_control": self.model.pose_control,
            "vae": self.vae,
            "text_context": self.text_context,
        }


def _unguided(sampling: SamplingConfig) -> SamplingConfig:
    """The recipe for networks with no appearance branch: image guidance (a push away from the plain base
    UNet) and starting from a reference are MagicPose's; the prerequisites sample their own model alone."""
    return dataclasses.replace(sampling, guidance_scale=1.0, start_from_reference=False)


STAGE_CLASSES: dict[str, type[Stage]] = {
    "vae": VaeStage,
    "base_unet": BaseUnetStage,
    "controlnet": ControlNetStage,
    "appearance": MagicPoseStage,
    "pose": MagicPoseStage,
    "motion": MotionStage,
}


def build_stage(config: TrainingConfig, components: dict | None = None) -> Stage:
    components = load_components(config.model) if components is None else components
    if config.stage == "appearance" and "pose_control" not in components.get("loaded", ()):
        warnings.warn(
            "stage 1 trains no pose ControlNet and none was given (model.pose_control): "
            "its export carries an untrained one",
            stacklevel=2,
        )
    module = STAGE_CLASSES[config.stage](components, config)
    if config.train.gradient_checkpointing:
        for sub in module.modules():
            if isinstance(sub, (UNet2DConditionModel, UNetMotionModel, ControlNetModel)):
                sub.enable_gradient_checkpointing()
    return module.train()


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
