"""`magicpose animate`: a video of the reference person performing the driving motion."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from magicpose.errors import InputError
from magicpose.interfaces.options import (
    add_model_arguments,
    add_sampling_arguments,
    load_from_args,
    model_source,
    parse_size,
    sampling_overrides,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("animate", help="animate a photo with a driving video or pose sequence", description=__doc__)
    parser.add_argument("--reference", required=True, help="photo of the person to animate")
    parser.add_argument("--driving", required=True, help="driving video, image folder, image, or poses.json / OpenPose JSON folder")
    parser.add_argument("--out", required=True, help="output video (.mp4, H.264)")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="retarget the driving skeleton to the reference body (default: on)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="seed of the initial noise (official: 42)")
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    parser.add_argument("--size", type=parse_size, help="output size, 512 or WIDTHxHEIGHT (default: the model's)")
    parser.add_argument("--max-frames", type=int, help="animate only the first N driving frames")
    parser.add_argument("--grid", action="store_true", help="also write OUT_grid.mp4: reference | skeleton | result")
    add_sampling_arguments(parser)
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


def run(args: argparse.Namespace) -> int:
    from magicpose.media import read_image, write_video
    from magicpose.models.default import EMBEDDED_MODEL_NOTE
    from magicpose.pipelines.animation import animate, grid_frames, load_driving_poses

    out = Path(args.out)
    check_writable(out)
    sampling = sampling_overrides(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    reference = read_image(args.reference)
    driving = load_driving_poses(args.driving, fps=args.fps, max_frames=args.max_frames)
    pipeline = load_from_args(args)
    if model_source(args) is None:
        print(f"magicpose animate: note: {EMBEDDED_MODEL_NOTE}", file=sys.stderr)
    animation = animate(
        pipeline, reference, driving, size=args.size, align=args.align, seed=args.seed,
        frame_chunk_size=args.frame_chunk, fps=args.fps, **sampling,
    )
    write_video(out, animation.frames, animation.fps)
    print(f"wrote {out} ({len(animation.frames)} frames at {animation.fps:g} fps{', aligned' if animation.aligned else ''})")
    if args.grid:
        grid = out.with_name(out.stem + "_grid.mp4")
        write_video(grid, grid_frames(animation), animation.fps)
        print(f"wrote {grid}")
    return 0
