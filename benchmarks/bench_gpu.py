"""One GPU script: speed, memory, fit, precision, host syncs and kernels of SD-1.5-size MagicPose.

    python benchmarks/bench_gpu.py [--budget-s 420] [--out bench_gpu.md]
    python benchmarks/bench_gpu.py --preset tiny --device cpu --sizes 32x32 --frames 4 --chunks 4 2 --steps 1

Random weights built directly on the device (no download, no fp32 copy on the host). Within the time
budget it measures, in this order (the matrix stops at 65 % of the budget; what was skipped is listed):

1. the matrix of `bench_memory.py` (sizes x frames x resident/offload plan x frame chunk): seconds per
   denoising step (appearance pass included), seconds per frame at 50 and 10 steps (encode + steps +
   decode), the denoise and decode peaks apart, reserved memory, weights moved by the offload plan;
2. the fit of the first configuration under 8 and 12 GB caps (`set_per_process_memory_fraction`);
3. float16 / bfloat16 / channels_last / cudnn.benchmark / TF32, seconds per step of the first configuration;
4. host synchronisations in one step (`torch.cuda.set_sync_debug_mode` and a dispatch-mode count);
5. the top kernels of one step, and whether a fused (flash / memory-efficient) attention ran.

It prints, and writes to `--out`, markdown tables. CI runs it on the CPU with the tiny preset.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import torch
from diffusers.utils import logging as diffusers_logging

from host_syncs import count_host_syncs
from magicpose.models.presets import build_components
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline

GIB = 2**30
CAPS = (8, 12)  # GiB
MATRIX_RESERVE = 0.35  # share of the time budget the matrix leaves to the caps and the variants
FUSED_ATTENTION = ("flash", "fmha", "efficient_attention", "cudnn_attention", "attention_forward")


class Clock:
    """Wall time with the device drained, and the time left of the budget."""

    def __init__(self, device: torch.device, budget_s: float):
        self.device, self.deadline = device, time.perf_counter() + budget_s

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn):
        self.sync()
        start = time.perf_counter()
        result = fn()
        self.sync()
        return time.perf_counter() - start, result

    @property
    def left(self) -> float:
        return self.deadline - time.perf_counter()


class Memory:
    """Peak allocated and reserved bytes of a block on a GPU (NaN on the CPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> tuple[float, float]:
        if not self.cuda:
            return float("nan"), float("nan")
        return torch.cuda.max_memory_allocated(self.device) / GIB, torch.cuda.max_memory_reserved(self.device) / GIB


def build_pipeline(preset: str, device: torch.device, dtype: torch.dtype) -> MagicPosePipeline:
    # Built on the device itself: an SD-size fp32 copy on the host would take minutes and 8 GiB.
    components = build_components(preset, device=device, zero_init_controlnet=False)
    for name in ("unet", "appearance_control", "pose_control", "vae"):
        components[name] = components[name].to(dtype)
    pipeline = MagicPosePipeline(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def set_plan(pipeline: MagicPosePipeline, plan: str, device: torch.device) -> None:
    if plan == "offload":
        pipeline.enable_offload_plan(device)
    else:
        pipeline.offload_plan = None
        pipeline.to(device)


def inputs(pipeline: MagicPosePipeline, height: int, width: int, frames: int, device: torch.device):
    generator = torch.Generator(device).manual_seed(0)
    dtype = pipeline.unet.dtype
    h, w = height // pipeline.vae_scale_factor, width // pipeline.vae_scale_factor
    side = (h * pipeline.pose_scale_factor, w * pipeline.pose_scale_factor)
    return {
        "image": torch.rand(1, 3, height, width, device=device, generator=generator, dtype=dtype) * 2 - 1,
        "noise": torch.randn(1, 4, h, w, device=device, generator=generator, dtype=dtype),
        "poses": torch.rand(frames, 3, *side, device=device, generator=generator, dtype=dtype),
    }


def generate(pipeline, clock: Clock, memory: Memory, data: dict, chunk: int, steps: int) -> dict:
    """One generation in its three parts, each timed and with its own peak."""
    context = pipeline.text_context().to(data["noise"].device, pipeline.unet.dtype)
    encode_s, reference = clock.time(lambda: pipeline.encode_reference(data["image"]))
    memory.reset()
    denoise_s, latents = clock.time(
        lambda: pipeline.denoise(
            data["noise"], reference, data["poses"], context, num_inference_steps=steps, frame_chunk_size=chunk
        )
    )
    denoise_peak, denoise_reserved = memory.peak()
    memory.reset()
    with torch.no_grad():
        decode_s, _ = clock.time(lambda: pipeline.decode_latents(latents, chunk))
    decode_peak, decode_reserved = memory.peak()
    return dict(
        encode_s=encode_s,
        step_s=denoise_s / steps,
        decode_s=decode_s,
        denoise_peak=denoise_peak,
        decode_peak=decode_peak,
        reserved=max(denoise_reserved, decode_reserved),
    )


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def matrix(pipeline, args, clock, memory, device) -> tuple[str, list[str]]:
    rows, skipped = [], []
    configs = list(itertools.product(args.sizes, args.frames, args.chunks, ("resident", "offload")))
    for (height, width), frames, chunk, plan in configs:
        name = f"{width}x{height} {frames} frames chunk {chunk} {plan}"
        if clock.left <= MATRIX_RESERVE * args.budget_s:  # the rest of the budget is for the other sections
            skipped.append(name)
            continue
        set_plan(pipeline, plan, device)
        moved = pipeline.offload_plan.moved_bytes if pipeline.offload_plan else 0
        try:
            result = generate(
                pipeline, clock, memory, inputs(pipeline, height, width, frames, device), chunk, args.steps
            )
        except torch.OutOfMemoryError:
            rows.append([f"{width}x{height}", str(frames), str(chunk), plan] + ["OOM"] * 8)
            torch.cuda.empty_cache()
            continue
        moved = (pipeline.offload_plan.moved_bytes if pipeline.offload_plan else 0) - moved
        per_frame = {n: (result["encode_s"] + n * result["step_s"] + result["decode_s"]) / frames for n in (50, 10)}
        rows.append(
            [f"{width}x{height}", str(frames), str(chunk), plan, fmt(result["step_s"], 3)]
            + [fmt(per_frame[50], 3), fmt(per_frame[10], 3), fmt(result["decode_s"], 2)]
            + [fmt(result["denoise_peak"]), fmt(result["decode_peak"]), fmt(result["reserved"]), fmt(moved / GIB)]
        )
    header = ["size", "frames", "chunk", "plan", "s/step", "s/frame @50", "s/frame @10", "decode s"]
    header += ["denoise peak GiB", "decode peak GiB", "reserved GiB", "weights moved GiB"]
    return table(header, rows), skipped


def fits(pipeline, args, clock, memory, device) -> str:
    if device.type != "cuda":
        return "memory caps: n/a on the CPU"
    (height, width), frames, chunk = args.sizes[0], args.frames[0], args.chunks[0]
    total = torch.cuda.get_device_properties(device).total_memory
    rows = []
    for cap, plan in itertools.product(CAPS, ("resident", "offload")):
        if clock.left <= 0 or cap * GIB >= total:
            continue
        set_plan(pipeline, plan, device)
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(cap * GIB / total, device)
        try:
            generate(pipeline, clock, memory, inputs(pipeline, height, width, frames, device), chunk, 1)
            verdict = "fits"
        except torch.OutOfMemoryError:
            verdict = "out of memory"
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
        rows.append([f"{cap} GiB", plan, verdict])
    return table([f"cap ({width}x{height}, {frames} frames, chunk {chunk})", "plan", "result"], rows)


def variants(pipeline, args, clock, memory, device) -> str:
    (height, width), frames, chunk = args.sizes[0], args.frames[0], args.chunks[0]
    set_plan(pipeline, "resident", device)
    networks = [pipeline.unet, pipeline.appearance_control, pipeline.pose_control, pipeline.vae]
    half = [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.float32, torch.bfloat16]
    options = [(dtype, False, False, False) for dtype in half]
    options += [(half[0], True, False, False)]
    if device.type == "cuda":
        options += [(half[0], False, True, False), (half[0], True, True, False), (torch.float32, False, False, True)]
    rows = []
    for dtype, channels_last, benchmark, tf32 in options:
        if clock.left <= 0:
            break
        for network in networks:
            network.to(dtype=dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        try:
            data = inputs(pipeline, height, width, frames, device)
            if device.type == "cuda":
                generate(pipeline, clock, memory, data, chunk, 1)  # warm-up (cudnn.benchmark's search)
            result = generate(pipeline, clock, memory, data, chunk, args.steps)
            cells = [fmt(result["step_s"], 3), fmt(result["denoise_peak"])]
        except (torch.OutOfMemoryError, RuntimeError) as error:  # a dtype without CPU kernels
            cells = [f"failed: {str(error).splitlines()[0][:60]}", ""]
        label = str(dtype).split(".")[-1] + " channels_last" * channels_last
        label += " cudnn.benchmark" * benchmark + " tf32" * tf32
        rows.append([label] + cells)
    for network in networks:
        network.to(dtype=half[0] if device.type == "cuda" else torch.float32, memory_format=torch.contiguous_format)
    torch.backends.cudnn.benchmark = False
    return table([f"variant ({width}x{height}, {frames} frames, chunk {chunk})", "s/step", "denoise peak GiB"], rows)


def one_step(pipeline, args, device):
    (height, width), frames, chunk = args.sizes[0], args.frames[0], args.chunks[0]
    set_plan(pipeline, "resident", device)
    data = inputs(pipeline, height, width, frames, device)
    context = pipeline.text_context().to(device, pipeline.unet.dtype)
    reference = pipeline.encode_reference(data["image"])
    return lambda steps: pipeline.denoise(
        data["noise"], reference, data["poses"], context, num_inference_steps=steps, frame_chunk_size=chunk
    )


def host_syncs(pipeline, args, device) -> str:
    run = one_step(pipeline, args, device)
    counted = {steps: count_host_syncs(lambda n=steps: run(n)) for steps in (1, 2)}
    per_step = counted[2].count - counted[1].count
    lines = [f"host syncs (dispatch count): {counted[1].count} for one step, {per_step} per further step"]
    lines += [f"- {count} x {where}" for where, count in counted[2].where.most_common(8)]
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run(2)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        lines.append(f"host syncs (torch.cuda.set_sync_debug_mode): {len(caught)} in two steps")
    return "\n".join(lines)


def kernels(pipeline, args, device) -> str:
    run = one_step(pipeline, args, device)
    run(1)  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile, torch.no_grad():
        run(1)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(profile.key_averages(), key=lambda event: getattr(event, key), reverse=True)
    total = sum(getattr(event, key) for event in events) or 1
    rows = [[event.key[:90], f"{100 * getattr(event, key) / total:.1f} %", str(event.count)] for event in events[:12]]
    fused = sorted({event.key[:60] for event in events if any(word in event.key.lower() for word in FUSED_ATTENTION)})
    note = f"fused attention kernels: {', '.join(fused) if fused else 'none (attention ran unfused)'}"
    return table(["top ops/kernels of one step", "share", "calls"], rows) + "\n\n" + note


def size(text: str) -> tuple[int, int]:
    width, height = (int(side) for side in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sd15", choices=["sd15", "tiny"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--sizes", nargs="+", type=size, default=[(768, 512), (512, 512)], help="WIDTHxHEIGHT")
    parser.add_argument("--frames", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--chunks", nargs="+", type=int, default=[16, 8])
    parser.add_argument("--steps", type=int, default=2, help="timed denoising steps per configuration")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop measuring the matrix after this")
    parser.add_argument("--out", type=Path, default=Path("bench_gpu.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" per cast
    started = time.perf_counter()
    clock, memory = Clock(device, args.budget_s), Memory(device)
    pipeline = build_pipeline(args.preset, device, getattr(torch, args.dtype))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    sections = [f"# bench_gpu: {name}, preset {args.preset}, {args.dtype}, torch {torch.__version__}"]
    matrix_table, skipped = matrix(pipeline, args, clock, memory, device)
    sections.append(matrix_table)
    if skipped:
        sections.append("skipped (time budget): " + "; ".join(skipped))
    sections.append(fits(pipeline, args, clock, memory, device))
    sections.append(variants(pipeline, args, clock, memory, device))
    sections.append(host_syncs(pipeline, args, device))
    sections.append(kernels(pipeline, args, device))
    sections.append(f"measured in {time.perf_counter() - started:.0f} s")
    report = "\n\n".join(sections) + "\n"
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
