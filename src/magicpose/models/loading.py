"""Loading components from diffusers-format folders (or hub ids), with errors that say what is missing.

Nothing is downloaded unless the user names a hub id (and has network): a path that exists is always
read locally, and a path-like argument that does not exist is an error, not a download.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from magicpose.errors import MissingWeightsError
from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.text_context import TextContext, encode_prompt

MAX_SAFETENSORS_HEADER = 100 * 2**20  # the format's own limit on the JSON header

WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
# Subfolders of an SD-1.5 folder (e.g. a local copy of stable-diffusion-v1-5/stable-diffusion-v1-5).
SD15_REQUIRED = ("unet", "vae", "text_encoder", "tokenizer")


def is_hub_id(name: str) -> bool:
    """`owner/name` with no such local path: the only form that may trigger a download."""
    return not Path(name).exists() and name.count("/") == 1 and not name.startswith((".", "/", "~"))


def missing_parts(folder: str | Path, subfolders: tuple[str, ...]) -> list[str]:
    """Which of `subfolders` lack a config or weights (tokenizers need only their vocabulary files)."""
    return [item for sub in subfolders for item in component_missing(Path(folder) / sub, label=f"{sub}/")]


def component_missing(path: Path, label: str = "") -> list[str]:
    """What one component folder lacks, by kind: tokenizer, scheduler, or model (config + weights)."""
    if not path.is_dir():
        return [f"{label or path.name + '/'} (folder)"]
    if path.name == "tokenizer":
        return (
            []
            if (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
            else [f"{label}vocab.json and merges.txt"]
        )
    if path.name == "scheduler":
        return [] if (path / "scheduler_config.json").is_file() else [f"{label}scheduler_config.json"]
    missing = [] if (path / "config.json").is_file() else [f"{label}config.json"]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"{label}{WEIGHT_FILES[0]} (or .bin)")
    return missing


def safetensors_problem(path: str | Path) -> str | None:
    """What is wrong with a .safetensors file, from its header alone (None: whole as far as the header says).

    The file is 8 bytes of little-endian header length, the JSON header, then the tensors; each tensor's
    `data_offsets` say where it ends, so a partial download or copy shows as a file shorter than the last end.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        return f"{path} is empty or cut short ({size} bytes)"
    with path.open("rb") as file:
        length = int.from_bytes(file.read(8), "little")
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            return f"{path} is not a safetensors file, or its header is damaged"
        try:
            header = json.loads(file.read(length))
        except ValueError:
            return f"{path} has a damaged header"
    if not isinstance(header, dict):
        return f"{path} has a damaged header"
    ends = [
        entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__" and isinstance(entry, dict)
    ]
    expected = 8 + length + max(ends, default=0)
    if size < expected:
        return f"{path} is truncated: it holds {size:,} of its {expected:,} bytes (an incomplete download or copy?)"
    return None


def check_folder_files(folder: str | Path) -> None:
    """Every JSON config and .safetensors file under `folder` is readable and whole, before any is loaded:
    a damaged file is named, instead of failing deep inside a library after minutes of loading."""
    for path in sorted(Path(folder).rglob("*.json")):
        try:
            json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise MissingWeightsError(
                f"{path} is not readable JSON ({error}); restore or re-create the file"
            ) from error
    for path in sorted(Path(folder).rglob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            raise MissingWeightsError(f"{problem}; download, copy or convert it again")


def require_parts(folder: str | Path, subfolders: tuple[str, ...], what: str) -> None:
    if not Path(folder).is_dir():
        raise MissingWeightsError(f"{what} folder {folder} does not exist")
    missing = missing_parts(folder, subfolders)
    if missing:
        raise MissingWeightsError(f"{what} folder {folder} is incomplete; missing: {', '.join(missing)}")


def _source(name: str | Path, subfolders: tuple[str, ...], what: str) -> str:
    name = str(name)
    if is_hub_id(name):
        return name
    require_parts(name, subfolders, what)
    return name


def load_sd15(name: str | Path, dtype: torch.dtype | None = None) -> dict:
    """SD-1.5's UNet, VAE, text encoder and tokenizer from a diffusers-format folder or a hub id."""

    source = _source(name, SD15_REQUIRED, "Stable Diffusion 1.5")
    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    return {
        "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kwargs),
        "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", **kwargs),
        "text_encoder": CLIPTextModel.from_pretrained(
            source, subfolder="text_encoder", **({"dtype": dtype} if dtype else {})
        ),
        "tokenizer": CLIPTokenizer.from_pretrained(source, subfolder="tokenizer"),
    }


def load_controlnet(name: str | Path, dtype: torch.dtype | None = None):
    """An OpenPose ControlNet (e.g. lllyasviel/control_v11p_sd15_openpose) from a folder or a hub id."""

    name = str(name)
    if not is_hub_id(name):
        missing = component_missing(Path(name))
        if missing:
            raise MissingWeightsError(f"ControlNet folder {name} is incomplete; missing: {', '.join(missing)}")
    return ControlNetModel.from_pretrained(name, **({"torch_dtype": dtype} if dtype is not None else {}))


def components_from_sd15(sd15: dict, controlnet=None) -> dict:
    """The untrained MagicPose of the paper's recipe: appearance branch copied from the SD UNet, the
    OpenPose ControlNet as the pose branch, and the empty-prompt context computed once."""

    return {
        "unet": sd15["unet"],
        "appearance_control": AppearanceControlModel.from_unet(sd15["unet"]),
        "pose_control": controlnet,
        "vae": sd15["vae"],
        "text_context": TextContext.from_tensor(encode_prompt(sd15["text_encoder"], "", sd15.get("tokenizer"))),
        "scheduler": official_ddim_scheduler(),
        "text_encoder": sd15.get("text_encoder"),
        "tokenizer": sd15.get("tokenizer"),
    }
