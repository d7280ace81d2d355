"""Conversion of the official MagicPose checkpoint (`model_state-*.th`) into diffusers components.

The official file is one torch state dict in the ldm layout (BRIEF §1):

    model.diffusion_model.*     base UNet                     -> unet (UNet2DConditionModel)
    appearance_control_model.*  Appearance Control Model      -> appearance_control (AppearanceControlModel)
                                (stage-1 files: control_model.*)
    pose_control_model.*        Pose ControlNet               -> pose_control (ControlNetModel)
    first_stage_model.*         VAE                           -> vae (AutoencoderKL)
    cond_stage_model.transformer.*  CLIP ViT-L/14 text model  -> text_encoder (CLIPTextModel) and the
                                                                 empty-prompt context (TextContext)
    betas, alphas_cumprod, ...  DDPM buffers                  -> checked against the DDIM scheduler

The layer renaming is diffusers' single-file conversion; this module adds the MagicPose prefixes, the
bookkeeping that proves every key was used, and the few keys the official model never reads.

Memory: the file is memory-mapped (a tensor's bytes are read when first used) and each component is
converted, built around the file's tensors (no copy where the dtype is already right) and, for
`magicpose convert`, written and dropped before the next one is read; the largest component (a UNet,
3.4 GB in float32) is then the most that is ever held.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_controlnet_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    create_unet_diffusers_config_from_ldm,
    create_vae_diffusers_config_from_ldm,
)
from safetensors import safe_open
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from magicpose.errors import InputError, MissingWeightsError
from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.loading import missing_parts
from magicpose.models.mapped_pages import MappedPageRelease
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.text_context import TextContext, encode_prompt

SD15_CONFIG = Path(__file__).with_name("configs") / "magicpose_sd15.yaml"

UNET_PREFIX = "model.diffusion_model."
APPEARANCE_PREFIX = "appearance_control_model."
STAGE1_APPEARANCE_PREFIX = "control_model."
POSE_PREFIX = "pose_control_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
DDPM_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "logvar",
)

COMPONENT_CLASSES = {
    "unet": UNet2DConditionModel,
    "appearance_control": AppearanceControlModel,
    "pose_control": ControlNetModel,
    "vae": AutoencoderKL,
}


@dataclass
class ConvertedCheckpoint:
    """Diffusers-layout state dicts and configs per component, and what was deliberately not used."""

    state_dicts: dict[str, dict[str, torch.Tensor]]
    configs: dict[str, dict]
    unused: dict[str, str] = field(default_factory=dict)  # official key -> why the official model never reads it

    source_keys: list[str] = field(default_factory=list)


def load_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a `.th`/`.pt`/`.ckpt` torch file or a `.safetensors` file, memory-mapped: every tensor is a view
    of the file, read from disk when first used; the mapping goes when no tensor of it is left."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"official checkpoint {path} does not exist; pass the path of model_state-*.th")
    if path.suffix == ".safetensors":
        try:
            with safe_open(path, framework="pt") as handle:  # tensors outlive the handle: they hold the mapping
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own error types for non-safetensors files
            raise InputError(
                f"{path} is not a readable safetensors file ({error.__class__.__name__}: {error})"
            ) from error
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # torch raises several types for non-checkpoints
            raise InputError(
                f"{path} is not a readable torch checkpoint ({error.__class__.__name__}: {error})"
            ) from error
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise InputError(
                f"{path} holds a {type(state).__name__}, not a state dict; pass the official model_state-*.th"
            )
    return {key.removeprefix("module."): value for key, value in state.items()}  # DDP-wrapped saves


def load_ldm_config(path: str | Path | None = None) -> dict:
    """The official-format model YAML; the SD-1.5-size MagicPose config when `path` is None."""
    path = Path(path) if path is not None else SD15_CONFIG
    if not path.is_file():
        raise InputError(f"model config {path} does not exist")
    return yaml.safe_load(path.read_text())


def diffusers_configs(ldm_config: dict) -> dict[str, dict]:
    """Diffusers configs of every component, derived from the official model YAML."""
    params = ldm_config["model"]["params"]
    latent_size = params.get("image_size", 64)
    ddconfig = params["first_stage_config"]["params"]["ddconfig"]
    with warnings.catch_warnings():  # diffusers deprecates `image_size`; we override sample_size anyway
        warnings.simplefilter("ignore", FutureWarning)
        unet = create_unet_diffusers_config_from_ldm(ldm_config, {}, image_size=latent_size * 8)
        vae = create_vae_diffusers_config_from_ldm(ldm_config, {}, image_size=ddconfig["resolution"])
    unet["sample_size"] = latent_size
    # ldm's ControlNet mirrors the UNet encoder (diffusers' own ControlNet helper cannot be called here).
    pose = {
        key: unet[key]
        for key in (
            "in_channels",
            "down_block_types",
            "block_out_channels",
            "layers_per_block",
            "cross_attention_dim",
            "attention_head_dim",
            "use_linear_projection",
            "class_embed_type",
            "addition_embed_type",
            "addition_time_embed_dim",
            "projection_class_embeddings_input_dim",
            "transformer_layers_per_block",
        )
    }
    pose["conditioning_channels"] = (
        params.get("pose_control_stage_config", {}).get("params", {}).get("hint_channels", 3)
    )
    configs = {"unet": unet, "appearance_control": dict(unet), "pose_control": pose, "vae": vae}
    if params.get("cond_stage_config", {}).get("params"):
        configs["text_encoder"] = dict(params["cond_stage_config"]["params"])
    return configs


@dataclass
class ConversionPlan:
    """What a checkpoint holds, read from its key names (and its noise schedule) alone."""

    configs: dict[str, dict]  # diffusers config of every component the checkpoint has weights for, in build order
    appearance_prefix: str
    unused: dict[str, str] = field(default_factory=dict)  # official key -> why the official model never reads it
    source_keys: list[str] = field(default_factory=list)
    checkpoint: Path | None = None  # the file, when planned from one (`plan_official_checkpoint`)

    @property
    def components(self) -> list[str]:
        return list(self.configs)


def plan_conversion(official: Mapping[str, torch.Tensor], ldm_config: dict | None = None) -> ConversionPlan:
    """Check that `official` is a MagicPose checkpoint and list its components; no weight is read."""
    ldm_config = ldm_config if ldm_config is not None else load_ldm_config()
    configs = diffusers_configs(ldm_config)
    appearance_prefix = (
        APPEARANCE_PREFIX if any(k.startswith(APPEARANCE_PREFIX) for k in official) else STAGE1_APPEARANCE_PREFIX
    )
    missing = [
        prefix
        for prefix in (UNET_PREFIX, appearance_prefix, VAE_PREFIX)
        if not any(k.startswith(prefix) for k in official)
    ]
    if missing:
        raise InputError(f"not a MagicPose checkpoint: no keys start with {', '.join(missing)}")

    unused: dict[str, str] = {}
    for key in official:
        if key.startswith(appearance_prefix + "input_hint_block."):
            unused[key] = "the appearance model is called with hint=None, so its hint encoder never runs"
        elif key == CLIP_PREFIX + "text_model.embeddings.position_ids":
            unused[key] = "constant arange(77) buffer, rebuilt by transformers"
    _check_ddpm_buffers(official, ldm_config, unused)
    unknown = [
        k
        for k in official
        if not k.startswith((UNET_PREFIX, appearance_prefix, POSE_PREFIX, VAE_PREFIX, CLIP_PREFIX)) and k not in unused
    ]
    if unknown:
        raise InputError(
            f"unexpected keys in the checkpoint (first: {unknown[:5]}); is it a MagicPose/MagicDance file?"
        )
    if not any(k.startswith(POSE_PREFIX) for k in official):
        configs.pop("pose_control")  # a stage-1 checkpoint
    if not any(k.startswith(CLIP_PREFIX + "text_model.") and k not in unused for k in official):
        configs.pop("text_encoder", None)
    elif "text_encoder" not in configs:
        raise InputError(
            "the checkpoint has a CLIP text encoder but the model config has no cond_stage_config params for it"
        )
    return ConversionPlan(
        configs=configs, appearance_prefix=appearance_prefix, unused=unused, source_keys=list(official)
    )


def convert_component(
    official: Mapping[str, torch.Tensor], name: str, plan: ConversionPlan
) -> dict[str, torch.Tensor]:
    """One component's diffusers-layout state dict, renamed from `official` (no tensor is copied)."""
    config = plan.configs[name]
    if name == "unet":
        return convert_ldm_unet_checkpoint(_starting_with(official, UNET_PREFIX), config)
    if name == "appearance_control":
        prefix = plan.appearance_prefix
        appearance = {
            UNET_PREFIX + key[len(prefix) :]: official[key]
            for key in official
            if key.startswith(prefix) and key not in plan.unused
        }
        return convert_ldm_unet_checkpoint(appearance, config)
    if name == "pose_control":
        return convert_controlnet_checkpoint(
            {key[len(POSE_PREFIX) :]: official[key] for key in official if key.startswith(POSE_PREFIX)}, config
        )
    if name == "vae":
        return convert_ldm_vae_checkpoint(_starting_with(official, VAE_PREFIX), config)
    if name == "text_encoder":
        clip_model = CLIP_PREFIX + "text_model."
        return {
            key[len(clip_model) :]: official[key]
            for key in official
            if key.startswith(clip_model) and key not in plan.unused
        }
    raise KeyError(f"unknown component {name!r}")


def _starting_with(official: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key: official[key] for key in official if key.startswith(prefix)}


def convert_official_state_dict(
    official: Mapping[str, torch.Tensor], ldm_config: dict | None = None
) -> ConvertedCheckpoint:
    """Rename the official keys into per-component diffusers state dicts (no tensor is copied)."""
    plan = plan_conversion(official, ldm_config)
    state_dicts = {name: convert_component(official, name, plan) for name in plan.components}
    return ConvertedCheckpoint(
        state_dicts=state_dicts, configs=plan.configs, unused=plan.unused, source_keys=plan.source_keys
    )


def _check_ddpm_buffers(official: dict, ldm_config: dict, unused: dict[str, str]) -> None:
    """The DDPM buffers only restate the noise schedule: verify it is the one our scheduler uses."""
    if "alphas_cumprod" in official and not official["alphas_cumprod"].is_meta:
        expected = official_ddim_scheduler().alphas_cumprod.double()
        found = official["alphas_cumprod"].double()
        if found.shape != expected.shape or float((found - expected).abs().max()) > 1e-6:
            raise InputError(
                "the checkpoint's noise schedule (alphas_cumprod) differs from SD-1.5's; it cannot be converted"
            )
    for key in DDPM_BUFFERS:
        if key in official:
            unused[key] = "DDPM schedule buffer; checked against the DDIM scheduler (alphas_cumprod within 1e-6)"


def build_components(converted: ConvertedCheckpoint, dtype: torch.dtype | None = None) -> dict[str, torch.nn.Module]:
    """Instantiate every component and load its weights strictly (a missing or extra key is an error)."""
    return {
        name: build_component(name, converted.configs[name], state, dtype)
        for name, state in converted.state_dicts.items()
    }


def build_component(
    name: str,
    config: dict,
    state: dict[str, torch.Tensor],
    dtype: torch.dtype | None = None,
    release: Callable[[torch.Tensor], None] | None = None,
) -> torch.nn.Module:
    """One component whose weights are `state`'s tensors, loaded strictly (a missing or extra key is an error).

    The parameters are created on the meta device and then take the tensors themselves (`assign`), cast
    one by one where their dtype is not the parameter's (float32, or `dtype` for floating-point weights):
    the weights are held once, and nothing is initialised only to be overwritten. The values are those a
    float32 model given `load_state_dict(state)` and then `.to(dtype)` would have. `release(tensor)` is
    called on every source tensor once its cast copy exists.
    """

    with init_empty_weights(include_buffers=False):  # buffers outside the state dict (position ids) stay real
        model = instantiate(name, config)
    expected = model.state_dict()
    state = dict(state)
    for key, value in state.items():
        if key in expected:
            target = dtype if dtype is not None and expected[key].is_floating_point() else expected[key].dtype
            if value.dtype != target:
                state[key] = value.to(target)
                if release is not None:
                    release(value)
    model.load_state_dict(state, strict=True, assign=True)
    del state
    if dtype is not None:  # floating buffers that are not in the state dict, as `.to(dtype)` casts them
        for module in model.modules():
            for key, buffer in module._buffers.items():
                if buffer is not None and buffer.is_floating_point() and buffer.dtype != dtype:
                    module._buffers[key] = buffer.to(dtype)
    left = [key for key, value in [*model.named_parameters(), *model.named_buffers()] if value.is_meta]
    if left:
        raise RuntimeError(f"{name}: no weights for {left[:5]} after loading the checkpoint")
    return model


def instantiate(name: str, config: dict) -> torch.nn.Module:
    if name == "text_encoder":
        return CLIPTextModel(CLIPTextConfig(**config))
    return COMPONENT_CLASSES[name].from_config(config)


def plan_official_checkpoint(checkpoint: str | Path, config: str | Path | None = None) -> ConversionPlan:
    """The plan of a stage-2 checkpoint file (its key names, checked); stage-1 files are refused."""
    official = load_official_state_dict(checkpoint)
    plan = plan_conversion(official, load_ldm_config(config))
    del official
    if "pose_control" not in plan.configs:
        raise InputError(f"{checkpoint} is a stage-1 checkpoint (no pose ControlNet); use a stage-2 checkpoint")
    plan.checkpoint = Path(checkpoint)
    return plan


def load_components(
    plan: ConversionPlan, names: list[str] | None = None, dtype: torch.dtype | None = None
) -> dict[str, torch.nn.Module]:
    """Build components (all of the plan's by default) from the planned file, each around its tensors.

    The file is mapped afresh for each call; the mapping (and every page read from it) goes once the
    returned modules are dropped, which lets `pipelines.official.convert_to_folder` hold one component at a time.
    """
    if plan.checkpoint is None:
        raise ValueError("the plan was not made from a file; use plan_official_checkpoint")
    official = load_official_state_dict(plan.checkpoint)
    release = MappedPageRelease(plan.checkpoint)
    components = {}
    for name in names if names is not None else plan.components:
        components[name] = build_component(
            name, plan.configs[name], convert_component(official, name, plan), dtype, release
        )
    del official
    return components


def load_sd15_tokenizer(sd15: str | Path):
    """The CLIP tokenizer of an SD-1.5 folder (its tokenizer/ subfolder)."""

    missing = missing_parts(sd15, ("tokenizer",))
    if missing:
        raise MissingWeightsError(f"SD-1.5 folder {sd15} has no tokenizer: missing {', '.join(missing)}")
    return CLIPTokenizer.from_pretrained(sd15, subfolder="tokenizer")


def empty_prompt_context(text_encoder: torch.nn.Module | None, tokenizer, plan: ConversionPlan):
    """The `TextContext` of the empty prompt from the (float32) text encoder; zeros, with a warning, without one."""

    if text_encoder is not None:
        return TextContext.from_tensor(encode_prompt(text_encoder, "", tokenizer))
    warnings.warn("the checkpoint has no text encoder: the cross-attention context is zeros", stacklevel=2)
    return TextContext(length=77, dim=plan.configs["unet"]["cross_attention_dim"])
