"""`magicpose animate`: a video of the reference person performing the driving motion.

With `--jobs FILE` (YAML or CSV) it animates many (reference, driving, out) jobs with one model load,
resumably, and under `torchrun`/`accelerate launch` shares them among the processes.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

from magicpose.errors import InputError
from magicpose.interfaces.options import (
    add_model_arguments,
    add_sampling_arguments,
    load_from_args,
    model_source,
    parse_size,
    sampling_overrides,
)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The options a line of a jobs file may set for itself (the command line's apply to every job)."""
    parser.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="retarget the driving skeleton to the reference body (default: on)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the initial noise (official: 42)")
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    parser.add_argument("--size", type=parse_size, help="output size, 512 or WIDTHxHEIGHT (default: the model's)")
    parser.add_argument("--max-frames", type=int, help="animate only the first N driving frames")
    parser.add_argument("--grid", action="store_true", help="also write OUT_grid.mp4: reference | skeleton | result")
    add_sampling_arguments(parser)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "animate",
        help="animate a photo with a driving video or pose sequence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reference", help="photo of the person to animate (needed without --jobs)")
    parser.add_argument(
        "--driving",
        help="driving video, image folder, image, or poses.json / OpenPose JSON folder (needed without --jobs)",
    )
    parser.add_argument("--out", help="output video (.mp4, H.264) (needed without --jobs)")
    add_job_arguments(parser)
    add_model_arguments(parser)
    group = parser.add_argument_group("many jobs")
    group.add_argument(
        "--jobs",
        help="a YAML or CSV file of jobs: reference, driving, out and any of the options above "
        "but the weights and hardware ones (paths relative to the file's folder)",
    )
    group.add_argument(
        "--report", help="with --jobs: the JSON report (default: beside the jobs file, <jobs>_report.json)"
    )
    group.add_argument("--force", action="store_true", help="with --jobs: redo the jobs whose outputs already exist")
    parser.set_defaults(func=run)


def option_actions(add) -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    add(parser)
    return list(parser._actions)


def check_writable(path: Path) -> None:
    parent = path.parent.resolve()
    if path.suffix.lower() != ".mp4":
        raise InputError(f"--out must end in .mp4, got {path}")
    if not parent.exists():
        raise InputError(f"the output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write to {parent}; choose a writable output path")


def prepare(args: argparse.Namespace):
    """Check the options and read the inputs, before any model is loaded."""
    from magicpose.media import read_image
    from magicpose.workflows.animation import load_driving_poses

    check_writable(Path(args.out))
    sampling = sampling_overrides(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    reference = read_image(args.reference)
    driving = load_driving_poses(args.driving, fps=args.fps, max_frames=args.max_frames)
    return reference, driving, sampling


def produce(pipeline, args: argparse.Namespace, prepared):
    """Animate and write the video (and grid); returns the animation and the files written."""
    from magicpose.media import write_video
    from magicpose.workflows.animation import animate, grid_frames

    reference, driving, sampling = prepared
    written = [Path(args.out)]
    animation = animate(
        pipeline,
        reference,
        driving,
        size=args.size,
        align=args.align,
        seed=args.seed,
        frame_chunk_size=args.frame_chunk,
        fps=args.fps,
        **sampling,
    )
    write_video(written[0], animation.frames, animation.fps)
    if args.grid:
        written.append(written[0].with_name(written[0].stem + "_grid.mp4"))
        write_video(written[1], grid_frames(animation), animation.fps)
    return animation, written


def describe(animation) -> str:
    return f"{len(animation.frames)} frames at {animation.fps:g} fps{', aligned' if animation.aligned else ''}"


def note_embedded_model(args: argparse.Namespace) -> None:
    from magicpose.models.default import EMBEDDED_MODEL_NOTE

    if model_source(args) is None:
        print(f"magicpose animate: note: {EMBEDDED_MODEL_NOTE}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.jobs:
        return run_jobs_file(args)
    missing = [f"--{name}" for name in ("reference", "driving", "out") if not getattr(args, name)]
    if missing:
        raise InputError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} needed: pass --reference, "
            "--driving and --out, or --jobs FILE for many jobs"
        )
    prepared = prepare(args)
    pipeline = load_from_args(args)
    note_embedded_model(args)
    animation, written = produce(pipeline, args, prepared)
    print(f"wrote {written[0]} ({describe(animation)})")
    for path in written[1:]:
        print(f"wrote {path}")
    return 0


def run_jobs_file(args: argparse.Namespace) -> int:
    """--jobs: validate the file, plan, share the pending jobs among the processes, run, report."""
    import torch

    from magicpose.workflows import jobs as workflow
    from magicpose.workflows import report as reporting

    if args.out:
        raise InputError("--out is per job with --jobs: give each job its own out in the jobs file")
    if args.report and Path(args.report).suffix.lower() != ".json":
        raise InputError(f"--report must end in .json, got {args.report}")
    sampling_overrides(args)  # a bad command-line value stops everything, before any work
    job_list = workflow.read_jobs(
        args.jobs,
        option_actions(add_job_arguments),
        option_actions(add_model_arguments),
        defaults={"reference": args.reference, "driving": args.driving, "grid": args.grid},
    )
    report = Path(args.report) if args.report else reporting.default_report_path(args.jobs)
    pending, skipped = workflow.plan(job_list, force=args.force)
    processes = workflow.processes(
        cpu=args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
    )
    mine = workflow.shard(pending, processes.index, processes.count)
    processes.wait()  # every process has planned before any writes an output

    options = copy.copy(args)
    if args.device == "auto" and processes.count > 1:
        options.device = str(processes.device)  # this process's own GPU
    pipeline = None
    if any(job.error is None for job in mine):  # one load for all the jobs, none when every job is done
        pipeline = load_from_args(options)
        if processes.main:
            note_embedded_model(args)

    def render(job) -> tuple[int, str]:
        job_args = copy.copy(args)
        vars(job_args).update(job.overrides, reference=str(job.reference), driving=str(job.driving), out=str(job.out))
        animation, _ = produce(pipeline, job_args, prepare(job_args))
        return len(animation.frames), describe(animation)

    desc = "jobs" if processes.count == 1 else f"jobs (process {processes.index + 1}/{processes.count})"
    results = [workflow.skipped_result(job) for job in skipped] if processes.main else []
    results += workflow.run_jobs(mine, render, desc=desc, process=processes.index)
    results = reporting.gather_reports(report, results, processes, jobs_file=args.jobs)
    if not processes.main:
        return 0  # the main process reports, and exits 1 if any job failed
    print(reporting.format_table(results))
    counts = reporting.count(results)
    print(
        f"{len(results)} jobs: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
        f"report: {report}"
    )
    return 1 if counts["failed"] else 0
