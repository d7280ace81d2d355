"""`magicpose demo`: the embedded default model animates a held-out puppet with a held-out dance.

    magicpose demo [--out outputs/demo.mp4] [--frames 32] [--device cuda] [--steps N]

The reference is a test-split puppet (an identity never seen in training); the motion is another
test-split puppet's dance, retargeted to the reference body. Writes the video and a grid video
(reference | driving skeleton | result | what the puppet world renders for that pose). The model
samples with its own recipe (the embedded one: 10 DPM-Solver++ steps at guidance 3 from the noised
reference); the sampling options override it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from magicpose.errors import InputError
from magicpose.interfaces.options import (
    add_model_arguments,
    add_sampling_arguments,
    load_from_args,
    sampling_overrides,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="animate a held-out puppet with the embedded default model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="outputs/demo.mp4", help="output video (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=32, help="frames to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--identity", type=int, default=0, help="test-split puppet to animate (default: %(default)s)")
    parser.add_argument(
        "--motion", type=int, default=1, help="test-split puppet whose dance drives it (default: %(default)s)"
    )
    add_sampling_arguments(parser)
    add_model_arguments(parser, official=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from magicpose.data.puppet.examples import retargeting_example
    from magicpose.media import write_image, write_video
    from magicpose.workflows.animation import animate, grid_frames

    started = time.perf_counter()
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must end in .mp4, got {out}")
    if args.frames < 1:
        raise InputError("--frames must be at least 1")
    if args.identity == args.motion:
        raise InputError("--identity and --motion must be different test puppets (the demo retargets a dance)")
    sampling = sampling_overrides(args)
    pipeline = load_from_args(args)
    size = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    example = retargeting_example(args.identity, args.motion, args.frames, size)
    animation = animate(
        pipeline,
        example.reference,
        example.driving,
        seed=args.seed,
        known_reference_pose=example.reference_pose,
        frame_chunk_size=args.frame_chunk,
        **sampling,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, animation.frames, animation.fps)
    rows = [np.concatenate([row, truth], axis=1) for row, truth in zip(grid_frames(animation), example.truth)]
    grid, still = out.with_name(out.stem + "_grid.mp4"), out.with_suffix(".png")
    write_video(grid, rows, animation.fps)
    write_image(still, np.concatenate(rows[::4], axis=0))  # every fourth grid row, for a quick look
    print(
        f"wrote {out}, {grid} and {still}: test puppet {args.identity} dancing test motion {args.motion}, "
        f"{len(animation.frames)} frames at {size}x{size}, {time.perf_counter() - started:.0f} s"
    )
    return 0
