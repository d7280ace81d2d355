"""Training speed per stage: s/step and samples/s at the puppet preset (default 128x128, batch 4).

    python benchmarks/bench_training.py [--size 128] [--batch 4] [--steps 5] [--threads 2]

Times the optimizer step (forward, backward, AdamW) on a pre-drawn batch, and separately the time to
draw one batch from the on-the-fly puppet world (the data loader's cost, paid in workers).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from magicpose.training.config import config_from_dict
from magicpose.training.data import collate, training_dataset
from magicpose.training.stages import build_stage, trainable_parameters

STAGES = ("vae", "base_unet", "controlnet", "appearance", "pose")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="puppet")
    parser.add_argument("--stages", nargs="*", default=list(STAGES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"preset {args.preset}, {args.size}x{args.size}, batch {args.batch}, "
        f"{args.threads} threads, {torch.__version__}"
    )
    print("s/step: median and best of --steps timed steps (the best is the figure for a quiet machine)")
    print(f"{'stage':<12} {'trainable':>10} {'s/step':>8} {'best':>7} {'samples/s':>10} {'data s/batch':>13}")
    for name in args.stages:
        config = config_from_dict(
            {
                "stage": name,
                "model": {"preset": args.preset},
                "data": {"size": args.size},
                "train": {"batch_size": args.batch},
                "output": {"dir": tempfile.mkdtemp()},
            }
        )
        stage = build_stage(config)
        parameters = trainable_parameters(stage)
        optimizer = torch.optim.AdamW(parameters, lr=1e-5)
        dataset = training_dataset(config)
        started = time.perf_counter()
        batch = collate([dataset[i] for i in range(args.batch)])
        data_seconds = time.perf_counter() - started
        generator = torch.Generator().manual_seed(0)
        times = []
        for step in range(args.steps + 2):
            started = time.perf_counter()
            loss = stage(batch, generator)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= 2:  # the first steps allocate
                times.append(time.perf_counter() - started)
        seconds = sorted(times)[len(times) // 2]
        count = sum(p.numel() for p in parameters) / 1e6
        print(
            f"{name:<12} {count:>9.2f}M {seconds:>8.3f} {min(times):>7.3f}"
            f" {args.batch / seconds:>10.1f} {data_seconds:>13.3f}"
        )


if __name__ == "__main__":
    main()
