"""`magicpose animate`: a video of the reference person performing the driving motion.

With `--jobs FILE` (YAML or CSV) it animates many (reference, driving, out) jobs with one model load,
resumably, and under `torchrun`/`accelerate launch` shares them among the processes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import os
import sys
from pathlib import Path

from magicpose.errors import InputError
from magicpose.files import atomic_path
from magicpose.interfaces.options import (
    add_alignment_arguments,
    add_model_arguments,
    add_sampling_arguments,
    add_strict_argument,
    check_output,
    load_from_args,
    model_source,
    parse_size,
    person_argument,
    positive_number,
    sampling_overrides,
    seed,
)
from magicpose.poses.framing import FIT_MODES
from magicpose.poses.smoothing import DEFAULT_SMOOTHING, SMOOTHING_LEVELS


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The options a line of a jobs file may set for itself (the command line's apply to every job)."""
    parser.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="retarget the driving skeleton to the reference body (default: on)",
    )
    parser.add_argument("--seed", type=seed, default=42, help="seed of the initial noise (official: 42)")
    parser.add_argument("--fps", type=positive_number, help="output frame rate (default: the driving video's)")
    parser.add_argument("--size", type=parse_size, help="output size, 512 or WIDTHxHEIGHT (default: the model's)")
    parser.add_argument(
        "--pose-size",
        type=parse_size,
        metavar="WxH",
        help="the frame size of OpenPose JSON files that do not record it (default: from the keypoints' extent)",
    )
    parser.add_argument(
        "--start", type=float, default=0.0, metavar="SECONDS", help="begin at this time of the driving video (0)"
    )
    parser.add_argument("--max-frames", type=int, help="animate only the first N driving frames (after --start)")
    parser.add_argument("--grid", action="store_true", help="also write OUT_grid.mp4: reference | skeleton | result")
    parser.add_argument(
        "--audio",
        default="driving",
        metavar="driving|none|FILE",
        help="the sound of the output: the driving video's (default), none, or a file's, cut like the "
        "driving video from --start",
    )
    group = parser.add_argument_group("framing and alignment")
    group.add_argument(
        "--fit",
        choices=FIT_MODES,
        default="person",
        help="how a photo of another shape fills the output: pad (all of it, letterboxed), crop (centre "
        "crop), person (a crop around the person, padded only if they do not fit) (default: %(default)s)",
    )
    group.add_argument(
        "--driving-fit",
        choices=FIT_MODES,
        default="person",
        help="the same for the driving video's frame, when the skeleton is not aligned (default: %(default)s)",
    )
    add_alignment_arguments(group, "output pixels")
    group = parser.add_argument_group("driving poses")
    group.add_argument(
        "--smooth",
        choices=SMOOTHING_LEVELS,
        help=f"smooth the detected keypoints over time, zero-lag (default: {DEFAULT_SMOOTHING} for a video, "
        "off for a pose file)",
    )
    group.add_argument(
        "--person",
        type=person_argument,
        metavar="largest|center|INDEX",
        help="who drives a video with several people, chosen on the first frame with anyone and followed "
        "(default: largest)",
    )
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
    add_strict_argument(parser)
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


def check_outputs(args: argparse.Namespace) -> list[Path]:
    """The video (and its grid), refused before any work if either could not be written or is an input."""
    inputs = (args.reference, args.driving, args.audio if args.audio not in ("driving", "none") else None)
    outputs = [check_output(args.out, "--out", (".mp4",), inputs=inputs)]
    if args.grid:
        grid = outputs[0].with_name(outputs[0].stem + "_grid.mp4")
        outputs.append(check_output(grid, "--out's grid video", (".mp4",), inputs=inputs))
    return outputs


def prepare(args: argparse.Namespace, detector=None):
    """Check the options and read the inputs (poses detected, in the photo too), before any model is loaded."""
    from magicpose.media import read_image
    from magicpose.poses.align import check_manual_alignment
    from magicpose.poses.types import Pose
    from magicpose.workflows.animation import audio_cut, check_audio_choice, detect_reference_pose, read_driving

    outputs = check_outputs(args)
    sampling = sampling_overrides(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    check_audio_choice(args.audio)
    reference = read_image(args.reference)
    driving = read_driving(
        args.driving,
        fps=args.fps,
        start=args.start,
        max_frames=args.max_frames,
        person=args.person,
        smooth=args.smooth,
        detector=detector,
        pose_size=args.pose_size,
    )
    check_manual_alignment(len(driving.poses), args.align_scale, args.align_offset, args.align_frame)
    pose = detect_reference_pose(reference, detector) or Pose()  # an empty pose: nobody in the photo
    # the sound checked now, before any sampling: a damaged or unusable track is told of (or stops --strict) here
    audio = audio_cut(args.audio, driving, len(driving.poses), float(args.fps or driving.poses.fps))
    return reference, driving, pose, sampling, outputs, audio


def produce(pipeline, args: argparse.Namespace, prepared):
    """Animate and write the video (and grid), with its sound; returns the animation, the files written
    and the one-line summary."""
    from magicpose.media import write_video
    from magicpose.workflows.animation import animate, grid_frames, summary

    reference, driving, pose, sampling, written, audio = prepared
    animation = animate(
        pipeline,
        reference,
        driving.poses,
        size=args.size,
        align=args.align,
        seed=args.seed,
        frame_chunk_size=args.frame_chunk,
        fps=args.fps,
        known_reference_pose=pose,
        fit_mode=args.fit,
        driving_fit=args.driving_fit,
        align_scale=args.align_scale,
        align_offset=tuple(args.align_offset),
        align_frame=args.align_frame,
        **sampling,
    )
    if audio is not None:  # the sound of the frames made
        audio = dataclasses.replace(audio, duration=len(animation.frames) / animation.fps)
    with contextlib.ExitStack() as outputs:  # the video and its grid appear together, or neither does
        temporary = [outputs.enter_context(atomic_path(path)) for path in written]
        write_video(temporary[0], animation.frames, animation.fps, audio=audio)
        if args.grid:
            write_video(temporary[1], grid_frames(animation), animation.fps, audio=audio)
    return animation, written, summary(animation, driving, audio)


def driving_detector(args: argparse.Namespace):
    """The run's pose detector, its own landmark filter on only where our smoothing is off."""
    from magicpose.poses.detect import detector_for_smoothing
    from magicpose.poses.smoothing import DEFAULT_SMOOTHING

    return detector_for_smoothing(args.smooth or DEFAULT_SMOOTHING)


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
    with driving_detector(args) as detector:  # one detector for the driving video and the photo
        prepared = prepare(args, detector)
    pipeline = load_from_args(args)
    note_embedded_model(args)
    animation, written, line = produce(pipeline, args, prepared)
    print(f"wrote {written[0]} ({line})")
    for path in written[1:]:
        print(f"wrote {path}")
    return 0


def run_jobs_file(args: argparse.Namespace) -> int:
    """--jobs: validate the file, then the shared runner plans, shares the pending jobs among the
    processes, runs them and gathers the results; process 0 reports."""
    from magicpose.errors import debugging
    from magicpose.workflows import jobs as workflow
    from magicpose.workflows import report as reporting
    from magicpose.workflows.animation import AUDIO_CHOICES
    from magicpose.workflows.report import JobResult
    from magicpose.workflows.runner import Work, launched, run_shared

    if args.out:
        raise InputError("--out is per job with --jobs: give each job its own out in the jobs file")
    sampling_overrides(args)  # a bad command-line value stops everything, before any work
    job_list = workflow.read_jobs(
        args.jobs,
        option_actions(add_job_arguments),
        option_actions(add_model_arguments),
        defaults={"reference": args.reference, "driving": args.driving, "grid": args.grid},
    )
    report = check_output(
        args.report or reporting.default_report_path(args.jobs),
        "--report",
        (".json",),
        inputs=(args.jobs, *(path for job in job_list for path in (job.reference, job.driving, *job.outputs))),
    )
    processes, device = launched(args.device)

    @contextlib.contextmanager
    def start(mine: list):
        pipeline = None
        if any(job.error is None for job in mine):  # one load for all the jobs, none when every one is bad
            pipeline = load_from_args(argparse.Namespace(**{**vars(args), "device": device}))
            if processes.main:
                note_embedded_model(args)

        def render(job) -> JobResult:
            if job.error:
                raise InputError(job.error)
            job_args = copy.copy(args)
            vars(job_args).update(
                job.overrides, reference=str(job.reference), driving=str(job.driving), out=str(job.out)
            )
            if "audio" in job.overrides and job_args.audio not in AUDIO_CHOICES:  # a job's own file: beside the jobs
                job_args.audio = os.path.join(Path(args.jobs).resolve().parent, Path(job_args.audio).expanduser())
            animation, _, line = produce(pipeline, job_args, prepare(job_args, detector))
            return JobResult(job.index, job.where, str(job.out), "done", len(animation.frames), message=line)

        with driving_detector(args) as detector:  # one for every job of this process; closed after the last
            yield render

    work = Work(
        command="animate",
        unit="job",
        row_type=JobResult,
        label=lambda job: job.label,
        done=lambda job: workflow.is_done(job, force=args.force),
        skipped=workflow.skipped_result,
        failed=workflow.failed_result,
        order=lambda row: row.job,
        start=start,
    )
    results = run_shared(work, job_list, report, processes, debug=debugging(getattr(args, "debug", False)))
    if not processes.main:
        return 0  # the main process reports, and exits 1 if any job failed
    reporting.write_report(report, results, args.jobs, processes.count)
    print(reporting.format_table(results))
    counts = reporting.count(results)
    print(
        f"{len(results)} jobs: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
        f"report: {report}"
    )
    return 1 if counts["failed"] else 0
