"""Build a `MagicPosePipeline` from what a user has: our model folder, or the official checkpoint."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

from magicpose.errors import InputError, MissingWeightsError
from magicpose.files import atomic_folder
from magicpose.models.default import default_model_folder
from magicpose.models.loading import check_folder_files, missing_parts
from magicpose.models.motion_module import build_motion_unet, is_motion_unet, load_motion_adapter, tie_motion_adapter
from magicpose.pipelines.official import pipeline_from_official
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from magicpose.pipelines.recipe import RECIPE_KEYS
from magicpose.pipelines.schedulers import scheduler_named

PIPELINE_REQUIRED = ("unet", "appearance_control", "pose_control", "vae", "text_context", "scheduler")


MOTION_ADAPTER = "motion_adapter"  # optional subfolder of a model folder: its own stage-3 motion module
OFFICIAL_SUFFIXES = (".th", ".pt", ".ckpt", ".safetensors")  # an official single-file checkpoint
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None`/"auto": the first GPU when there is one, else the CPU; a named device must exist."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise InputError(f"device {device} is not available on this machine; use --device cpu or auto")
    return device


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`None`/"auto": float16 on a GPU (the official weights' usual precision there), float32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load(
    source: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    motion_adapter: str | Path | None = None,
    motion_module: bool = True,
    scheduler: str | None = None,
    cpu_offload: bool | str = False,
    vae_tiling: bool = False,
    official_config: str | Path | None = None,
    sd15: str | Path | None = None,
):
    """The one way every command gets a ready `MagicPosePipeline`.

    Args:
        source: a model folder (`magicpose convert`, a training export), an official single-file
            checkpoint (.th / .pt / .ckpt / .safetensors, converted in memory; `official_config` is its
            model YAML, `sd15` an SD-1.5 folder for the tokenizer), or None for the embedded model.
        device, dtype: "auto" or None picks the GPU and float16 where there is one, else CPU and float32.
        motion_adapter, motion_module: see `load_pipeline`; an official checkpoint has no module of its own.
        scheduler: a sampler name of `magicpose.pipelines.schedulers.SCHEDULERS` in place of the model's own.
        cpu_offload: small GPUs: each network waits on the CPU and comes to `device` for its phase of a
            call, none inside the denoising loop (`MagicPosePipeline.enable_offload_plan`); "sequential":
            diffusers' sequential offload, layer by layer, for GPUs too small even for that.
        vae_tiling: decode frames tile by tile (large frames on small GPUs).
    The model's own sampling recipe (steps, guidance, ...) comes with it: `pipeline.recipe()`.
    """

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    path = Path(source) if source is not None else default_model_folder()
    if path.is_file() and path.suffix.lower() in OFFICIAL_SUFFIXES:
        pipeline = pipeline_from_official(path, config=official_config, sd15=sd15, dtype=dtype)
        if motion_adapter:
            add_motion_module(pipeline, motion_adapter)
    elif path.is_file():
        raise InputError(
            f"{path} is neither a model folder nor an official checkpoint ({', '.join(OFFICIAL_SUFFIXES)})"
        )
    elif not path.exists():
        raise MissingWeightsError(f"the model {path} does not exist; pass a model folder or an official checkpoint")
    else:
        pipeline = load_pipeline(path, dtype=dtype, motion_module=motion_module, motion_adapter=motion_adapter)
    if scheduler:
        try:
            pipeline.scheduler = scheduler_named(scheduler, pipeline.scheduler.config)
        except ValueError as error:
            raise InputError(str(error)) from error
    if vae_tiling:
        pipeline.enable_vae_tiling()
    if cpu_offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
    elif cpu_offload:
        pipeline.enable_offload_plan(device)
    else:
        pipeline.to(device)
    return pipeline


def sampling_recipe(source: str | Path | None = None) -> dict:
    """The sampling recipe `load(source)` would bring, read without loading any weight (for pages and
    help that show it before the first generation). An official checkpoint has the official recipe."""

    path = Path(source) if source is not None else default_model_folder()
    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(MagicPosePipeline).parameters.items()
        if key in RECIPE_KEYS
    }
    if not (path / "model_index.json").is_file():
        return defaults
    try:
        saved = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError) as error:
        raise InputError(
            f"{path / 'model_index.json'} is not readable JSON ({error}); re-export or re-convert the model"
        ) from error
    return {key: saved.get(key, default) for key, default in defaults.items()}


def load_pipeline(
    folder: str | Path,
    dtype: torch.dtype | None = None,
    motion_module: bool = True,
    motion_adapter: str | Path | None = None,
):
    """A pipeline folder written by `save_pretrained` (ours, `magicpose convert` or training export).

    A folder that holds its own motion module (`motion_adapter/`, a stage-3 `MotionAdapter` folder, as
    the embedded model does) gets its temporal layers in the base UNet, unless `motion_module=False`;
    `motion_adapter` (a `MotionAdapter` folder or an AnimateDiff file) takes the place of the folder's own.
    The adapter is the pipeline's optional `motion_adapter` component, so `MagicPosePipeline.from_pretrained`
    and `DiffusionPipeline.from_pretrained` build the same model from a folder that lists it.
    """

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise MissingWeightsError(
            f"{folder} is not a MagicPose model folder (no model_index.json); convert an official checkpoint "
            "with `magicpose convert` or export a trained model"
        )
    missing = missing_parts(folder, PIPELINE_REQUIRED)
    if missing:
        raise MissingWeightsError(f"model folder {folder} is incomplete; missing: {', '.join(missing)}")
    check_folder_files(folder)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    own = folder / MOTION_ADAPTER
    listed = json.loads((folder / "model_index.json").read_text()).get(MOTION_ADAPTER, [None])[0] is not None
    if motion_adapter is not None:
        kwargs[MOTION_ADAPTER] = _adapter_in(load_motion_adapter(motion_adapter), dtype)
    elif not motion_module:
        kwargs[MOTION_ADAPTER] = None
    elif not listed and (own / "config.json").is_file():  # a folder written before the adapter was a component
        kwargs[MOTION_ADAPTER] = _adapter_in(load_motion_adapter(own), dtype)
    return MagicPosePipeline.from_pretrained(folder, **kwargs)


def _adapter_in(adapter, dtype: torch.dtype | None):
    """`adapter` in `dtype` (diffusers warns on every `.to(dtype)`, even a no-op one)."""
    return adapter.to(dtype) if dtype is not None and adapter.dtype != dtype else adapter


def add_motion_module(pipeline, source: str | Path):
    """The pipeline with a motion module (a `MotionAdapter` folder or an AnimateDiff file) in its base UNet."""

    if is_motion_unet(pipeline.unet):
        raise InputError("this pipeline already has a motion module; load the model without its own to use another")
    adapter = _adapter_in(load_motion_adapter(source), pipeline.unet.dtype)
    motion_unet = build_motion_unet(pipeline.unet, adapter)
    # register_modules, not attribute assignment: the folder must list the adapter when it is saved
    pipeline.register_modules(unet=motion_unet, motion_adapter=tie_motion_adapter(adapter, motion_unet))
    return pipeline


def save_pipeline_atomically(pipeline, out: str | Path, overwrite: bool = False) -> Path:
    """`save_pretrained` into a temporary folder beside `out`, then put it in place whole, with the
    modes ordinary files get (`files.atomic_folder`)."""
    with atomic_folder(out, overwrite=overwrite) as temporary:
        pipeline.save_pretrained(temporary)
    return Path(out)
