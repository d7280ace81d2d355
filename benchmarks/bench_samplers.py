"""Samplers on the embedded puppet model: how DDIM, DPM-Solver++ and UniPC at few steps converge to DDIM at 50
steps, their held-out puppet scores and their speed, all from the same initial noise.

    nice .venv/bin/python benchmarks/bench_samplers.py [--videos 2] [--frames 8] [--size 128] [--steps 5 10 15 25]
    .venv/bin/python benchmarks/bench_samplers.py --quick      # the CI preset: 1 frame, DPM-Solver++ only

Every setting generates the same test-split puppet clips as `magicpose evaluate --puppet` (reference frame 0,
driving poses every third frame after it) with the model's own recipe (start from the noised reference,
its guidance scale) and the same seeded noise; only the sampler, the steps or the guidance interval
change. Columns: PSNR of each output against DDIM at 50 steps (whole frames, pooled over all frames:
infinite when equal), the puppet benchmark's masked PSNR and person-mask IoU against the ground truth,
and seconds per frame spent in the networks (wall and CPU time of the UNet, appearance model and
ControlNet calls; the VAE and the puppet renderer are left out). Wall time depends on what else runs on
the machine (the load average is printed beside it); CPU time much less.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

import magicpose
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.evaluation.puppet_benchmark import PuppetEvaluation
from magicpose.pipelines.schedulers import scheduler_named
from magicpose.poses.types import PoseSequence

REFERENCE = ("ddim", 50)
SAMPLERS = ("ddim", "dpm++", "unipc")
NAMES = {"ddim": "DDIM", "dpm++": "DPM-Solver++(2M)", "unipc": "UniPC"}


@dataclass(frozen=True)
class Setting:
    sampler: str
    steps: int
    guidance_interval: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        interval = "" if self.guidance_interval is None else " guided in ({:g}, {:g}]".format(*self.guidance_interval)
        return f"{self.sampler}@{self.steps}{interval}"


@dataclass
class Row:
    setting: Setting
    psnr_to_reference: float
    masked_psnr: float
    mask_iou: float
    seconds_per_frame: float
    cpu_seconds_per_frame: float
    network_calls: int


def settings(steps: list[int], samplers: tuple[str, ...], recipe: tuple[str, int], intervals) -> list[Setting]:
    """DDIM at 50 first (the reference), then every sampler at every step count, then the model's own
    sampler and steps with each guidance interval."""
    chosen = [Setting(*REFERENCE)]
    chosen += [Setting(sampler, count) for sampler in samplers for count in steps if (sampler, count) != REFERENCE]
    chosen += [Setting(*recipe, guidance_interval=tuple(interval)) for interval in intervals]
    return chosen


def clips(videos: int, frames: int, size: int, stride: int = 3):
    """(reference image, driving poses, ground-truth `PuppetFrame`s, empty scene) of the first `videos`
    test puppets: `magicpose evaluate --puppet`'s self-reenactment clips."""
    for index in range(videos):
        video = PuppetVideo(video_spec("test", index, width=size, height=size, num_frames=1 + frames * stride))
        targets = [video.frame(1 + k * stride) for k in range(frames)]
        yield video.frame(0).image, PoseSequence([t.pose for t in targets], size, size), targets, video.background


class NetworkClock:
    """Wall time, CPU time of this process (all its threads) and call count of the denoising networks'
    forward passes, through forward hooks. CPU time is what the networks cost whatever else runs."""

    def __init__(self, networks):
        self.seconds, self.cpu_seconds, self.calls, self._start = 0.0, 0.0, 0, None
        self._handles = []
        for network in networks:
            self._handles.append(network.register_forward_pre_hook(self._enter))
            self._handles.append(network.register_forward_hook(self._leave))

    def _enter(self, module, args):
        self._start = time.perf_counter(), time.process_time()

    def _leave(self, module, args, output):
        self.seconds += time.perf_counter() - self._start[0]
        self.cpu_seconds += time.process_time() - self._start[1]
        self.calls += 1

    def close(self):
        for handle in self._handles:
            handle.remove()


def psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of uint8 frames against uint8 reference frames, the squared error pooled over all of them."""
    error = np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255.0**2 / error)


def run(pipeline, chosen: list[Setting], *, videos: int, frames: int, size: int, seed: int = 42) -> list[Row]:
    """Generate every clip under every setting (the first is the reference) and score it."""
    own_scheduler = pipeline.scheduler
    data = list(clips(videos, frames, size))
    clock = NetworkClock([pipeline.unet, pipeline.appearance_control, pipeline.pose_control])
    rows, reference_frames = [], None
    try:
        for setting in chosen:
            pipeline.scheduler = scheduler_named(setting.sampler, own_scheduler.config)
            evaluation, generated = PuppetEvaluation(), []
            clock.seconds, clock.cpu_seconds, clock.calls = 0.0, 0.0, 0
            started = time.perf_counter()
            for image, poses, targets, background in data:
                output = pipeline(
                    image,
                    poses,
                    num_inference_steps=setting.steps,
                    guidance_interval=setting.guidance_interval,
                    generator=torch.Generator().manual_seed(seed),  # the same noise for every setting
                    height=size,
                    width=size,
                    output_type="np",
                )
                frames_uint8 = [(frame * 255).round().astype(np.uint8) for frame in output.frames[0]]  # one video
                evaluation.add_video(frames_uint8, targets, background)
                generated.extend(frames_uint8)
            generated = np.stack(generated)
            reference_frames = generated if reference_frames is None else reference_frames
            scores = evaluation.mean()
            rows.append(
                Row(
                    setting,
                    psnr(generated, reference_frames),
                    scores["masked_psnr"],
                    scores["mask_iou"],
                    clock.seconds / len(generated),
                    clock.cpu_seconds / len(generated),
                    clock.calls,
                )
            )
            print(f"  {setting.label}: {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        clock.close()
        pipeline.scheduler = own_scheduler
    return rows


def table(rows: list[Row], recipe: tuple[str, int]) -> str:
    lines = [
        "| sampler | steps | guided timesteps | PSNR to DDIM@50 ↑ | masked PSNR ↑ | mask IoU ↑ "
        "| network s/frame | network CPU-s/frame | network calls |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        setting = row.setting
        guided = "all" if setting.guidance_interval is None else "({:g}, {:g}]".format(*setting.guidance_interval)
        name = NAMES.get(setting.sampler, setting.sampler)
        if (setting.sampler, setting.steps) == REFERENCE and setting.guidance_interval is None:
            name += " (reference)"
        elif (setting.sampler, setting.steps) == recipe and setting.guidance_interval is None:
            name += " (the model's recipe)"
        lines.append(
            f"| {name} | {setting.steps} | {guided} | {row.psnr_to_reference:.2f} | {row.masked_psnr:.2f} "
            f"| {row.mask_iou:.3f} | {row.seconds_per_frame:.2f} | {row.cpu_seconds_per_frame:.2f} "
            f"| {row.network_calls} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2, help="test puppets (default 2)")
    parser.add_argument("--frames", type=int, default=8, help="frames per puppet (default 8)")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128, as trained)")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 15, 25])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument(
        "--guidance-intervals",
        type=float,
        nargs="+",
        default=[300, 1000, 500, 1000],
        metavar="LOW HIGH",
        help="pairs of training timesteps: the model's own sampler guided only in (LOW, HIGH]",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared CPU, a second thread mostly waits for a busy core)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 puppet, 1 frame: DDIM@50, DPM-Solver++ at 5 and 25, one interval"
    )
    args = parser.parse_args(argv)
    if len(args.guidance_intervals) % 2:
        parser.error("--guidance-intervals takes pairs LOW HIGH")
    if args.quick:
        args.videos, args.frames, args.steps, args.samplers = 1, 1, [5, 25], ["dpm++"]
        args.guidance_intervals = [500, 1000]
    torch.set_num_threads(args.threads)
    intervals = list(zip(args.guidance_intervals[::2], args.guidance_intervals[1::2]))

    pipeline = magicpose.load()  # the embedded model, on the CPU in float32 here
    pipeline.set_progress_bar_config(disable=True)
    own = [
        name for name in SAMPLERS if type(scheduler_named(name, pipeline.scheduler.config)) is type(pipeline.scheduler)
    ]
    recipe = (own[0] if own else args.samplers[0], pipeline.recipe()["num_inference_steps"])
    chosen = settings(args.steps, tuple(args.samplers), recipe, intervals)
    print(
        f"{len(chosen)} settings x {args.videos} test puppets x {args.frames} frames at {args.size}x{args.size}; "
        f"torch threads {torch.get_num_threads()}, CPU cores {len(os.sched_getaffinity(0))}, "
        f"load average before {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    start = time.perf_counter()
    rows = run(pipeline, chosen, videos=args.videos, frames=args.frames, size=args.size)
    print(table(rows, recipe))
    print(
        f"{time.perf_counter() - start:.0f} s in all; load average after {os.getloadavg()[0]:.1f} "
        "(other work on the machine slows the network times)"
    )
    return rows


if __name__ == "__main__":
    main()
