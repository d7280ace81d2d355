"""What became of each animate job: the summary table and the JSON report (`workflows.runner` gathers
every process's rows on process 0, which writes it)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from magicpose.files import atomic_path

STATUSES = ("done", "skipped", "failed")


@dataclass
class JobResult:
    job: int
    line: str
    out: str
    status: str  # done, skipped or failed
    frames: int | None = None
    seconds: float = 0.0
    message: str = ""
    process: int = 0


def default_report_path(jobs_file: str | os.PathLike) -> Path:
    jobs_file = Path(jobs_file)
    return jobs_file.with_name(f"{jobs_file.stem}_report.json")


def count(results: list[JobResult]) -> dict[str, int]:
    return {status: sum(result.status == status for result in results) for status in STATUSES}


def write_report(path: Path, results: list[JobResult], jobs_file, processes: int = 1) -> None:

    report = {
        "jobs_file": str(Path(jobs_file).resolve()),
        "processes": processes,
        "counts": count(results),
        "jobs": [asdict(result) for result in sorted(results, key=lambda result: result.job)],
    }
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")


def format_table(results: list[JobResult], width: int = 70) -> str:
    rows = [("job", "out", "status", "frames", "seconds", "message")]
    for r in sorted(results, key=lambda result: result.job):
        half = (width - 3) // 2  # the end of a message (a file name) says as much as its start
        message = r.message if len(r.message) <= width else r.message[:half] + "..." + r.message[-half:]
        frames = "" if r.frames is None else str(r.frames)
        rows.append((str(r.job), display(r.out), r.status, frames, f"{r.seconds:.1f}", message))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def display(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
