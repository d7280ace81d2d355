"""The official MagicPose checkpoint as a `MagicPosePipeline`: built in memory, or written as a folder one
component at a time (`magicpose convert`). The key mapping and the networks are `models.official_checkpoint`'s.
"""

from __future__ import annotations

import gc
import inspect
import os
from pathlib import Path

import torch
from accelerate import init_empty_weights

from magicpose.errors import InputError, MissingWeightsError
from magicpose.files import atomic_folder
from magicpose.models.loading import safetensors_problem
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.official_checkpoint import (
    empty_prompt_context,
    instantiate,
    load_components,
    load_sd15_tokenizer,
    plan_official_checkpoint,
)
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from magicpose.pipelines.saved_folder import name_pipeline_class


def check_checkpoint_file(checkpoint: str | Path) -> None:
    """A partial download of the 9 GB file is the likeliest damage: refuse it before reading any tensor."""
    path = Path(checkpoint)
    if path.is_file() and path.suffix.lower() == ".safetensors" and (problem := safetensors_problem(path)):
        raise MissingWeightsError(f"{problem}; download the checkpoint again")


def pipeline_from_official(
    checkpoint: str | Path, config: str | Path | None = None, sd15: str | Path | None = None, dtype=None
):
    """Convert an official `model_state-*.th` in memory. `sd15` (optional) supplies the tokenizer for text prompts.

    The file is memory-mapped and every network is built around its tensors (cast one by one where
    `dtype` differs), so the weights are held once; `magicpose convert` writes a folder instead.
    """
    check_checkpoint_file(checkpoint)
    plan = plan_official_checkpoint(checkpoint, config)  # refuses stage-1 checkpoints before reading weights
    tokenizer = load_sd15_tokenizer(sd15) if sd15 is not None else None
    text_encoder = load_components(plan, ["text_encoder"])["text_encoder"] if "text_encoder" in plan.configs else None
    context = empty_prompt_context(text_encoder, tokenizer, plan)  # from the float32 encoder
    if text_encoder is not None and dtype is not None:
        text_encoder = text_encoder.to(dtype)
    components = load_components(plan, [name for name in plan.components if name != "text_encoder"], dtype)
    return MagicPosePipeline(
        **components,
        text_context=context,  # kept in float32; cast per call
        scheduler=official_ddim_scheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


def convert_to_folder(
    checkpoint: str | Path,
    out: str | Path,
    config: str | Path | None = None,
    sd15: str | Path | None = None,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the official checkpoint as a pipeline folder (what `MagicPosePipeline.save_pretrained` writes).

    One component at a time: it is read from the memory-mapped file, built around the file's tensors
    (cast if `dtype` asks), saved with its own `save_pretrained` and dropped, with its mapping, before
    the next. `model_index.json` is the config of a `MagicPosePipeline` whose networks are built on the
    meta device. Everything goes into a temporary folder beside `out` that replaces `out` when complete;
    folders and files get the modes plain file calls give under the process umask.
    """
    out = Path(out)
    if out.exists() and (out.is_file() or not overwrite):
        kind = "a file" if out.is_file() else "a folder (pass --overwrite to replace it)"
        raise InputError(f"the output {out} already exists as {kind}; choose another output folder")
    check_checkpoint_file(checkpoint)
    plan = plan_official_checkpoint(checkpoint, config)
    tokenizer = load_sd15_tokenizer(sd15) if sd15 is not None else None
    with atomic_folder(out, overwrite=overwrite) as folder:
        written = set()
        if "text_encoder" in plan.configs:  # first: the empty prompt's context is computed from it in float32
            encoder = load_components(plan, ["text_encoder"])["text_encoder"]
            context = empty_prompt_context(encoder, tokenizer, plan)
            _save_component(encoder.to(dtype) if dtype is not None else encoder, folder / "text_encoder")
            written.add("text_encoder")
            del encoder
            gc.collect()
        else:
            context = empty_prompt_context(None, tokenizer, plan)
        with init_empty_weights():
            placeholders = {name: instantiate(name, plan.configs[name]) for name in plan.components}
        pipeline = MagicPosePipeline(
            **{name: module for name, module in placeholders.items() if name != "text_encoder"},
            text_context=context,  # kept in float32; cast per call
            scheduler=official_ddim_scheduler(),
            text_encoder=placeholders.get("text_encoder"),
            tokenizer=tokenizer,
        )
        del placeholders
        for name in _saved_components(pipeline):
            if name in written:
                continue
            module = load_components(plan, [name], dtype)[name] if name in plan.configs else getattr(pipeline, name)
            _save_component(module, folder / name)
            del module
            gc.collect()
        pipeline.save_config(folder)
        name_pipeline_class(folder)  # as save_pretrained does: DiffusionPipeline.from_pretrained finds the class
    return Path(out)


def _saved_components(pipeline) -> list[str]:
    """The components `DiffusionPipeline.save_pretrained` writes a folder for, in its order."""
    expected, _ = pipeline._get_signature_keys(pipeline)
    return [
        name
        for name, value in pipeline.config.items()
        if name in expected and not (name in pipeline._optional_components and value[0] is None)
    ]


def _save_component(module, folder: Path) -> None:
    """`module.save_pretrained(folder)` with the arguments `DiffusionPipeline.save_pretrained` passes."""
    save = module.save_pretrained
    parameters = inspect.signature(save).parameters
    kwargs = {
        key: value
        for key, value in (
            ("safe_serialization", True),
            ("variant", None),
            ("use_flashpack", False),
            ("save_peft_format", False),
        )
        if key in parameters
    }
    save(os.fspath(folder), **kwargs)
