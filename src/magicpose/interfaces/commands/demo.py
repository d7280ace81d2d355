"""`magicpose demo`: the embedded default model animates a held-out puppet with a held-out dance.

    magicpose demo [--out outputs/demo.mp4] [--frames 32] [--steps 20]

The reference is a test-split puppet (an identity never seen in training); the motion is another
test-split puppet's dance, retargeted to the reference body. Writes the video and a grid video
(reference | driving skeleton | result | what the puppet world renders for that pose).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from magicpose.errors import InputError
from magicpose.models.default import DEFAULT_MODEL_GUIDANCE, DEFAULT_MODEL_STEPS


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="animate a held-out puppet with the embedded default model",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="outputs/demo.mp4", help="output video (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=32, help="frames to generate (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=DEFAULT_MODEL_STEPS, help="denoising steps (default: %(default)s)")
    parser.add_argument("--guidance", type=float, default=DEFAULT_MODEL_GUIDANCE, help="image guidance scale (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--identity", type=int, default=0, help="test-split puppet to animate (default: %(default)s)")
    parser.add_argument("--motion", type=int, default=1, help="test-split puppet whose dance drives it (default: %(default)s)")
    parser.add_argument("--model", help="MagicPose model folder (default: the embedded default model)")
    parser.add_argument("--no-motion-module", action="store_true",
                        help="leave the model's own motion module out: every frame denoised on its own")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from magicpose.data.puppet.examples import retargeting_example
    from magicpose.media import write_image, write_video
    from magicpose.models.default import default_model_folder
    from magicpose.pipelines.animation import animate, grid_frames
    from magicpose.pipelines.assembly import load_pipeline

    started = time.perf_counter()
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must end in .mp4, got {out}")
    if args.frames < 1 or args.steps < 1:
        raise InputError("--frames and --steps must be at least 1")
    if args.identity == args.motion:
        raise InputError("--identity and --motion must be different test puppets (the demo retargets a dance)")
    pipeline = load_pipeline(args.model or default_model_folder(), motion_module=not args.no_motion_module)
    size = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    example = retargeting_example(args.identity, args.motion, args.frames, size)
    animation = animate(
        pipeline, example.reference, example.driving, num_inference_steps=args.steps, guidance_scale=args.guidance,
        seed=args.seed, known_reference_pose=example.reference_pose,
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, animation.frames, animation.fps)
    rows = [np.concatenate([row, truth], axis=1) for row, truth in zip(grid_frames(animation), example.truth)]
    grid, still = out.with_name(out.stem + "_grid.mp4"), out.with_suffix(".png")
    write_video(grid, rows, animation.fps)
    write_image(still, np.concatenate(rows[::4], axis=0))  # every fourth grid row, for a quick look
    print(f"wrote {out}, {grid} and {still}: test puppet {args.identity} dancing test motion {args.motion}, "
          f"{len(animation.frames)} frames at {size}x{size}, {time.perf_counter() - started:.0f} s")  # fmt: skip
    return 0
