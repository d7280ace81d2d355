"""Smoke test of the full-size path on the CPU: official-layout checkpoint -> convert -> animate.

    python benchmarks/full_size_smoke.py [--size full|small] [--workdir DIR] [--keep]
                                         [--reference PHOTO] [--driving VIDEO] [--px 512]

Not part of `make test`: at full size it takes tens of minutes on 2 cores, about 9 GB of disk per copy
of the weights (the checkpoint, the converted folder) and up to about 13 GB of memory (float32 animate).

Stages, each in its own measured process:
  build checkpoint   random weights for every key and shape of ../shared/reference/magicdance/full_keys.json
                     (CLIP text encoder included) as model_state-random.th (bench_convert_memory.py)
  convert            magicpose convert
  animate float32    magicpose animate --model CONVERTED --reference PHOTO --driving VIDEO --out OUT.mp4
  animate bfloat16     --size PX --steps 2 --max-frames 2 --device cpu --dtype float32 / bfloat16
Printed: the peak resident memory and the wall time of each stage, as a table.

The reference is a real photo (scikit-image's astronaut, ../shared/reference/real_media/astronaut.png).
The driving video, unless --driving names one, is a real photo made into a clip: the man of
real_media/camera.png swaying sideways, H.264-encoded, so the driving path decodes a video and detects
a real person in it (real_media holds photos only; README there lists real videos, e.g. OpenCV's
vtest.avi, that pass with --driving but show people too small, and only from frame 166, for two frames).
`--size small` runs the same stages on the tiny reference model plus a small CLIP, in about a minute.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_convert_memory import gb, layout, magicpose_command, measure  # noqa: E402

REAL_MEDIA = REPO.parent / "shared" / "reference" / "real_media"


def make_driving_clip(photo: Path, path: Path, frames: int = 8, size: int = 512) -> None:
    """`photo` (a real person) swaying left and right, as an H.264 mp4 at 8 fps."""
    from PIL import Image

    from magicpose.media import read_image, write_video

    image = np.asarray(Image.fromarray(read_image(photo)).resize((size, size), Image.LANCZOS))
    shifts = [int(round(24 * np.sin(2 * np.pi * index / frames))) for index in range(frames)]
    write_video(path, [np.roll(image, shift, axis=1) for shift in shifts], fps=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", choices=["full", "small"], default="full", help="checkpoint layout (small: a quick check)"
    )
    parser.add_argument(
        "--workdir", help="folder for the checkpoint, model and videos (default: a temporary one in /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint, converted model and videos")
    parser.add_argument(
        "--reference", default=str(REAL_MEDIA / "astronaut.png"), help="photo of the person to animate"
    )
    parser.add_argument("--driving", help="driving video (default: a clip made from real_media/camera.png)")
    parser.add_argument("--px", type=int, default=512, help="animate --size (default 512)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--frames", type=int, default=2, help="animate --max-frames")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="one animate stage per dtype")
    args = parser.parse_args()

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="full_size_smoke_"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    rows = []

    def stage(label: str, command: list[str]) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {label}: {' '.join(command)}", flush=True)
        result = measure(command, log=logs / (label.replace(" ", "_") + ".log"))
        rows.append((label, result["peak_rss"], result["wall_s"]))
        print(f"    peak RSS {gb(result['peak_rss'])}, {result['wall_s']:.0f} s", flush=True)
        if result["rc"] != 0:
            raise SystemExit(f"{label} failed (exit status {result['rc']}); last output:\n{result['output'][-4000:]}")

    try:
        driving = Path(args.driving) if args.driving else workdir / "driving.mp4"
        if not args.driving:
            make_driving_clip(REAL_MEDIA / "camera.png", driving)
        checkpoint_dir = workdir / "checkpoint"
        stage(
            "build checkpoint",
            [
                sys.executable,
                str(Path(__file__).with_name("bench_convert_memory.py")),
                "--build-only",
                str(checkpoint_dir),
                "--size",
                args.size,
                "--formats",
                "th",
            ],
        )
        config = layout(args.size, checkpoint_dir).config  # the YAML the build wrote (small) or None (SD-1.5 size)
        model = workdir / "model"
        convert = [
            *magicpose_command(),
            "convert",
            str(checkpoint_dir / "model_state-random.th"),
            str(model),
            "--overwrite",
        ]
        stage("convert", convert + (["--config", str(config)] if config is not None else []))
        if not args.keep:
            (checkpoint_dir / "model_state-random.th").unlink()  # the disk it took is needed no more
        for dtype in args.dtypes:
            out = workdir / f"animate_{dtype}.mp4"
            stage(
                f"animate {dtype}",
                [
                    *magicpose_command(),
                    "animate",
                    "--model",
                    str(model),
                    "--reference",
                    args.reference,
                    "--driving",
                    str(driving),
                    "--out",
                    str(out),
                    "--size",
                    str(args.px),
                    "--steps",
                    str(args.steps),
                    "--max-frames",
                    str(args.frames),
                    "--device",
                    "cpu",
                    "--dtype",
                    dtype,
                ],
            )
            from magicpose.media import read_video

            frames, _ = read_video(out)
            if len(frames) != args.frames or frames[0].shape[:2] != (args.px, args.px):
                raise SystemExit(
                    f"{out}: {len(frames)} frames of {frames[0].shape if frames else None}, expected {args.frames}"
                )
    finally:
        if rows:
            print(f"\n{args.size} size, animate at {args.px} px, {args.steps} steps, {args.frames} frames, CPU")
            print(f"{'stage':<20} {'peak RSS':>10} {'wall':>9}")
            for label, peak, wall in rows:
                print(f"{label:<20} {gb(peak):>10} {wall:>8.0f}s")
        if args.keep or args.workdir:
            print(f"outputs in {workdir}" + ("" if args.keep else " (checkpoint removed)"))
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
