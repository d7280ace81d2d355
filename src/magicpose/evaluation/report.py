"""Present evaluation results: a printed table (one row per video, then all videos) and a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from magicpose.evaluation.evaluator import HIGHER_IS_BETTER, finite_or_text
from magicpose.files import atomic_path

# How the paper's table prints each metric.
FORMATS = {
    "fid": "{:.2f}",
    "ssim": "{:.3f}",
    "psnr": "{:.2f}",
    "lpips": "{:.3f}",
    "lpips-alex": "{:.3f}",
    "l1": "{:.2e}",
    "face-cos": "{:.3f}",
    "fid-vid": "{:.2f}",
    "fvd": "{:.2f}",
}


def _cell(metric: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return FORMATS.get(metric, "{:.4g}").format(value)


def format_table(results: dict) -> str:
    """A fixed-width table: rows are videos and ALL (pooled), columns the metrics with their direction."""
    metrics = results["metrics"]
    header = ["video", "frames"] + [f"{m}{'↑' if m in HIGHER_IS_BETTER else '↓'}" for m in metrics]
    rows = [
        [name, str(video["frames"])] + [_cell(m, video.get(m)) for m in metrics]
        for name, video in results["videos"].items()
    ]
    pooled = results["pooled"]
    rows.append(
        [f"ALL ({pooled['videos']} videos)", str(pooled["frames"])] + [_cell(m, pooled.get(m)) for m in metrics]
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def write_json(results: dict, path: str | Path) -> None:
    """Write the results as JSON, whole or not at all."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(finite_or_text(results), indent=2) + "\n")
