"""SD-1.5-size MagicPose on a GPU: seconds per frame, peak memory, and the share of the bf16 matmul peak.

    python benchmarks/bench_pipeline_gpu.py [--frames 16] [--size 512] [--steps 4] [--chunk 16]

Random weights (no download needed for timing). FLOPs of the networks in one denoising step are counted
with `torch.utils.flop_counter.FlopCounterMode`; the peak is measured on this GPU with a large bf16
matmul. Targets (issue 6): 16 frames at 512x512 within 12 GB; at least 50% of the measured peak.
Runs on the CPU too (`--device cpu --preset tiny`) to check the script itself.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from magicpose.models.presets import build_components
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, size: int = 8192, repeats: int = 20) -> float:
    """Achieved FLOP/s of a large square matmul: the practical peak the UNets are compared with."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sd15", choices=["sd15", "tiny"])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4, help="timed denoising steps (the loop is the same for 50)")
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--matmul-size", type=int, default=8192)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    pipeline = MagicPosePipeline(**build_components(args.preset, zero_init_controlnet=False)).to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    latent = args.size // pipeline.vae_scale_factor
    pose_side = latent * pipeline.pose_scale_factor
    context = pipeline.text_context().to(device, dtype)
    noise = torch.randn(1, 4, latent, latent, device=device, dtype=dtype)
    reference = torch.randn(1, 4, latent, latent, device=device, dtype=dtype)
    poses = torch.rand(args.frames, 3, pose_side, pose_side, device=device, dtype=dtype)

    with FlopCounterMode(display=False) as counter:
        pipeline.denoise(noise, reference, poses, context, num_inference_steps=1, frame_chunk_size=args.chunk)
    flops_per_step = counter.get_total_flops()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    latents = pipeline.denoise(
        noise, reference, poses, context, num_inference_steps=args.steps, frame_chunk_size=args.chunk
    )
    synchronize(device)
    denoise_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        pipeline.decode_latents(latents, args.chunk)
    synchronize(device)
    decode_seconds = time.perf_counter() - start
    peak_memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")

    achieved = flops_per_step * args.steps / denoise_seconds
    peak = matmul_peak_flops(device, dtype, args.matmul_size)
    per_frame_50 = (denoise_seconds / args.steps * 50 + decode_seconds) / args.frames
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{name}, preset {args.preset}, {args.frames} frames at {args.size}x{args.size}, "
        f"{args.dtype}, chunk {args.chunk}"
    )
    print(f"{'measure':<44}{'value':>14}")
    rows = [
        ("UNet FLOPs per denoising step (all frames)", f"{flops_per_step / 1e12:.2f} TFLOP"),
        ("seconds per denoising step", f"{denoise_seconds / args.steps:.3f}"),
        ("seconds per frame at 50 steps (+ VAE)", f"{per_frame_50:.3f}"),
        ("peak GPU memory", f"{peak_memory:.2f} GiB"),
        ("achieved", f"{achieved / 1e12:.1f} TFLOP/s"),
        (f"measured {args.dtype} matmul peak", f"{peak / 1e12:.1f} TFLOP/s"),
        ("share of the measured peak", f"{100 * achieved / peak:.1f} %"),
    ]
    for label, value in rows:
        print(f"{label:<44}{value:>14}")


if __name__ == "__main__":
    main()
