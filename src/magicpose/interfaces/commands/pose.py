"""`magicpose pose`: extract poses from a video or image, render them, align them to a reference.

magicpose pose extract dance.mp4 -o poses.json --preview skeleton.mp4
magicpose pose render poses.json -o skeleton.mp4 [--no-hands] [--no-face]
magicpose pose align poses.json --reference photo.png -o aligned.json --preview aligned.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magicpose.errors import InputError
from magicpose.files import not_found
from magicpose.interfaces.options import add_alignment_arguments, add_strict_argument, check_output, person_argument


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 512x768, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"the size must be positive, got {text!r}")
    return width, height


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def write_skeleton(path: Path, sequence, *, hands: bool = True, face: bool = True) -> None:
    """Render a sequence to an mp4 (any length) or a still image (single-frame sequences)."""
    from magicpose import media
    from magicpose.poses.render import draw_openpose, render_sequence

    if media.is_image_path(path):
        if len(sequence) != 1:
            raise InputError(f"{path} is an image but the sequence has {len(sequence)} frames; write a .mp4 instead")
        media.write_image(path, draw_openpose(sequence[0], sequence.width, sequence.height, hands=hands, face=face))
        return
    check_output(path, "the preview", (".mp4",) + media.IMAGE_SUFFIXES)
    from tqdm.auto import tqdm

    frames = render_sequence(sequence.frames, sequence.width, sequence.height, hands=hands, face=face)
    media.write_video(path, tqdm(frames, total=len(sequence), desc="render", unit="frame"), sequence.fps)


def _detect(source: Path, detector, *, progress: bool = True, person: str | int = "largest", fps: float | None = None):
    """(poses, a note on their timing or None) of a photo (one frame) or of a video, animated image or image
    folder, on the constant clock that `animate` uses (`magicpose.poses.on_clock`). `fps`: a folder's rate."""
    from magicpose import media
    from magicpose.poses.on_clock import detect_on_clock
    from magicpose.poses.types import PoseSequence

    if not source.exists():
        raise not_found(source, "input")
    if source.is_file() and media.is_image_path(source) and not media.is_animated_image(source):
        image = media.read_image(source)
        pose = detector.detect_image(image)
        if pose is None:
            raise InputError(f"no person found in {source}; pass a photo showing a person")
        return PoseSequence([pose], image.shape[1], image.shape[0], fps=1.0), None
    clocked = detect_on_clock(
        detector, source, folder_fps=fps or media.DEFAULT_FOLDER_FPS, person=person, progress=progress
    )
    return clocked.poses, clocked.note


def followed_person(sequence) -> str:
    """One line on whom a video's poses follow, for the command's summary ("" for a lone person)."""
    record = sequence.person
    if not record or record.get("mode") == "single":
        return ""
    how = record["choice"] if isinstance(record["choice"], str) else f"number {record['choice']} from the left"
    return (
        f"followed the {how} person of {record['people_first_frame']} on frame {record['first_frame']} "
        f"({record['people_seen']} people seen in all)"
    )


def _write_extract_preview(path: Path, sequence) -> None:
    """The skeletons; with several people in the video, the followed person's box is outlined in grey."""
    record = sequence.person
    if not record or record.get("mode") == "single" or len(sequence) == 1:
        write_skeleton(path, sequence)
        return
    import cv2
    from tqdm.auto import tqdm

    from magicpose import media
    from magicpose.poses.render import render_sequence

    def frames():
        skeletons = render_sequence(sequence.frames, sequence.width, sequence.height)
        for skeleton, box in zip(skeletons, record["boxes"]):
            if box is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                cv2.rectangle(skeleton, (x0, y0), (x1, y1), (160, 160, 160), 1)
            yield skeleton

    media.write_video(path, tqdm(frames(), total=len(sequence), desc="render", unit="frame"), sequence.fps)


def run_extract(args) -> int:
    from magicpose.poses.detect import detector_for_smoothing
    from magicpose.poses.openpose_json import save_poses
    from magicpose.poses.smoothing import smooth_poses

    args.output = check_output(args.output, "the pose file", (".json",), inputs=(args.input,))
    if args.preview is not None:
        from magicpose import media

        args.preview = check_output(
            args.preview, "the preview", (".mp4",) + media.IMAGE_SUFFIXES, inputs=(args.input,)
        )
    with detector_for_smoothing(
        args.smooth, min_visibility=args.min_visibility, refine_face=not args.no_iris
    ) as detector:
        sequence, timing = _detect(args.input, detector, person=args.person, fps=args.fps)
    sequence = smooth_poses(sequence, args.smooth)
    if args.fps is not None:
        sequence.fps = args.fps
    save_poses(sequence, args.output)
    missing = int((~sequence.found).sum())
    followed = followed_person(sequence)
    print(
        f"{args.output}: {len(sequence)} frames at {sequence.fps:g} fps, {sequence.width}x{sequence.height}"
        + (f", {missing} without the person (filled)" if missing else "")
        + (f", {timing}" if timing else "")
        + (f"; {followed}" if followed else "")
        + f"; smoothing {args.smooth}"
    )
    if args.preview is not None:
        _write_extract_preview(args.preview, sequence)
        print(f"{args.preview}: skeleton preview")
    return 0


def run_render(args) -> int:
    from magicpose import media
    from magicpose.poses.openpose_json import load_poses

    args.output = check_output(args.output, "-o", (".mp4",) + media.IMAGE_SUFFIXES, inputs=(args.poses,))
    sequence = load_poses(args.poses, size=args.size, fps=args.fps)
    write_skeleton(args.output, sequence, hands=not args.no_hands, face=not args.no_face)
    print(f"{args.output}: {len(sequence)} frames, {sequence.width}x{sequence.height}")
    return 0


def run_align(args) -> int:
    from magicpose import media
    from magicpose.poses.align import align_pose_sequence
    from magicpose.poses.openpose_json import load_poses, save_poses

    args.output = check_output(args.output, "the aligned pose file", (".json",), inputs=(args.poses, args.reference))
    driving = load_poses(args.poses, size=args.size)
    reference_path = args.reference
    if reference_path.suffix.lower() == ".json" or reference_path.is_dir():
        reference_sequence = load_poses(reference_path)
    else:
        from magicpose.poses.detect import PoseDetector

        if not media.is_image_path(reference_path):
            raise InputError(f"the reference {reference_path} must be a photo or a pose .json file")
        with PoseDetector() as detector:
            reference_sequence, _ = _detect(reference_path, detector, progress=False)
    reference = reference_sequence[0]
    if not reference.has("body"):
        raise InputError(f"the reference {reference_path} shows no body joints; use a photo of the person's body")
    aligned = align_pose_sequence(
        driving,
        reference,
        reference_sequence.size,
        scale=args.align_scale,
        offset=tuple(args.align_offset),
        body_frame=args.align_frame,
    )
    save_poses(aligned, args.output)
    print(f"{args.output}: {len(aligned)} frames aligned to {reference_path} ({aligned.width}x{aligned.height})")
    if args.preview is not None:
        write_skeleton(args.preview, aligned)
        print(f"{args.preview}: skeleton preview")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pose", help="extract, render and align OpenPose skeletons", description=__doc__.splitlines()[0]
    )
    actions = parser.add_subparsers(dest="pose_command", metavar="ACTION", required=True)

    extract = actions.add_parser("extract", help="detect poses in a video, image folder or photo (mediapipe Holistic)")
    extract.add_argument(
        "input",
        type=Path,
        metavar="VIDEO_OR_IMAGE",
        help="mp4/mov/avi/webm/mkv, an animated gif/webp, a folder of frames, or a photo",
    )
    extract.add_argument("-o", "--output", type=Path, required=True, help="pose sequence file to write (.json)")
    extract.add_argument("--preview", type=Path, help="also render the skeletons (.mp4, or .png for a photo)")
    extract.add_argument("--fps", type=_positive, help="override the frame rate (image folders default to 30)")
    extract.add_argument(
        "--min-visibility",
        type=float,
        default=0.3,
        help="BlazePose visibility below which a joint is dropped (default 0.3)",
    )
    extract.add_argument("--no-iris", action="store_true", help="skip the iris model; pupils become eye centres")
    add_strict_argument(extract)
    extract.add_argument(
        "--person",
        type=person_argument,
        default="largest",
        metavar="largest|center|INDEX",
        help="with several people, who drives: the largest (default), the one nearest the centre, or the "
        "INDEX-th from the left (0, 1, ...) on the first frame with anyone; then followed across frames",
    )
    extract.add_argument(
        "--smooth",
        choices=("off", "low", "medium", "high"),
        default="medium",
        help="zero-lag smoothing of the keypoints over time (default medium; off keeps the detector's)",
    )
    extract.set_defaults(func=run_extract)

    render = actions.add_parser("render", help="draw poses as OpenPose condition images (.mp4 or .png)")
    render.add_argument("poses", type=Path, help="pose sequence file, an OpenPose JSON file or a folder of them")
    render.add_argument(
        "-o", "--output", type=Path, required=True, help="skeleton video (.mp4) or image (.png, one frame)"
    )
    render.add_argument("--no-hands", action="store_true", help="leave the hands out")
    render.add_argument("--no-face", action="store_true", help="leave the face out")
    render.add_argument("--size", type=_size, help="WIDTHxHEIGHT for OpenPose files that do not record it")
    render.add_argument("--fps", type=_positive, help="frame rate for OpenPose folders (default 30)")
    render.set_defaults(func=run_render)

    align = actions.add_parser("align", help="retarget driving poses to the reference person's body")
    align.add_argument("poses", type=Path, help="driving pose sequence (from `pose extract`) or OpenPose JSON")
    align.add_argument("--reference", type=Path, required=True, help="reference photo, or its pose .json")
    align.add_argument("-o", "--output", type=Path, required=True, help="aligned pose sequence file (.json)")
    align.add_argument("--preview", type=Path, help="also render the aligned skeletons (.mp4)")
    align.add_argument("--size", type=_size, help="WIDTHxHEIGHT for driving OpenPose files that do not record it")
    add_alignment_arguments(align, "pixels of the reference photo")
    align.set_defaults(func=run_align)
