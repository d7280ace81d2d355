"""`magicpose evaluate`: the TikTok benchmark's metrics between generated and ground-truth frames."""

from __future__ import annotations

import argparse
import sys

from magicpose.errors import InputError

PROTOCOL_HELP = (
    "disco: exactly the field's evaluation code (DisCo), quirks included, for numbers comparable with "
    "published tables; clean: the textbook definitions (see docs/evaluation.md)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from magicpose.evaluation.evaluator import DEFAULT_METRICS, METRICS
    from magicpose.evaluation.weights import DEFAULT_WEIGHTS_DIR

    parser = subparsers.add_parser(
        "evaluate",
        help="score generated frames against ground truth (FID, SSIM, PSNR, LPIPS, L1, Face-Cos, FID-VID, FVD)",
        description=__doc__,
    )
    parser.add_argument("--generated", required=True, help="folder of generated frames (VIDEO/NNNN.png or VIDEO_NNNN.png)")
    parser.add_argument("--ground-truth", required=True, help="folder of ground-truth frames, named like --generated")
    parser.add_argument("--protocol", choices=("disco", "clean"), default="disco", help=PROTOCOL_HELP)
    parser.add_argument(
        "--metrics", nargs="+", choices=METRICS, metavar="METRIC",
        help=f"metrics to compute, from {', '.join(METRICS)} (default: {' '.join(DEFAULT_METRICS)}; "
        "by default metrics whose weight files are missing are skipped with a warning, "
        "metrics named here must have their weights)",
    )  # fmt: skip
    parser.add_argument("--weights-dir", default=str(DEFAULT_WEIGHTS_DIR),
                        help="folder holding the metric networks' weight files (default: %(default)s, "
                             "or $MAGICPOSE_METRIC_WEIGHTS)")  # fmt: skip
    parser.add_argument("--json", help="also write all results (per frame, per video, pooled) to this JSON file")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per network batch (default: %(default)s)")
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
            sources = "; ".join(f"{WEIGHT_FILES[k].name} from {WEIGHT_FILES[k].published_at}"
                                for k in REQUIRED_WEIGHTS[metric] if WEIGHT_FILES[k].name in missing)  # fmt: skip
            warnings.append(f"skipping {metric}: {weights_dir} lacks {', '.join(missing)} (get {sources})")
        else:
            metrics.append(metric)
    return metrics, warnings


def run(args: argparse.Namespace) -> int:
    import torch

    from magicpose.evaluation.evaluator import evaluate, load_networks
    from magicpose.evaluation.pairing import pair_frames
    from magicpose.evaluation.report import format_table, write_json

    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    videos, pairing_warnings = pair_frames(args.generated, args.ground_truth)
    metrics, skip_warnings = choose_metrics(args.metrics, args.weights_dir)
    for warning in pairing_warnings + skip_warnings:
        print(f"magicpose evaluate: warning: {warning}", file=sys.stderr)
    if not metrics:
        raise InputError("no metric left to compute; see the warnings above")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    networks = load_networks(metrics, args.weights_dir, device)
    results = evaluate(videos, metrics, args.protocol, networks, batch_size=args.batch_size)
    results.update(generated=str(args.generated), ground_truth=str(args.ground_truth),
                   skipped=skip_warnings, warnings=pairing_warnings)  # fmt: skip
    print(f"protocol: {args.protocol}")
    print(format_table(results))
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    return 0
