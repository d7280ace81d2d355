"""`magicpose convert OFFICIAL.th OUT_FOLDER`: the official MagicPose checkpoint as a pipeline folder.

Components are converted and written one at a time from the memory-mapped file, so the largest one
(a UNet, 3.4 GB in float32) bounds the memory used, not the 9 GB of the whole file."""

from __future__ import annotations

import argparse

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert the official MagicPose checkpoint (model_state-*.th) into a model folder",
        description=__doc__,
    )
    parser.add_argument("checkpoint", help="official checkpoint: model_state-*.th (or .safetensors)")
    parser.add_argument("out", help="output folder (diffusers layout: unet/, appearance_control/, pose_control/, ...)")
    parser.add_argument("--config", help="official-format model YAML (default: the SD-1.5-size MagicPose model)")
    parser.add_argument("--sd15", help="an SD-1.5 folder whose tokenizer/ is saved too, for text prompts")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float32",
        help="weights' dtype on disk (float16 halves the 9 GB of the official file)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from magicpose.pipelines.official import convert_to_folder

    dtype = getattr(torch, DTYPES[args.dtype])
    out = convert_to_folder(
        args.checkpoint, args.out, config=args.config, sd15=args.sd15, dtype=dtype, overwrite=args.overwrite
    )
    print(f"wrote {out} (load it with MagicPosePipeline.from_pretrained or `magicpose animate --model {out}`)")
    return 0
