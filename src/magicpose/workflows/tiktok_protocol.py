"""The paper's TikTok protocol end to end: every test video generated from its own first frame and its
recorded pose maps, then scored against the video itself.

    ROOT/test_set/VIDEO + ROOT/pose_map_test_set/VIDEO ─ workflows.runner (plan: skip videos whose output
    folder is whole; shard: process i takes pending videos i, i+N, ...; generate OUT/VIDEO/0001.png ...;
    gather on process 0) ─ process 0: score OUT against ROOT/test_set, table and JSON

Each video is generated with one generator seeded alike, so a video's frames do not depend on which
process made it or in which order. A video's folder is written whole or not at all (with a
`generation.json` saying how it was made), so a rerun generates only the videos still missing.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from magicpose.data.tiktok import TikTokDataset, TikTokVideo
from magicpose.errors import InputError
from magicpose.evaluation.evaluator import evaluate, load_networks
from magicpose.evaluation.pairing import Frame, VideoPair
from magicpose.evaluation.report import format_table, write_json
from magicpose.files import atomic_folder
from magicpose.media import write_image
from magicpose.models.motion_module import is_motion_unet
from magicpose.pipelines.assembly import resolve_device
from magicpose.workflows.report import STATUSES
from magicpose.workflows.runner import Work, launched, run_shared

RECORD = "generation.json"  # in each generated video's folder: how it was made
RECORD_CHECKS = ("model", "seed", "size", "sampling")  # a skipped video made otherwise is pointed out


@dataclass
class Settings:
    """What the user asked for (the model's own recipe fills the sampling options left out)."""

    root: Path
    subset: str
    out: Path
    json: Path
    model: str  # the model folder or file, for the records
    videos: int | None = None  # the first N test videos
    max_frames: int | None = None  # the first N frames of each
    size: tuple[int, int] | None = None  # WxH; None: each video's own size
    seed: int = 42
    force: bool = False
    frame_chunk: int = 16
    sampling: dict = field(default_factory=dict)  # overrides of the recipe, as __call__ keywords

    def wanted(self) -> dict:
        return {
            "model": self.model,
            "seed": self.seed,
            "size": self.size and list(self.size),
            "sampling": self.sampling,
        }


@dataclass
class Clip:
    """One test video as the protocol uses it: the frames to generate, by their ground-truth files."""

    video: TikTokVideo
    count: int  # frames generated: the first `count`

    @property
    def name(self) -> str:
        return self.video.video_id

    @property
    def names(self) -> list[str]:
        """Generated frame names: the ground truth's, as PNG."""
        return [Path(path).stem + ".png" for path in self.video.frame_files[: self.count]]


@dataclass
class VideoResult:
    video: str
    status: str  # done, skipped or failed
    frames: int | None = None
    size: str = ""  # WxH generated
    seconds: float = 0.0
    message: str = ""
    process: int = 0


def check_settings(settings: Settings) -> list[Clip]:
    """The clips to run; a missing root or subset, an output inside the dataset or a bad limit raises
    `InputError` before anything is loaded."""
    root, out = settings.root, settings.out
    if not root.is_dir():
        raise InputError(f"the TikTok root {root} is not a folder; pass the folder that holds test_set/")
    for name, value in (("--videos", settings.videos), ("--max-frames", settings.max_frames)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if settings.frame_chunk < 1:
        raise InputError(f"--frame-chunk must be at least 1, got {settings.frame_chunk}")
    if settings.json.suffix.lower() != ".json":
        raise InputError(f"--json must end in .json, got {settings.json}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder for the generated frames")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise InputError(f"--out {out} lies inside the dataset {root}; generated frames go in a folder of their own")
    dataset = TikTokDataset(root, settings.subset)
    videos = list(dataset)[: settings.videos]
    return [Clip(video, min(video.num_frames, settings.max_frames or video.num_frames)) for video in videos]


def is_whole(folder: Path, clip: Clip) -> bool:
    """A video folder is written atomically: once there, it is whole; it serves if it has every frame asked."""
    return folder.is_dir() and all((folder / name).is_file() for name in clip.names)


def rounded(side: int, multiple: int) -> int:
    return max(multiple, int(round(side / multiple)) * multiple)


def output_size(clip: Clip, pipeline, size: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height): the asked size or the video's own, rounded to the model's multiple."""
    width, height = size or (clip.video.width, clip.video.height)
    factor = pipeline.vae_scale_factor
    return rounded(width, factor), rounded(height, factor)


def generate_clip(pipeline, clip: Clip, settings: Settings, process: int = 0) -> tuple[int, str]:
    """Generate one video from its first frame and its pose maps into OUT/VIDEO, whole or not at all."""
    start = time.perf_counter()
    samples = [clip.video.sample(index) for index in range(clip.count)]  # checks each pose map's size
    width, height = output_size(clip, pipeline, settings.size)
    frames = pipeline(
        samples[0].image,  # the first frame is the reference: the person and scene to keep
        [sample.pose_map for sample in samples],  # resized to the model's input size by the pipeline
        generator=torch.Generator(device="cpu").manual_seed(settings.seed),  # the same for every video
        height=height,
        width=width,
        frame_chunk_size=settings.frame_chunk,
        output_type="np",
        **settings.sampling,
    ).frames[0]  # the one video
    record = {
        **settings.wanted(),
        "recipe": pipeline.recipe(**settings.sampling),
        "scheduler": type(pipeline.scheduler).__name__,
        "motion_module": is_motion_unet(pipeline.unet),
        "frame_chunk": settings.frame_chunk,
        "reference": Path(clip.video.frame_files[0]).name,
        "frames": clip.count,
        "generated_size": [width, height],
        "process": process,
    }
    with atomic_folder(settings.out / clip.name, overwrite=True) as folder:
        for name, frame in zip(clip.names, frames):
            write_image(folder / name, (frame * 255).round().astype(np.uint8))
        record["seconds"] = round(time.perf_counter() - start, 3)
        (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return clip.count, f"{width}x{height}"


def read_record(folder: Path) -> dict:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def skipped_result(clip: Clip, settings: Settings) -> VideoResult:
    record = read_record(settings.out / clip.name)
    size = "x".join(map(str, record.get("generated_size", []))) if record else ""
    wanted = settings.wanted()
    changed = [key for key in RECORD_CHECKS if record and json.dumps(record.get(key)) != json.dumps(wanted[key])]
    message = "output exists; --force redoes it"
    if not record:
        message = f"output exists (no {RECORD}: how it was made is unknown); --force redoes it"
    elif changed:
        message = f"output exists but was made with another {', '.join(changed)}; --force redoes it"
    elif record.get("frames", clip.count) != clip.count:  # a motion module's frames depend on the video's length
        message = f"output exists (generated as {record['frames']} frames, {clip.count} scored); --force redoes it"
    return VideoResult(clip.name, "skipped", clip.count, size, message=message)


@dataclass
class Scoring:
    """How process 0 scores: the metrics (chosen and checked by the caller), protocol and networks' place."""

    metrics: list[str]
    protocol: str = "disco"
    weights_dir: str = ""
    device: str = "auto"  # where the metric networks run ("auto": the GPU of process 0 when there is one)
    batch_size: int = 8
    warnings: list[str] = field(default_factory=list)  # metrics skipped for want of weights


def frame_index(name: str, position: int) -> int:
    """The frame number in a file name (0012.png -> 12), as `pair_frames` reads it; else the position."""
    match = re.search(r"(\d+)\D*$", Path(name).stem)
    return int(match.group(1)) if match else position + 1


def pairs(clips: list[Clip], out: Path) -> list[VideoPair]:
    """Each generated frame with its ground truth: the same video and file name, by construction."""
    return [
        VideoPair(
            clip.name,
            [
                (frame_index(name, position), Frame(out / clip.name / name), Frame(Path(truth)))
                for position, (name, truth) in enumerate(zip(clip.names, clip.video.frame_files))
            ],
        )
        for clip in clips
    ]


def score(clips: list[Clip], results: list[VideoResult], settings: Settings, scoring: Scoring) -> dict | None:
    """The metrics over the videos that were generated or skipped (None when there are none)."""
    ready = {result.video for result in results if result.status != "failed"}
    scored = [clip for clip in clips if clip.name in ready]
    if not scored:
        return None
    networks = load_networks(scoring.metrics, scoring.weights_dir, scoring.device)
    return evaluate(pairs(scored, settings.out), scoring.metrics, scoring.protocol, networks, scoring.batch_size)


def report(clips: list[Clip], results: list[VideoResult], settings: Settings, processes: int) -> dict:
    """Options, model, recipe and per-video generation (read back from each video's record)."""
    by_name = {result.video: result for result in results}
    generation, recipes = [], []
    for clip in clips:
        entry = asdict(by_name[clip.name])
        record = read_record(settings.out / clip.name) if entry["status"] != "failed" else {}
        entry["record"] = record
        generation.append(entry)
        if record.get("recipe") is not None and record["recipe"] not in recipes:
            recipes.append(record["recipe"])
    return {
        "root": str(settings.root),
        "subset": settings.subset,
        "ground_truth": str(settings.root / f"{settings.subset}_set"),
        "generated": str(settings.out),
        "model": settings.model,
        "processes": processes,
        "options": {
            "videos": settings.videos,
            "max_frames": settings.max_frames,
            "size": settings.size and list(settings.size),
            "seed": settings.seed,
            "force": settings.force,
            "frame_chunk": settings.frame_chunk,
            "sampling": settings.sampling,
        },
        # the one recipe every video was made with; a list when earlier runs used others
        "recipe": recipes[0] if len(recipes) == 1 else (recipes or None),
        "counts": {status: sum(r.status == status for r in results) for status in STATUSES},
        "generation": generation,
    }


def format_generation(results: list[VideoResult], width: int = 60) -> str:
    rows = [("video", "status", "frames", "size", "seconds", "process", "message")]
    for r in results:
        message = r.message if len(r.message) <= width else r.message[: width - 3] + "..."
        frames = "" if r.frames is None else str(r.frames)
        rows.append((r.video, r.status, frames, r.size, f"{r.seconds:.1f}", str(r.process), message))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def summary(results: list[VideoResult], scores: dict | None, json_path: Path) -> str:
    counts = {status: sum(r.status == status for r in results) for status in STATUSES}
    line = f"{len(results)} videos: {counts['done']} generated, {counts['skipped']} skipped, {counts['failed']} failed"
    if scores:
        pooled = scores["pooled"]
        values = ", ".join(
            f"{name.upper()} {pooled[name]:.4g}" for name in scores["metrics"] if isinstance(pooled.get(name), float)
        )
        line += f"; {pooled['frames']} frames of {pooled['videos']} videos scored ({scores['protocol']}): {values}"
    else:
        line += "; nothing to score"
    return f"{line}; report: {json_path}"


@dataclass
class Outcome:
    results: list[VideoResult]  # every video's on process 0, this process's own elsewhere
    scores: dict | None = None  # the evaluator's results (process 0)
    report: dict | None = None  # what was written to the JSON (process 0)
    main: bool = True  # process 0, which reports

    @property
    def failed(self) -> bool:
        return any(result.status == "failed" for result in self.results)

    def text(self, json_path: Path) -> str:
        """The generation table, the score table and the summary line."""
        parts = [format_generation(self.results)]
        if self.scores:
            parts += [f"protocol: {self.scores['protocol']}", format_table(self.scores)]
        return "\n".join([*parts, summary(self.results, self.scores, json_path)])


def run_protocol(
    settings: Settings, clips: list[Clip], load: Callable[[str], object], scoring: Scoring, debug: bool = False
) -> Outcome:
    """Generate the videos not made yet with the shared runner (each process its share, one model load
    each), then on process 0 score and write the JSON report.

    `load(device)` loads the model; launched as several processes, each takes its own GPU where the
    device is "auto" (the CPU over gloo when there is none). `debug`: a bug raises instead of failing
    its video."""
    processes, device = launched(scoring.device)
    scoring = replace(scoring, device=str(resolve_device(device)))
    if processes.main:
        for warning in scoring.warnings:
            print(f"magicpose evaluate: warning: {warning}", file=sys.stderr)

    @contextlib.contextmanager
    def start(mine: list[Clip]):
        pipeline = load(device)
        pipeline.set_progress_bar_config(leave=False)

        def generate(clip: Clip) -> VideoResult:
            frames, size = generate_clip(pipeline, clip, settings, processes.index)
            return VideoResult(clip.name, "done", frames, size)

        yield generate

    order = {clip.name: position for position, clip in enumerate(clips)}
    work = Work(
        command="evaluate",
        unit="video",
        row_type=VideoResult,
        label=lambda clip: f"video {clip.name}",
        done=lambda clip: not settings.force and is_whole(settings.out / clip.name, clip),
        skipped=lambda clip: skipped_result(clip, settings),
        failed=lambda clip, message: VideoResult(clip.name, "failed", message=message),
        order=lambda row: order[row.video],
        start=start,
    )
    results = run_shared(work, clips, settings.json, processes, debug)
    if not processes.main:
        return Outcome(results, main=False)
    scores = score(clips, results, settings, scoring)
    document = report(clips, results, settings, processes.count)
    document.update(scores or {"protocol": scoring.protocol, "metrics": scoring.metrics}, skipped=scoring.warnings)
    write_json(document, settings.json)
    return Outcome(results, scores, document)
