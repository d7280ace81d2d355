"""Puppet world throughput: frames per second of rendering, of rendering with the pose condition, and of
training pairs through a DataLoader with two worker processes (the 2-core budget).

    .venv/bin/python benchmarks/bench_puppet.py [--frames 300] [--sizes 128 256]

The issue's target: at least 100 frames/s at 128x128 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader

from magicpose.data.pairs import PairDataset
from magicpose.data.puppet.videos import PuppetVideos
from magicpose.data.puppet.world import PuppetVideo, video_spec


def frames_per_second(function, count: int) -> tuple[float, float]:
    """(frames per wall-clock second, frames per CPU second of this process).

    The second figure is what one idle core delivers; the two differ when other work shares the machine.
    """
    function(0)  # warm-up: imports, caches
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(1, count + 1):
        function(index)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def render_rate(size: int, count: int, with_condition: bool) -> tuple[float, float]:
    videos = [PuppetVideo(video_spec("train", i, width=size, height=size, num_frames=count + 1)) for i in range(4)]

    def one(index: int):
        frame = videos[index % 4].frame(index)
        if with_condition:
            frame.condition()

    return frames_per_second(one, count)


def loader_rate(size: int, count: int, workers: int) -> float:
    """Frames per second delivered to training: each pair is two rendered frames plus a condition."""
    dataset = PairDataset(
        PuppetVideos("train", width=size, height=size),
        size=size,
        crop="random",
        face_mask_probability=0.2,
        hand_mask_probability=0.5,
        length=count // 2 + 64,
    )
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # workers started
    start, pairs = time.perf_counter(), 0
    for batch in iterator:
        pairs += len(batch["target"])
        if pairs >= count // 2:
            break
    return 2 * pairs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"CPU cores available: {len(os.sched_getaffinity(0))}; load average before: {os.getloadavg()[0]:.1f}")
    print(
        "| size | render only, 1 process | render + OpenPose condition, 1 process "
        "| training pairs, DataLoader with 2 workers |"
    )
    print("|---|---|---|---|")
    for size in args.sizes:
        render = render_rate(size, args.frames, with_condition=False)
        condition = render_rate(size, args.frames, with_condition=True)
        loader = loader_rate(size, args.frames, workers=2)
        print(
            f"| {size}x{size} | {render[0]:.0f} frames/s ({render[1]:.0f} per CPU-second) "
            f"| {condition[0]:.0f} frames/s ({condition[1]:.0f} per CPU-second) "
            f"| {loader:.0f} frames/s ({loader / 2:.0f} pairs/s) |"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f} (other processes on the machine lower the wall-clock rates)")


if __name__ == "__main__":
    main()
