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
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_controlnet_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    create_unet_diffusers_config_from_ldm,
    create_vae_diffusers_config_from_ldm,
)

from magicpose.errors import InputError, MissingWeightsError
from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.pipelines.schedulers import official_ddim_scheduler

SD15_CONFIG = Path(__file__).with_name("configs") / "magicpose_sd15.yaml"

UNET_PREFIX = "model.diffusion_model."
APPEARANCE_PREFIX = "appearance_control_model."
STAGE1_APPEARANCE_PREFIX = "control_model."
POSE_PREFIX = "pose_control_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
DDPM_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar",
)  # fmt: skip

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
    """Read a `.th`/`.pt`/`.ckpt` torch file (memory-mapped) or a `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"official checkpoint {path} does not exist; pass the path of model_state-*.th")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises several types for non-checkpoints
        raise InputError(f"{path} is not a readable torch checkpoint ({error.__class__.__name__}: {error})") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {key.removeprefix("module."): value for key, value in state.items()}  # DDP-wrapped saves
    return state


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
    pose = {key: unet[key] for key in (
        "in_channels", "down_block_types", "block_out_channels", "layers_per_block", "cross_attention_dim",
        "attention_head_dim", "use_linear_projection", "class_embed_type", "addition_embed_type",
        "addition_time_embed_dim", "projection_class_embeddings_input_dim", "transformer_layers_per_block",
    )}  # fmt: skip
    pose["conditioning_channels"] = params.get("pose_control_stage_config", {}).get("params", {}).get("hint_channels", 3)
    configs = {"unet": unet, "appearance_control": dict(unet), "pose_control": pose, "vae": vae}
    if params.get("cond_stage_config", {}).get("params"):
        configs["text_encoder"] = dict(params["cond_stage_config"]["params"])
    return configs


def convert_official_state_dict(official: dict[str, torch.Tensor], ldm_config: dict | None = None) -> ConvertedCheckpoint:
    """Rename the official keys into per-component diffusers state dicts (no tensor is copied)."""
    ldm_config = ldm_config if ldm_config is not None else load_ldm_config()
    configs = diffusers_configs(ldm_config)
    appearance_prefix = APPEARANCE_PREFIX if any(k.startswith(APPEARANCE_PREFIX) for k in official) else STAGE1_APPEARANCE_PREFIX
    missing = [prefix for prefix in (UNET_PREFIX, appearance_prefix, VAE_PREFIX) if not any(k.startswith(prefix) for k in official)]
    if missing:
        raise InputError(f"not a MagicPose checkpoint: no keys start with {', '.join(missing)}")

    unused: dict[str, str] = {}
    for key in official:
        if key.startswith(appearance_prefix + "input_hint_block."):
            unused[key] = "the appearance model is called with hint=None, so its hint encoder never runs"
        elif key == CLIP_PREFIX + "text_model.embeddings.position_ids":
            unused[key] = "constant arange(77) buffer, rebuilt by transformers"
    _check_ddpm_buffers(official, ldm_config, unused)
    unknown = [k for k in official if not k.startswith((UNET_PREFIX, appearance_prefix, POSE_PREFIX, VAE_PREFIX, CLIP_PREFIX)) and k not in unused]
    if unknown:
        raise InputError(f"unexpected keys in the checkpoint (first: {unknown[:5]}); is it a MagicPose/MagicDance file?")

    state_dicts = {"unet": convert_ldm_unet_checkpoint(official, configs["unet"])}
    appearance = {
        UNET_PREFIX + key[len(appearance_prefix):]: value
        for key, value in official.items()
        if key.startswith(appearance_prefix) and key not in unused
    }
    state_dicts["appearance_control"] = convert_ldm_unet_checkpoint(appearance, configs["appearance_control"])
    pose = {key[len(POSE_PREFIX):]: value for key, value in official.items() if key.startswith(POSE_PREFIX)}
    if pose:
        state_dicts["pose_control"] = convert_controlnet_checkpoint(pose, configs["pose_control"])
    else:
        configs.pop("pose_control")  # a stage-1 checkpoint
    state_dicts["vae"] = convert_ldm_vae_checkpoint(official, configs["vae"])
    clip_model = CLIP_PREFIX + "text_model."
    clip = {key[len(clip_model):]: value for key, value in official.items() if key.startswith(clip_model) and key not in unused}
    if clip:
        state_dicts["text_encoder"] = clip
    else:
        configs.pop("text_encoder", None)
    return ConvertedCheckpoint(state_dicts=state_dicts, configs=configs, unused=unused, source_keys=list(official))


def _check_ddpm_buffers(official: dict, ldm_config: dict, unused: dict[str, str]) -> None:
    """The DDPM buffers only restate the noise schedule: verify it is the one our scheduler uses."""
    if "alphas_cumprod" in official and not official["alphas_cumprod"].is_meta:
        expected = official_ddim_scheduler().alphas_cumprod.double()
        found = official["alphas_cumprod"].double()
        if found.shape != expected.shape or float((found - expected).abs().max()) > 1e-6:
            raise InputError("the checkpoint's noise schedule (alphas_cumprod) differs from SD-1.5's; it cannot be converted")
    for key in DDPM_BUFFERS:
        if key in official:
            unused[key] = "DDPM schedule buffer; checked against the DDIM scheduler (alphas_cumprod within 1e-6)"


def build_components(converted: ConvertedCheckpoint, dtype: torch.dtype | None = None) -> dict[str, torch.nn.Module]:
    """Instantiate every component and load its weights strictly (a missing or extra key is an error)."""
    components = {}
    for name, state in converted.state_dicts.items():
        model = _instantiate(name, converted.configs[name])
        model.load_state_dict(state, strict=True)
        components[name] = model.to(dtype) if dtype is not None else model
    return components


def _instantiate(name: str, config: dict) -> torch.nn.Module:
    if name == "text_encoder":
        from transformers import CLIPTextConfig, CLIPTextModel

        return CLIPTextModel(CLIPTextConfig(**config))
    return COMPONENT_CLASSES[name].from_config(config)


def component_shapes(name: str, config: dict) -> dict[str, torch.Size]:
    """Parameter shapes of a component built on the meta device: no memory, nothing downloaded."""
    with torch.device("meta"):
        model = _instantiate(name, config)
    return {key: value.shape for key, value in model.state_dict().items()}


def meta_state_dict(full_keys_json: str | Path) -> dict[str, torch.Tensor]:
    """Meta tensors with the shapes and dtypes listed in the shared `full_keys.json`."""
    listing = json.loads(Path(full_keys_json).read_text())
    entries = listing["keys"] if isinstance(listing, dict) and "keys" in listing else listing
    if isinstance(entries, dict):
        entries = [dict(key=key, **value) for key, value in entries.items()]
    return {
        entry["key"]: torch.empty(entry["shape"], dtype=getattr(torch, entry["dtype"].removeprefix("torch.")), device="meta")
        for entry in entries
    }
