"""The networks a stage starts from, each built once: component folders named in the config's `model:`
section, `model.sd15`'s UNet, VAE and empty-prompt context, or the preset's architecture at random."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from magicpose.errors import InputError
from magicpose.models import presets
from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.loading import component_missing, is_hub_id, require_parts
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.text_context import TextContext, encode_prompt
from magicpose.training.config import ModelConfig

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
    components["scheduler"] = official_ddim_scheduler()
    components["loaded"] = given
    return components


def _preset_hint_channels(preset: str):
    return presets.component_configs(preset)["pose_control"].get("conditioning_embedding_out_channels")


def _preset_parts(preset: str, seed: int, wanted: set[str]) -> dict:
    """The preset's random components named in `wanted`, exactly as `presets.build_components(preset,
    seed)` draws them: one random stream, in the order unet, appearance_control (a copy of the unet),
    pose_control (`from_unet`), vae, text_context. A part not wanted is skipped unless a wanted one is
    drawn after it (then it is built and dropped, so that what follows comes out the same)."""
    configs = presets.component_configs(preset)
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
    missing = component_missing(Path(path), label=f"{path}/")
    if missing:
        raise InputError(
            f"model.{name}: {path} is not a complete component folder (missing {', '.join(missing)}); "
            "point it at a folder written by a stage's export, e.g. runs/puppet/vae/export/vae"
        )
    return cls.from_pretrained(path)
