"""`magicpose animate`: a video of the reference person performing the driving motion."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from magicpose.errors import InputError

# magicpose.pipelines.schedulers.SCHEDULERS' names, here so that --help need not import diffusers
SCHEDULER_NAMES = ("ddim", "dpm++", "unipc", "euler-a")


def parse_size(text: str) -> tuple[int, int]:
    """"512" or "512x768" (width x height)."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512 or 512x768, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"size must look like 512 or 512x768, got {text!r}")
    return parts[0], parts[1]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("weights")
    group.add_argument("--model", help="a MagicPose model folder (from `magicpose convert` or training export)")
    group.add_argument("--official", help="the official checkpoint model_state-*.th, converted on the fly")
    group.add_argument("--official-config", help="official-format YAML for --official (default: SD-1.5 size)")
    group.add_argument("--sd15", help="SD-1.5 folder; with --official it supplies the tokenizer")
    group.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    group.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                       help="auto: float16 on a GPU, float32 on the CPU")  # fmt: skip
    group.add_argument("--motion-adapter", help="AnimateDiff v2 motion module (.ckpt or MotionAdapter folder): "
                       "temporal layers in the base UNet, long videos in overlapping 16-frame windows "
                       "(default: the model folder's own motion_adapter/, as the embedded model has)")  # fmt: skip
    group.add_argument("--no-motion-module", action="store_true",
                       help="leave the model folder's own motion module out: every frame denoised on its own")  # fmt: skip
    group.add_argument("--cpu-offload", action="store_true", help="keep models on the CPU until used (small GPUs)")
    group.add_argument("--scheduler", choices=SCHEDULER_NAMES, help="sampler over the model's noise schedule (default: "
                       "the model's own: dpm++ for the embedded model, the official ddim for --official)")  # fmt: skip


def register(subparsers) -> None:
    parser = subparsers.add_parser("animate", help="animate a photo with a driving video or pose sequence", description=__doc__)
    parser.add_argument("--reference", required=True, help="photo of the person to animate")
    parser.add_argument("--driving", required=True, help="driving video, image folder, image, or poses.json / OpenPose JSON folder")
    parser.add_argument("--out", required=True, help="output video (.mp4, H.264)")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="retarget the driving skeleton to the reference body (default: on)")  # fmt: skip
    parser.add_argument("--steps", type=int, help="denoising steps (default: the official 50; the embedded model's 20)")
    parser.add_argument("--guidance", type=float,
                        help="image guidance scale (default: the official 7; the embedded model's own)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="seed of the initial noise (official: 42)")
    parser.add_argument("--start-from-reference", action=argparse.BooleanOptionalAction,
                        help="start sampling from the noised reference instead of pure noise: keeps the "
                        "background's colours (default: the model's setting; on for the embedded model, off "
                        "for the official one)")  # fmt: skip
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    parser.add_argument("--size", type=parse_size, help="output size, 512 or WIDTHxHEIGHT (default: the model's)")
    parser.add_argument("--max-frames", type=int, help="animate only the first N driving frames")
    parser.add_argument("--frame-chunk", type=int, default=16, help="frames per network call (lower on small GPUs)")
    parser.add_argument("--grid", action="store_true", help="also write OUT_grid.mp4: reference | skeleton | result")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def check_writable(path: Path) -> None:
    parent = path.parent.resolve()
    if path.suffix.lower() != ".mp4":
        raise InputError(f"--out must end in .mp4, got {path}")
    if not parent.exists():
        raise InputError(f"the output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write to {parent}; choose a writable output path")


def sampling_settings(args: argparse.Namespace) -> tuple[int, float]:
    """--steps and --guidance, defaulting to the official 50 and 7, or to the embedded model's own
    settings when no weights were named."""
    from magicpose.models.default import DEFAULT_MODEL_GUIDANCE, DEFAULT_MODEL_STEPS

    embedded = not (args.model or args.official)
    steps = args.steps if args.steps is not None else (DEFAULT_MODEL_STEPS if embedded else 50)
    guidance = args.guidance if args.guidance is not None else (DEFAULT_MODEL_GUIDANCE if embedded else 7.0)
    return steps, guidance


def load_pipeline_from_args(args: argparse.Namespace):
    import torch

    from magicpose.pipelines.assembly import add_motion_module, load_pipeline, pipeline_from_official

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.dtype == "auto":
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    if args.model and args.official:
        raise InputError("pass either --model or --official, not both")
    motion_adapter = getattr(args, "motion_adapter", None)
    if args.official:
        pipeline = pipeline_from_official(args.official, config=args.official_config, sd15=args.sd15, dtype=dtype)
    else:
        from magicpose.models.default import default_model_folder

        pipeline = load_pipeline(args.model or default_model_folder(), dtype=dtype, motion_adapter=motion_adapter,
                                 motion_module=not getattr(args, "no_motion_module", False))  # fmt: skip
    if args.official and motion_adapter:
        pipeline = add_motion_module(pipeline, motion_adapter)
    if getattr(args, "scheduler", None):
        from magicpose.pipelines.schedulers import scheduler_named

        pipeline.scheduler = scheduler_named(args.scheduler, pipeline.scheduler.config)
    if args.cpu_offload and device.startswith("cuda"):
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)
    return pipeline


def run(args: argparse.Namespace) -> int:
    from magicpose.media import read_image, write_video
    from magicpose.pipelines.animation import animate, grid_frames, load_driving_poses

    out = Path(args.out)
    check_writable(out)
    args.steps, args.guidance = sampling_settings(args)
    if args.steps < 1 or args.frame_chunk < 1:
        raise InputError("--steps and --frame-chunk must be at least 1")
    reference = read_image(args.reference)
    driving = load_driving_poses(args.driving, fps=args.fps, max_frames=args.max_frames)
    pipeline = load_pipeline_from_args(args)
    animation = animate(
        pipeline, reference, driving, size=args.size, align=args.align, num_inference_steps=args.steps,
        guidance_scale=args.guidance, seed=args.seed, frame_chunk_size=args.frame_chunk, fps=args.fps,
        start_from_reference=args.start_from_reference,
    )  # fmt: skip
    write_video(out, animation.frames, animation.fps)
    print(f"wrote {out} ({len(animation.frames)} frames at {animation.fps:g} fps{', aligned' if animation.aligned else ''})")
    if args.grid:
        grid = out.with_name(out.stem + "_grid.mp4")
        write_video(grid, grid_frames(animation), animation.fps)
        print(f"wrote {grid}")
    return 0
