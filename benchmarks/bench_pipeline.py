"""Our batched sampling against the official per-frame sampling: same weights, seed and output.

    python benchmarks/bench_pipeline.py [--frames 16] [--steps 10] [--preset tiny] [--threads 2]

The official order runs, per frame and step, the appearance branch, the conditional branch and an
unconditional branch that also runs the Pose ControlNet. Ours runs the appearance branch once per step
for all frames, batches frames, and skips the ControlNet in the unconditional branch. Prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/official_sampling.py

from tests.official_sampling import official_style_denoise  # noqa: E402

from magicpose.models.presets import build_components  # noqa: E402
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "sd15"])
    parser.add_argument("--latent", type=int, default=16, help="latent side (image side = latent x VAE factor)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=16, help="frames per network call in our pipeline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipeline = MagicPosePipeline(**build_components(args.preset, zero_init_controlnet=False))
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(42)
    context = pipeline.text_context()
    pose_side = args.latent * pipeline.pose_scale_factor
    noise = torch.randn(1, 4, args.latent, args.latent, generator=generator)
    reference = torch.randn(1, 4, args.latent, args.latent, generator=generator)
    poses = torch.rand(args.frames, 3, pose_side, pose_side, generator=generator)
    common = dict(num_inference_steps=args.steps, guidance_scale=7.0)

    pipeline.denoise(noise, reference, poses[:2], context, num_inference_steps=1)  # warm-up
    start = time.perf_counter()
    ours = pipeline.denoise(noise, reference, poses, context, frame_chunk_size=args.chunk, **common)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    official = official_style_denoise(pipeline, noise, reference, poses, context, **common)
    official_seconds = time.perf_counter() - start

    difference = float((ours - official).abs().max() / official.abs().max())
    print(
        f"preset {args.preset}, {args.frames} frames, latent {args.latent}x{args.latent}, {args.steps} steps, "
        f"guidance 7, {args.threads} threads"
    )
    print(f"{'sampler':<34}{'seconds':>10}{'s/frame':>10}{'speed-up':>10}")
    print(
        f"{'official order (per frame)':<34}{official_seconds:>10.2f}"
        f"{official_seconds / args.frames:>10.3f}{1.0:>10.2f}"
    )
    print(
        f"{'ours (batched, shared reference)':<34}{ours_seconds:>10.2f}{ours_seconds / args.frames:>10.3f}"
        f"{official_seconds / ours_seconds:>10.2f}"
    )
    print(f"max relative difference of the final latents: {difference:.2e}")


if __name__ == "__main__":
    main()
