"""`magicpose evaluate`: the TikTok benchmark's metrics between generated and ground-truth frames, the
whole TikTok protocol on a dataset root (`--tiktok`: generate every test video, then score it), or a
model on the puppet world's held-out test split (`--puppet`).

    magicpose evaluate --generated GEN --ground-truth GT [--protocol disco|clean]
    magicpose evaluate --tiktok ROOT --out GEN [--model FOLDER] [--protocol disco|clean] [--max-frames N]
    magicpose evaluate --puppet [--model FOLDER] [--no-reference] [--guidance 1] [--no-hands --no-face]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magicpose.errors import InputError
from magicpose.interfaces.options import (
    add_model_arguments,
    add_sampling_arguments,
    check_output,
    load_from_args,
    model_source,
    parse_size,
    sampling_overrides,
    seed,
)

PROTOCOL_HELP = (
    "disco: exactly the field's evaluation code (DisCo), quirks included, for numbers comparable with "
    "published tables; clean: the textbook definitions (see docs/evaluation.md)"
)


# evaluation.evaluator's METRICS and DEFAULT_METRICS (tested equal), here so that --help need not import torch
METRICS = ("fid", "ssim", "psnr", "lpips", "lpips-alex", "l1", "face-cos", "fid-vid", "fvd")
DEFAULT_METRICS = ("fid", "ssim", "psnr", "lpips", "l1", "face-cos", "fid-vid", "fvd")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score generated frames against ground truth (FID, SSIM, PSNR, LPIPS, L1, Face-Cos, FID-VID, FVD)",
        description=__doc__,
    )
    parser.add_argument("--generated", help="folder of generated frames (VIDEO/NNNN.png or VIDEO_NNNN.png)")
    parser.add_argument("--ground-truth", help="folder of ground-truth frames, named like --generated")
    parser.add_argument("--protocol", choices=("disco", "clean"), default="disco", help=PROTOCOL_HELP)
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=METRICS,
        metavar="METRIC",
        help=f"metrics to compute, from {', '.join(METRICS)} (default: {' '.join(DEFAULT_METRICS)}; "
        "by default metrics whose weight files are missing are skipped with a warning, "
        "metrics named here must have their weights)",
    )
    parser.add_argument(
        "--weights-dir",
        help="folder holding the metric networks' weight files (default: $MAGICPOSE_METRIC_WEIGHTS, "
        "else ~/.cache/magicpose/metrics)",
    )
    parser.add_argument(
        "--json",
        help="also write all results (per frame, per video, pooled) to this JSON file (--tiktok: OUT/metrics.json)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="frames per network batch (default: %(default)s)")
    tiktok = parser.add_argument_group(
        "TikTok protocol",
        "--tiktok ROOT: generate every test video from its first frame and its pose maps, then score it "
        "(sharded across torchrun/accelerate processes, resumable; docs/evaluation.md)",
    )
    tiktok.add_argument("--tiktok", metavar="ROOT", help="a TikTok-layout root: ROOT/test_set, ROOT/pose_map_test_set")
    tiktok.add_argument("--subset", default="test", help="the ROOT/SUBSET_set folder to run (default: %(default)s)")
    tiktok.add_argument("--out", help="folder for the generated frames, OUT/VIDEO/0001.png (needed with --tiktok)")
    tiktok.add_argument("--max-frames", type=int, help="generate only the first N frames of each video")
    tiktok.add_argument("--force", action="store_true", help="regenerate the videos already in --out")
    puppet = parser.add_argument_group(
        "puppet world",
        "--puppet: self-reenactment of held-out test puppets (first frame -> later frames), "
        "scored inside the person mask and with the paper's SSIM/PSNR/L1 (docs/default_model.md)",
    )
    puppet.add_argument("--puppet", action="store_true", help="evaluate a model on the puppet test split")
    puppet.add_argument(
        "--no-reference",
        action="store_true",
        help="run without the appearance branch: the pose ControlNet alone (ablation baseline)",
    )
    puppet.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score the pose-ControlNet-only baseline (the model folder's "
        "pretrained_pose_control/ where it has one) and its margin (default: on)",
    )
    puppet.add_argument(
        "--vae-ceiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score the ground truth passed through the model's VAE alone: the best any "
        "generator in its latent space can do (default: on)",
    )
    puppet.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="held-out puppets: test (report) or val (for choosing settings) (default: %(default)s)",
    )
    puppet.add_argument("--videos", type=int, help="the first N test videos (--puppet: 8; --tiktok: all)")
    puppet.add_argument("--frames", type=int, default=8, help="generated frames per video (default: %(default)s)")
    puppet.add_argument(
        "--frame-stride",
        type=int,
        default=3,
        help="video frames between generated frames: 3 = 5 fps of the 15-fps puppet videos, "
        "1 = every frame, for the temporal measures of a motion module (default: %(default)s)",
    )
    puppet.add_argument(
        "--noise-per-frame",
        action="store_true",
        help="an independent draw of initial noise per frame (AnimateDiff's sampling) instead of "
        "one draw for every frame (the official MagicPose sampling)",
    )
    puppet.add_argument(
        "--size",
        type=parse_size,
        help="frame size (--puppet: a square side, default 128; --tiktok: 512 or WxH rounded to the model's "
        "multiple, default each video's own size)",
    )
    puppet.add_argument("--seed", type=seed, default=42, help="seed of every video's initial noise (default: 42)")
    puppet.add_argument("--no-hands", action="store_true", help="drive with skeletons whose hands are missing")
    puppet.add_argument("--no-face", action="store_true", help="drive with skeletons whose face is missing")
    add_sampling_arguments(parser)
    add_model_arguments(parser, official=False)
    parser.set_defaults(func=run)


def choose_metrics(requested: list[str] | None, weights_dir: str) -> tuple[list[str], list[str]]:
    """The metrics to run and warnings about skipped ones.

    Asked-for metrics must have their weights (MissingWeightsError names the file and its source);
    with the default set, metrics whose files are missing are skipped and named in a warning.
    """
    from magicpose.evaluation.evaluator import DEFAULT_METRICS, REQUIRED_WEIGHTS
    from magicpose.evaluation.weights import WEIGHT_FILES, missing_weight_files, weight_path

    if requested:
        metrics = list(dict.fromkeys(requested))
        for metric in metrics:
            for key in REQUIRED_WEIGHTS.get(metric, []):
                weight_path(weights_dir, key)
        return metrics, []
    metrics, warnings = [], []
    for metric in DEFAULT_METRICS:
        missing = missing_weight_files(weights_dir, REQUIRED_WEIGHTS.get(metric, []))
        if missing:
            sources = "; ".join(
                f"{WEIGHT_FILES[k].name} from {WEIGHT_FILES[k].published_at}"
                for k in REQUIRED_WEIGHTS[metric]
                if WEIGHT_FILES[k].name in missing
            )
            warnings.append(f"skipping {metric}: {weights_dir} lacks {', '.join(missing)} (get {sources})")
        else:
            metrics.append(metric)
    return metrics, warnings


def run(args: argparse.Namespace) -> int:
    from magicpose.evaluation.weights import DEFAULT_WEIGHTS_DIR

    args.weights_dir = args.weights_dir or str(DEFAULT_WEIGHTS_DIR)
    modes = [name for name, given in (("--tiktok", args.tiktok), ("--puppet", args.puppet)) if given]
    if args.generated or args.ground_truth:
        modes.append("--generated/--ground-truth")
    if len(modes) > 1:
        raise InputError(f"{' and '.join(modes)} are different evaluations; pass one of them")
    if args.tiktok:
        return run_tiktok(args)
    if args.puppet:
        return run_puppet(args)
    if not args.generated or not args.ground_truth:
        raise InputError(
            "give --generated and --ground-truth folders, --tiktok ROOT --out GEN to generate and score a "
            "TikTok-layout dataset, or --puppet to evaluate a model on the puppet world"
        )

    from magicpose.evaluation.evaluator import evaluate, load_networks
    from magicpose.evaluation.pairing import pair_frames
    from magicpose.evaluation.report import format_table, write_json
    from magicpose.pipelines.assembly import resolve_device

    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.json:
        args.json = check_output(args.json, "--json", (".json",), inputs=(args.generated, args.ground_truth))
    videos, pairing_warnings = pair_frames(args.generated, args.ground_truth)
    metrics, skip_warnings = choose_metrics(args.metrics, args.weights_dir)
    for warning in pairing_warnings + skip_warnings:
        print(f"magicpose evaluate: warning: {warning}", file=sys.stderr)
    if not metrics:
        raise InputError("no metric left to compute; see the warnings above")
    device = resolve_device(args.device)
    networks = load_networks(metrics, args.weights_dir, device)
    results = evaluate(videos, metrics, args.protocol, networks, batch_size=args.batch_size)
    results.update(
        generated=str(args.generated),
        ground_truth=str(args.ground_truth),
        skipped=skip_warnings,
        warnings=pairing_warnings,
    )
    print(f"protocol: {args.protocol}")
    print(format_table(results))
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    return 0


def run_puppet(args: argparse.Namespace) -> int:
    from magicpose.evaluation.puppet_benchmark import (
        evaluate_on_puppets,
        format_rows,
        reconstruct_puppets,
        target_lines,
    )
    from magicpose.evaluation.report import write_json
    from magicpose.models.default import default_model_folder
    from magicpose.models.motion_module import is_motion_unet
    from magicpose.pipelines.assembly import MOTION_ADAPTER

    args.videos = 8 if args.videos is None else args.videos
    if args.size and args.size[0] != args.size[1]:
        raise InputError(f"--puppet frames are square: pass --size {args.size[0]}, not WxH")
    args.size = args.size[0] if args.size else 128
    for name in ("videos", "frames", "frame_stride", "size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    overrides = sampling_overrides(args)
    folder = args.model or default_model_folder()
    pipeline = load_from_args(args)
    motion_adapter = args.motion_adapter or (
        str(Path(folder) / MOTION_ADAPTER) if is_motion_unet(pipeline.unet) else None
    )
    pipeline.set_progress_bar_config(disable=True)
    recipe = pipeline.recipe(**overrides)
    options = dict(
        videos=args.videos,
        frames_per_video=args.frames,
        size=args.size,
        seed=args.seed,
        split=args.split,
        hands=not args.no_hands,
        face=not args.no_face,
        frame_stride=args.frame_stride,
        noise_per_frame=args.noise_per_frame,
        frame_chunk_size=args.frame_chunk,
        **recipe,
    )
    label = "pose ControlNet only" if args.no_reference else "model"
    rows = {label: evaluate_on_puppets(pipeline, reference=not args.no_reference, **options).mean()}
    baseline = None
    if args.baseline and not args.no_reference:
        baseline_label, pretrained = "ControlNet-only baseline", Path(folder) / "pretrained_pose_control"
        if (pretrained / "config.json").is_file():
            from diffusers import ControlNetModel

            pipeline.pose_control = ControlNetModel.from_pretrained(pretrained, torch_dtype=pipeline.unet.dtype).to(
                pipeline.device
            )
        else:
            baseline_label += " (the model's own ControlNet)"
        baseline = rows[baseline_label] = evaluate_on_puppets(pipeline, reference=False, **options).mean()
    if args.vae_ceiling:
        clips = {name: options[name] for name in ("videos", "frames_per_video", "size", "split", "frame_stride")}
        rows["VAE reconstruction (ceiling)"] = reconstruct_puppets(pipeline, **clips).mean()

    driving = (
        "full skeletons"
        if not (args.no_hands or args.no_face)
        else "skeletons without "
        + " and ".join(part for part, off in (("hands", args.no_hands), ("face", args.no_face)) if off)
    )
    start = "the noised reference" if recipe["start_from_reference"] else "pure noise"
    motion = f" with the motion module {args.motion_adapter or MOTION_ADAPTER + '/'}" if motion_adapter else ""
    motion += ", noise drawn per frame" if args.noise_per_frame else ""
    interval = recipe["guidance_interval"]
    interval = f" in ({interval[0]:g}, {interval[1]:g}]" if interval else ""
    print(
        f"{folder}{motion}: {args.videos} {args.split} puppets x {args.frames} frames (every {args.frame_stride}) "
        f"at {args.size}px, {recipe['num_inference_steps']} steps of "
        f"{type(pipeline.scheduler).__name__} from {start}, "
        f"guidance {recipe['guidance_scale']:g}{interval}, {driving}"
    )
    print(format_rows(rows))
    if not args.no_reference:
        print("\n".join(target_lines(rows["model"], baseline)))
    if args.json:
        write_json(
            {
                "model": str(folder),
                "motion_adapter": motion_adapter,
                "scheduler": type(pipeline.scheduler).__name__,
                "options": options,
                "rows": rows,
            },
            args.json,
        )
        print(f"wrote {args.json}")
    return 0


def run_tiktok(args: argparse.Namespace) -> int:
    """--tiktok ROOT: check everything, share the videos among the processes, generate, score on process 0."""
    from magicpose.errors import debugging
    from magicpose.models.default import default_model_folder
    from magicpose.workflows import tiktok_protocol as protocol

    if not args.out:
        raise InputError("--tiktok needs --out GEN_DIR, the folder for the generated frames")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    settings = protocol.Settings(
        root=Path(args.tiktok),
        subset=args.subset,
        out=Path(args.out),
        json=Path(args.json) if args.json else Path(args.out) / "metrics.json",
        model=str(model_source(args) or default_model_folder()),
        videos=args.videos,
        max_frames=args.max_frames,
        size=args.size,
        seed=args.seed,
        force=args.force,
        frame_chunk=args.frame_chunk,
        sampling=sampling_overrides(args),
    )
    clips = protocol.check_settings(settings)
    metrics, skip_warnings = choose_metrics(args.metrics, args.weights_dir)
    if not metrics:
        raise InputError("no metric left to compute; see the warnings above")

    def load(device: str):
        return load_from_args(argparse.Namespace(**{**vars(args), "device": device}))

    scoring = protocol.Scoring(metrics, args.protocol, args.weights_dir, args.device, args.batch_size, skip_warnings)
    outcome = protocol.run_protocol(settings, clips, load, scoring, debug=debugging(getattr(args, "debug", False)))
    if outcome.main:
        print(outcome.text(settings.json))
    return 1 if outcome.main and outcome.failed else 0  # process 0 reports; a failing worker would stop the others
