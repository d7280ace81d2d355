"""Build a `MagicPosePipeline` from what a user has: our model folder, or the official checkpoint."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from magicpose.errors import InputError, MissingWeightsError
from magicpose.models.loading import missing_parts
from magicpose.models.text_context import TextContext, encode_prompt

PIPELINE_REQUIRED = ("unet", "appearance_control", "pose_control", "vae", "text_context", "scheduler")


MOTION_ADAPTER = "motion_adapter"  # optional subfolder of a model folder: its own stage-3 motion module


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
    """
    from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise MissingWeightsError(
            f"{folder} is not a MagicPose model folder (no model_index.json); convert an official checkpoint "
            "with `magicpose convert` or export a trained model"
        )
    missing = missing_parts(folder, PIPELINE_REQUIRED)
    if missing:
        raise MissingWeightsError(f"model folder {folder} is incomplete; missing: {', '.join(missing)}")
    kwargs = {"dtype": dtype} if dtype is not None else {}
    pipeline = MagicPosePipeline.from_pretrained(folder, **kwargs)
    own = folder / MOTION_ADAPTER
    source = motion_adapter or (own if motion_module and (own / "config.json").is_file() else None)
    if source is not None:
        add_motion_module(pipeline, source)
    return pipeline


def add_motion_module(pipeline, source: str | Path):
    """The pipeline with a motion module (a `MotionAdapter` folder or an AnimateDiff file) in its base UNet."""
    from magicpose.models.motion_module import build_motion_unet, is_motion_unet, load_motion_adapter

    if is_motion_unet(pipeline.unet):
        raise InputError("this pipeline already has a motion module; load the model without its own to use another")
    pipeline.unet = build_motion_unet(pipeline.unet, load_motion_adapter(source).to(pipeline.unet.dtype))
    return pipeline


def pipeline_from_official(checkpoint: str | Path, config: str | Path | None = None, sd15: str | Path | None = None, dtype=None):
    """Convert an official `model_state-*.th` in memory. `sd15` (optional) supplies the tokenizer for text prompts."""
    from magicpose.models.official_checkpoint import (
        build_components,
        convert_official_state_dict,
        load_ldm_config,
        load_official_state_dict,
    )
    from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
    from magicpose.pipelines.schedulers import official_ddim_scheduler

    converted = convert_official_state_dict(load_official_state_dict(checkpoint), load_ldm_config(config))
    components = build_components(converted, dtype=dtype)
    if "pose_control" not in components:
        raise InputError(f"{checkpoint} is a stage-1 checkpoint (no pose ControlNet); use a stage-2 checkpoint")
    tokenizer = None
    if sd15 is not None:
        from transformers import CLIPTokenizer

        missing = missing_parts(sd15, ("tokenizer",))
        if missing:
            raise MissingWeightsError(f"SD-1.5 folder {sd15} has no tokenizer: missing {', '.join(missing)}")
        tokenizer = CLIPTokenizer.from_pretrained(sd15, subfolder="tokenizer")
    text_encoder = components.pop("text_encoder", None)
    if text_encoder is not None:
        context = TextContext.from_tensor(encode_prompt(text_encoder.float(), "", tokenizer))
    else:
        dim = components["unet"].config.cross_attention_dim
        warnings.warn("the checkpoint has no text encoder: the cross-attention context is zeros")
        context = TextContext(length=77, dim=dim)
    return MagicPosePipeline(
        **components,
        text_context=context,  # kept in float32; cast per call
        scheduler=official_ddim_scheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


def save_pipeline_atomically(pipeline, out: str | Path, overwrite: bool = False) -> Path:
    """`save_pretrained` into a temporary folder beside `out`, then move it into place whole."""
    out = Path(out)
    occupied = out.is_file() or (out.is_dir() and any(out.iterdir()))
    if occupied and not overwrite:
        raise InputError(f"{out} already exists; choose another output folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        pipeline.save_pretrained(temporary)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        temporary.rename(out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out
