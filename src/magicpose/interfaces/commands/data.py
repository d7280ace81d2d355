"""`magicpose data`: build dataset folders (from the puppet world or real videos) and preview the world.

magicpose data prepare puppet OUT --split train --videos 200 --frames 48 --size 128
magicpose data prepare videos SOURCE_FOLDER OUT --max-side 512
magicpose data preview --out docs/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magicpose.errors import InputError
from magicpose.interfaces.options import add_strict_argument, check_output


def _size(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16 pixels, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build dataset folders and preview the puppet world",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    prepare = actions.add_parser("prepare", help="build a dataset folder (one folder per video)")
    sources = prepare.add_subparsers(dest="source", metavar="SOURCE", required=True)
    puppet = sources.add_parser("puppet", help="render puppet videos with full ground truth")
    puppet.add_argument("out", help="dataset folder to write into (existing videos are kept)")
    puppet.add_argument("--split", choices=("train", "val", "test"), default="train")
    puppet.add_argument("--videos", type=_positive, default=100, help="number of videos (default 100)")
    puppet.add_argument("--start", type=int, default=0, help="index of the first video in the split")
    puppet.add_argument("--frames", type=_positive, default=48, help="frames per video (default 48)")
    puppet.add_argument("--size", type=_size, default=128, help="square frame size in pixels (default 128)")
    puppet.add_argument("--fps", type=float, default=15.0)
    puppet.add_argument(
        "--framing",
        choices=("full", "upper", "mixed"),
        default="mixed",
        help="full body, upper body, or alternate (default)",
    )
    puppet.add_argument(
        "--motion",
        choices=("dance", "static"),
        default="dance",
        help="a continuous dance, or an independent random pose per frame",
    )
    puppet.add_argument(
        "--layout",
        choices=("magicpose", "tiktok"),
        default="magicpose",
        help="magicpose: OUT/VIDEO/frames, poses.json, masks... (default); tiktok: frames and rendered pose "
        "maps only, as OUT/SPLIT_set/VIDEO/0001.png and OUT/pose_map_SPLIT_set/VIDEO/0001.png",
    )
    puppet.set_defaults(func=run_prepare_puppet)

    videos = sources.add_parser(
        "videos", help="import real videos, detecting poses (cached: re-runs skip done videos)"
    )
    videos.add_argument("source", help="a video file, or a folder of videos / frame folders")
    videos.add_argument("out", help="dataset folder to write into")
    videos.add_argument("--max-side", type=_size, default=512, help="shrink frames so the longer side is at most this")
    videos.add_argument("--split", help="split name to record in each video's meta.json")
    add_strict_argument(videos)
    videos.set_defaults(func=run_prepare_videos)

    preview = actions.add_parser("preview", help="write the contact sheet, motion strip and ground-truth panel PNGs")
    preview.add_argument("--out", default="docs", help="folder for the PNGs (default docs/)")
    preview.add_argument("--size", type=_size, default=128, help="tile size in pixels (default 128)")
    preview.set_defaults(func=run_preview)


def run_prepare_puppet(args: argparse.Namespace) -> int:
    from magicpose.data.puppet.export import export_split
    from magicpose.data.puppet.tiktok_export import export_tiktok_split
    from magicpose.data.puppet.world import SPLITS

    if args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    if not 0 <= args.start or args.start + args.videos > len(SPLITS[args.split]):
        raise InputError(f"videos {args.start}..{args.start + args.videos - 1} lie outside the {args.split} split")
    options = {
        "width": args.size,
        "height": args.size,
        "fps": args.fps,
        "num_frames": args.frames,
        "motion": args.motion,
    }
    if args.framing != "mixed":
        options["framing"] = args.framing
    export = export_tiktok_split if args.layout == "tiktok" else export_split
    folders = export(args.out, args.split, args.videos, start=args.start, **options)
    print(f"{len(folders)} puppet videos ({args.split}) in {args.out}")
    return 0


def run_prepare_videos(args: argparse.Namespace) -> int:
    from magicpose.data.importer import import_videos

    args.out = check_output(args.out, "the dataset folder", inputs=(args.source,), folder=True)
    failed = []
    folders = import_videos(args.source, args.out, max_side=args.max_side, split=args.split, failed=failed)
    print(f"{len(folders)} videos in {args.out}")
    if failed:
        print(f"{len(failed)} could not be imported and were skipped:", file=sys.stderr)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from magicpose.data.puppet.preview import contact_sheet, ground_truth_panel, motion_strip
    from magicpose.media import write_image

    out = Path(args.out)
    pictures = {
        "puppet_identities.png": contact_sheet(size=args.size),
        "puppet_motion.png": motion_strip(size=args.size),
        "puppet_motion_upper.png": motion_strip(index=1, size=args.size, framing="upper"),
        "puppet_ground_truth.png": ground_truth_panel(size=args.size),
    }
    for name, picture in pictures.items():
        write_image(out / name, picture)
        print(f"wrote {out / name}")
    return 0
