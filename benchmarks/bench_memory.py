"""Predicted GPU memory of a generation at SD-1.5 size, per stage, and the smallest card it fits.

    .venv/bin/python benchmarks/bench_memory.py [--sizes 512x512 512x768] [--frames 16 64] [--chunks 16 8 4]

Weights and activations are counted on the meta device (`memory_model.py`: every tensor from its
creation to its release, attention as a fused kernel), in float16, so it runs on the CPU in under two
minutes. Per stage: encode (VAE encoder, the reference), appearance (one appearance pass and its bank),
denoise (one guided step, a frame chunk at a time) and decode (the VAE, `offload.decode_batch` frames
at a time); "before" is the decode of a whole frame chunk, the peak before issue 30. Two ways to run:
resident (every network on the GPU) and the offload plan (`--cpu-offload`: each network on the GPU
for its phase only). A card fits when the peak plus a 0.5 GiB margin (CUDA context, cuBLAS workspace,
fragmentation) is within its memory; "4 GiB" is a per-process cap such as
`torch.cuda.set_per_process_memory_fraction` sets (no margin). Without a motion module more frames
only add their latents: the activations are a frame chunk's.
"""

from __future__ import annotations

import argparse
import time

from memory_model import GIB, StageCounter

CARDS = (8, 12, 24)  # GiB
MARGIN = 0.5 * GIB
CAP = 4  # GiB, a budget rather than a card


def fits(peak: int) -> str:
    """The smallest card (or the 4 GiB cap) the peak fits."""
    if peak <= CAP * GIB:
        return f"{CAP} GiB cap"
    for card in CARDS:
        if peak + MARGIN <= card * GIB:
            return f"{card} GB"
    return "none"


def size(text: str) -> tuple[int, int]:
    width, height = (int(side) for side in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=size, default=[(512, 512), (768, 512)], help="WIDTHxHEIGHT")
    parser.add_argument("--frames", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--chunks", nargs="+", type=int, default=[16, 8, 4])
    args = parser.parse_args()
    started = time.perf_counter()
    counter = StageCounter()
    weights = ", ".join(f"{name} {count / GIB:.2f}" for name, count in counter.weights.items())
    print(f"SD-1.5 size, float16; weights (GiB): {weights}")
    print()
    header = ("size", "frames", "chunk", "plan", "encode", "appearance", "denoise", "decode", "peak", "fits", "before")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for height, width in args.sizes:
        for frames in args.frames:
            for chunk in args.chunks:
                needs = counter.needs(height, width, frames, chunk)
                for plan, stages in (("resident", needs.resident()), ("offload", needs.offload())):
                    before = stages.pop("decode (before)")
                    peak = max(stages.values())
                    was = max(peak, before)
                    cells = [f"{width}x{height}", str(frames), str(chunk), plan]
                    cells += [f"{stages[stage] / GIB:.2f}" for stage in ("encode", "appearance", "denoise", "decode")]
                    cells += [f"**{peak / GIB:.2f}**", fits(peak), f"{was / GIB:.2f} ({fits(was)})"]
                    print("| " + " | ".join(cells) + " |")
    print()
    print(f"GiB per stage, weights included; counted in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
