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
import contextlib
import time

from magicpose.errors import InputError
from magicpose.files import atomic_path
from magicpose.interfaces.options import (
    add_model_arguments,
    add_sampling_arguments,
    check_output,
    load_from_args,
    sampling_overrides,
    seed,
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
    parser.add_argument("--seed", type=seed, default=42)
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
    from magicpose.data.puppet.world import SPLITS
    from magicpose.media import write_image, write_video
    from magicpose.workflows.animation import animate, grid_frames

    started = time.perf_counter()
    out = check_output(args.out, "--out", (".mp4",))
    grid, still = out.with_name(out.stem + "_grid.mp4"), out.with_suffix(".png")
    if args.frames < 1:
        raise InputError("--frames must be at least 1")
    puppets = len(SPLITS["test"])
    for option, value in (("--identity", args.identity), ("--motion", args.motion)):
        if not 0 <= value < puppets:
            raise InputError(f"{option} must be from 0 to {puppets - 1} (a test-split puppet), got {value}")
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
    rows = [np.concatenate([row, truth], axis=1) for row, truth in zip(grid_frames(animation), example.truth)]
    with contextlib.ExitStack() as outputs:  # the three appear together, or none does
        video, grid_video, still_image = (outputs.enter_context(atomic_path(path)) for path in (out, grid, still))
        write_video(video, animation.frames, animation.fps)
        write_video(grid_video, rows, animation.fps)
        write_image(still_image, np.concatenate(rows[::4], axis=0))  # every fourth grid row, for a quick look
    print(
        f"wrote {out}, {grid} and {still}: test puppet {args.identity} dancing test motion {args.motion}, "
        f"{len(animation.frames)} frames at {size}x{size}, {time.perf_counter() - started:.0f} s"
    )
    return 0
