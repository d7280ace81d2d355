"""The training stages. Each is an `nn.Module` whose `forward(batch, generator)` returns the loss,
so the trainer hands one module to accelerate/DDP whatever the stage.

Prerequisites that real users download, trained from scratch for the puppet world:
    vae         a small AutoencoderKL: reconstruction MSE + a small KL term
    base_unet   the image prior (empty context): epsilon MSE
    controlnet  an OpenPose ControlNet on the frozen base UNet: epsilon MSE
The paper's stages (§3.3), base UNet frozen throughout:
    appearance  stage 1, Eq. 4: eps_theta(x_t, t, c; reference) with the Appearance Control Model trained
    pose        stage 2, Eq. 5: the appearance branch and the whole Pose ControlNet trained jointly
    motion      stage 3 (appendix C): temporal modules only; hook `register_stage("motion", ...)`.

Every denoising stage uses the official recipe: x_t = sqrt(a_t) z + sqrt(1 - a_t) eps with
t ~ U{0..999} on the scaled-linear schedule, z = VAE posterior sample * scaling factor, loss
||eps - eps_theta||^2 averaged over elements.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel, UNetMotionModel

from magicpose.errors import InputError
from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.text_context import TextContext
from magicpose.training.config import ModelConfig, TrainingConfig

COMPONENT_CLASSES = {
    "vae": AutoencoderKL,
    "unet": UNet2DConditionModel,
    "appearance_control": AppearanceControlModel,
    "pose_control": ControlNetModel,
    "text_context": TextContext,
}


def load_components(model: ModelConfig) -> dict:
    """Components named by the model config, each network built once: folders where given, else
    `model.sd15`'s unet, vae and empty-prompt context, else the preset's architecture at random.

    The appearance branch defaults to a copy of the base UNet (the paper's initialisation) and the pose
    ControlNet to `ControlNetModel.from_unet` of it; where the base UNet itself is random, both come from
    the preset's random stream, as `presets.build_components` draws them.
    """
    given = {name for name in COMPONENT_CLASSES if getattr(model, name)}
    base = {"unet", "vae", "text_context"} - given
    from_sd15 = base if model.sd15 else set()
    random_unet = "unet" in (base - from_sd15)
    # From the preset: what nothing else supplies; with a random base UNet also the branches made from it.
    wanted = (base - from_sd15) | ({"appearance_control", "pose_control"} - given if random_unet else set())
    components = _preset_parts(model.preset, model.seed, wanted) if wanted else {}
    for name in sorted(given, key=list(COMPONENT_CLASSES).index):
        components[name] = _load_folder(COMPONENT_CLASSES[name], getattr(model, name), name)
    if from_sd15:
        components.update(_sd15_parts(model.sd15, from_sd15))
    if not random_unet:
        if "appearance_control" not in given:
            components["appearance_control"] = AppearanceControlModel.from_unet(components["unet"])
        if "pose_control" not in given:
            hint = None if model.sd15 else _preset_hint_channels(model.preset)
            with torch.random.fork_rng():
                torch.manual_seed(model.seed)
                components["pose_control"] = ControlNetModel.from_unet(
                    components["unet"],
                    conditioning_channels=3,
                    **({"conditioning_embedding_out_channels": hint} if hint else {}),
                )
    from magicpose.models.noise_schedule import official_ddim_scheduler

    components["scheduler"] = official_ddim_scheduler()
    components["loaded"] = given
    return components


def _preset_hint_channels(preset: str):
    from magicpose.models.presets import component_configs

    return component_configs(preset)["pose_control"].get("conditioning_embedding_out_channels")


def _preset_parts(preset: str, seed: int, wanted: set[str]) -> dict:
    """The preset's random components named in `wanted`, exactly as `presets.build_components(preset,
    seed)` draws them: one random stream, in the order unet, appearance_control (a copy of the unet),
    pose_control (`from_unet`), vae, text_context. A part not wanted is skipped unless a wanted one is
    drawn after it (then it is built and dropped, so that what follows comes out the same)."""
    from magicpose.models.presets import component_configs

    configs = component_configs(preset)
    zeros = bool(configs["context"].get("zeros"))
    stream = ["unet", "appearance_control", "pose_control", "vae"] + ([] if zeros else ["text_context"])
    last = max((stream.index(name) for name in wanted if name in stream), default=-1)
    draw = set(stream[: last + 1]) | wanted
    parts = {}
    with torch.random.fork_rng(), torch.device("cpu"):
        torch.manual_seed(seed)
        if "unet" in draw:
            parts["unet"] = UNet2DConditionModel(**configs["unet"])
        if "appearance_control" in draw:
            parts["appearance_control"] = AppearanceControlModel.from_unet(parts["unet"])
        if "pose_control" in draw:
            hint = configs["pose_control"].get("conditioning_embedding_out_channels")
            parts["pose_control"] = ControlNetModel.from_unet(
                parts["unet"],
                conditioning_channels=3,
                **({"conditioning_embedding_out_channels": hint} if hint else {}),
            )
        if "vae" in draw:
            parts["vae"] = AutoencoderKL(**configs["vae"])
        if "text_context" in draw:
            shape = (1, configs["context"]["length"], configs["context"]["dim"])
            parts["text_context"] = TextContext.from_tensor(torch.zeros(shape) if zeros else torch.randn(shape))
    return {name: part.eval() for name, part in parts.items() if name in wanted}


def _sd15_parts(name: str, wanted: set[str]) -> dict:
    """`wanted` of unet, vae and text_context (the empty prompt's CLIP embedding) from an SD-1.5 folder or
    hub id, reading only the subfolders they need (as `models.loading.load_sd15` reads them)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from magicpose.models.loading import is_hub_id, require_parts
    from magicpose.models.text_context import encode_prompt

    subfolders = {"unet": ("unet",), "vae": ("vae",), "text_context": ("text_encoder", "tokenizer")}
    if not is_hub_id(str(name)):
        require_parts(name, tuple(sub for part in sorted(wanted) for sub in subfolders[part]), "Stable Diffusion 1.5")
    parts = {}
    if "unet" in wanted:
        parts["unet"] = UNet2DConditionModel.from_pretrained(name, subfolder="unet")
    if "vae" in wanted:
        parts["vae"] = AutoencoderKL.from_pretrained(name, subfolder="vae")
    if "text_context" in wanted:
        text_encoder = CLIPTextModel.from_pretrained(name, subfolder="text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(name, subfolder="tokenizer")
        parts["text_context"] = TextContext.from_tensor(encode_prompt(text_encoder, "", tokenizer))
    return parts


def _load_folder(cls, path: str, name: str):
    from pathlib import Path

    from magicpose.models.loading import component_missing

    missing = component_missing(Path(path), label=f"{path}/")
    if missing:
        raise InputError(
            f"model.{name}: {path} is not a complete component folder (missing {', '.join(missing)}); "
            "point it at a folder written by a stage's export, e.g. runs/puppet/vae/export/vae"
        )
    return cls.from_pretrained(path)


def _noise_schedule():
    from diffusers import DDPMScheduler

    from magicpose.models.noise_schedule import OFFICIAL_SCHEDULE

    return DDPMScheduler(**OFFICIAL_SCHEDULE)


class _Denoising(torch.nn.Module):
    """Shared machinery of the epsilon-MSE stages: frozen VAE, fixed context, noise schedule."""

    def __init__(self, vae: AutoencoderKL, text_context: TextContext):
        super().__init__()
        self.vae = vae.requires_grad_(False)
        self.text_context = text_context.requires_grad_(False)
        self.schedule = _noise_schedule()

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """z = VAE posterior sample * scaling factor (the official code samples the posterior too)."""
        posterior = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
        return (posterior.mean + posterior.std * noise) * self.vae.config.scaling_factor

    def noised(self, latents: torch.Tensor, generator: torch.Generator):
        """(x_t, t, eps) for random t and eps drawn from `generator` (on the CPU, so every device agrees)."""
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        timesteps = torch.randint(
            0, self.schedule.config.num_train_timesteps, (latents.shape[0],), generator=generator
        )
        timesteps = timesteps.to(latents.device)
        return self.schedule.add_noise(latents, noise, timesteps), timesteps, noise

    def context(self, batch: int) -> torch.Tensor:
        return self.text_context(batch)

    def exported(self) -> dict:
        """Components this stage's export writes."""
        raise NotImplementedError


class VaeStage(torch.nn.Module):
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

    def exported(self) -> dict:
        return {"vae": self.vae}


class BaseUnetStage(_Denoising):
    """The image prior: eps_theta(x_t, t, c) with c the fixed (empty-prompt) context."""

    trains = ("unet",)

    def __init__(self, components: dict, config: TrainingConfig):
        super().__init__(components["vae"], components["text_context"])
        self.unet = components["unet"].requires_grad_(True)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        noisy, timesteps, noise = self.noised(self.encode(batch["target"], generator), generator)
        eps = self.unet(noisy, timesteps, encoder_hidden_states=self.context(noisy.shape[0]), return_dict=False)[0]
        return F.mse_loss(eps.float(), noise.float())

    def exported(self) -> dict:
        return {"unet": self.unet, "text_context": self.text_context}


class ControlNetStage(_Denoising):
    """An OpenPose ControlNet on the frozen base UNet (what lllyasviel trained for SD-1.5)."""

    trains = ("pose_control",)

    def __init__(self, components: dict, config: TrainingConfig):
        super().__init__(components["vae"], components["text_context"])
        self.unet = components["unet"].requires_grad_(False)
        self.pose_control = components["pose_control"].requires_grad_(True)

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        noisy, timesteps, noise = self.noised(self.encode(batch["target"], generator), generator)
        return F.mse_loss(self.eps(noisy, timesteps, batch["pose_image"]).float(), noise.float())

    def eps(self, noisy, timesteps, pose_images):
        context = self.context(noisy.shape[0])
        down, mid = self.pose_control(
            noisy,
            timesteps,
            encoder_hidden_states=context,
            controlnet_cond=pose_images.to(noisy.dtype),
            return_dict=False,
        )
        return self.unet(
            noisy,
            timesteps,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]

    def exported(self) -> dict:
        return {"pose_control": self.pose_control}


class MagicPoseStage(_Denoising):
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

    def exported(self) -> dict:
        return {
            "unet": self.model.unet,
            "appearance_control": self.model.appearance_control,
            "pose_control": self.model.pose_control,
            "vae": self.vae,
            "text_context": self.text_context,
        }


def _motion_stage(components: dict, config: TrainingConfig):
    from magicpose.training.motion_stage import MotionStage

    return MotionStage(components, config)


STAGE_BUILDERS: dict[str, Callable[[dict, TrainingConfig], torch.nn.Module]] = {
    "vae": VaeStage,
    "base_unet": BaseUnetStage,
    "controlnet": ControlNetStage,
    "appearance": MagicPoseStage,
    "pose": MagicPoseStage,
    "motion": _motion_stage,
}
#: Stages whose batches are clips (T frames per sample, `ClipDataset`) rather than frame pairs.
CLIP_STAGES = {"motion"}


def register_stage(name: str, builder: Callable[[dict, TrainingConfig], torch.nn.Module], clips: bool = False) -> None:
    """The hook for stage 3: `builder(components, config)` returns a module with `forward(batch,
    generator) -> loss`, `trains` (component names), `exported()` (name -> module with
    `save_pretrained`), `vae`, and optionally `validation_columns(batch, sampling)`;
    `clips` selects `ClipDataset` batches."""
    STAGE_BUILDERS[name] = builder
    if clips:
        CLIP_STAGES.add(name)


def build_stage(config: TrainingConfig, components: dict | None = None) -> torch.nn.Module:
    components = load_components(config.model) if components is None else components
    if config.stage == "appearance" and "pose_control" not in components.get("loaded", ()):
        warnings.warn(
            "stage 1 trains no pose ControlNet and none was given (model.pose_control): "
            "its export carries an untrained one",
            stacklevel=2,
        )
    module = STAGE_BUILDERS[config.stage](components, config)
    if config.train.gradient_checkpointing:
        for sub in module.modules():
            if isinstance(sub, (UNet2DConditionModel, UNetMotionModel, ControlNetModel)):
                sub.enable_gradient_checkpointing()
    return module.train()


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
