"""From a reference photo and a driving motion to frames: the job behind `magicpose animate`, the demo
and the web app.

    photo ─ detect its pose ─ fit to the output frame (pad / crop / around the person) ─┐
    driving video/poses ─ detect (or load) poses from --start ─ smooth ─────────────────┴─ align to the
    reference body (or fit the driving frame) ─ draw skeletons ─ MagicPosePipeline ─ frames (+ grid)
    driving video's sound (or a file's) ─ cut to the frames made ─ muxed into the mp4

One `PoseDetector` serves a run (the driving video and the photo), and each skeleton is drawn once.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from magicpose.audio import AudioCut, check_cut, probe_audio
from magicpose.errors import InputError
from magicpose.files import is_url, not_found
from magicpose.media import DEFAULT_FOLDER_FPS, is_animated_image, is_image_path, read_image
from magicpose.poses.align import align_pose_sequence, check_manual_alignment
from magicpose.poses.detect import PoseDetector, detector_for_smoothing
from magicpose.poses.framing import FIT_MODES, Framing, fit
from magicpose.poses.on_clock import detect_on_clock, start_frame
from magicpose.poses.openpose_json import load_poses
from magicpose.poses.render import draw_openpose
from magicpose.poses.smoothing import DEFAULT_SMOOTHING, smooth_poses
from magicpose.poses.types import Pose, PoseSequence

logger = logging.getLogger(__name__)

AUDIO_CHOICES = ("driving", "none")  # or the path of a file with sound
CUT_NOTE = "person partly cropped: use --fit pad or person"


@dataclass
class Driving:
    """The driving motion, and where it sits on its source's timeline (for the sound)."""

    poses: PoseSequence  # at the output frame rate
    source: Path
    start: float = 0.0  # seconds into the source where poses[0] is
    source_fps: float | None = None  # the source's own frame rate (None: the poses' own)
    timing: str | None = None  # how a variable frame rate was put on a constant clock, in words

    @property
    def missing(self) -> int:
        """Driving frames where nobody was detected (their poses were filled in)."""
        return int((~self.poses.found).sum())


@dataclass
class Framed:
    """The inputs in the output frame: what the model sees."""

    reference: np.ndarray  # the photo fitted to the frame
    framing: Framing  # how it was fitted
    reference_pose: Pose | None  # its pose in the frame (None: nobody found in the photo)
    reference_cut: bool  # the fit lost part of the person in the photo
    poses: PoseSequence  # the driving poses in the frame
    aligned: bool


@dataclass
class Animation:
    frames: list[np.ndarray]  # generated RGB uint8 frames
    skeletons: list[np.ndarray]  # the pose conditions, at the output size
    reference: np.ndarray  # the reference photo as the model saw it
    poses: PoseSequence  # the (aligned) driving poses in the output frame
    fps: float
    aligned: bool
    reference_cut: bool = False  # the fit lost part of the reference person
    framing: Framing | None = None


def _detector(detector: PoseDetector | None, level: str):
    """The run's detector as it is, or a new one for poses smoothed at `level`, closed after use."""
    return nullcontext(detector) if detector is not None else detector_for_smoothing(level)


def _frames(sequence: PoseSequence, start: int, count: int | None) -> PoseSequence:
    """Frames [start, start + count), with the followed person's per-frame record cut to match."""
    stop = None if count is None else start + count
    person = sequence.person
    if person and isinstance(person.get("boxes"), list):
        person = {**person, "boxes": person["boxes"][start:stop], "first_frame": max(person["first_frame"] - start, 0)}
    return replace(sequence, frames=sequence.frames[start:stop], found=sequence.found[start:stop], person=person)


def read_driving(
    driving: str | Path,
    *,
    fps: float | None = None,
    start: float = 0.0,
    max_frames: int | None = None,
    person: str | int | None = None,
    smooth: str | None = None,
    detector: PoseDetector | None = None,
    progress: bool = True,
    pose_size: tuple[int, int] | None = None,
) -> Driving:
    """Poses from our pose file / OpenPose JSON(s), or detected in a video, image folder or image.

    `start` (seconds) skips the frames before it; `max_frames` keeps that many after it (only those
    are detected). `person` ("largest", "center" or an index) picks who drives a video with several
    people; `smooth` is a level of `magicpose.poses.smoothing` (default: its default for detected poses,
    off for pose files, which may have been smoothed when extracted). `pose_size` (width, height) is the
    canvas of OpenPose files that record none; without it, it is inferred from the keypoints, with a warning."""
    driving = Path(driving)
    if not driving.exists():
        if is_url(driving):
            raise not_found(driving, "driving input")
        raise InputError(f"driving input {driving} does not exist; pass a video, an image folder or a poses.json")
    if not (math.isfinite(start) and start >= 0):
        raise InputError(f"--start must be a number of seconds >= 0, got {start}")
    detected = not (driving.suffix.lower() == ".json" or (driving.is_dir() and any(driving.glob("*.json"))))
    level = smooth if smooth is not None else (DEFAULT_SMOOTHING if detected else "off")
    if not detected:
        sequence = load_poses(driving, fps=fps, size=pose_size, infer_size=True)
        rate = sequence.fps
        first = start_frame(start, rate, len(sequence), driving)
        sequence, where, timing = _frames(sequence, first, max_frames), first / rate, None
    elif is_image_path(driving) and not is_animated_image(driving):
        if start:
            raise InputError(f"--start needs a video; {driving} is a single image")
        with _detector(detector, level) as running:
            sequence = running.detect_video([read_image(driving)], progress=False, fps=fps, **_person(person))
        rate, where, timing = sequence.fps, 0.0, None
    else:
        with _detector(detector, level) as running:  # --fps: a folder's rate
            clocked = detect_on_clock(
                running,
                driving,
                start=start,
                max_frames=max_frames,
                folder_fps=fps or DEFAULT_FOLDER_FPS,
                person=person,
                progress=progress,
            )
        sequence, rate, where, timing = clocked.poses, clocked.poses.fps, clocked.start, clocked.note
    if len(sequence) == 0:
        raise InputError(f"{driving} has no pose frames")
    if not sequence.found.any():
        raise InputError(f"{driving} has no person in any frame; pass poses or a video that show a person")
    if max_frames is not None and len(sequence) > max_frames:
        sequence = _frames(sequence, 0, max_frames)
    if level != "off":
        sequence = smooth_poses(sequence, level)
    source_fps = float(rate)
    if fps:
        sequence.fps = float(fps)
    return Driving(sequence, driving, where, source_fps, timing)


def load_driving_poses(
    driving: str | Path, fps: float | None = None, max_frames: int | None = None, progress: bool = True, **options
) -> PoseSequence:
    """The poses of `read_driving` alone."""
    return read_driving(driving, fps=fps, max_frames=max_frames, progress=progress, **options).poses


def _person(person) -> dict:
    return {} if person is None else {"person": person}


def detect_reference_pose(reference: np.ndarray, detector: PoseDetector | None = None) -> Pose | None:
    with _detector(detector, "off") as running:
        return running.detect_image(reference)


def frame_inputs(
    reference: np.ndarray,
    driving: PoseSequence,
    size: tuple[int, int],
    *,
    align: bool = True,
    fit_mode: str = "person",
    driving_fit: str = "person",
    align_scale: float = 1.0,
    align_offset: tuple[float, float] = (0.0, 0.0),
    align_frame: int | None = None,
    known_pose: Pose | None = None,
    detector: PoseDetector | None = None,
) -> Framed:
    """The photo and the driving poses in the output frame, aligned to the reference body when asked
    and possible. The reference pose is `known_pose` (photo pixels), or else detected in the photo at
    its full resolution."""
    for name, mode in (("--fit", fit_mode), ("--driving-fit", driving_fit)):
        if mode not in FIT_MODES:
            raise InputError(f"{name} must be one of {', '.join(FIT_MODES)}, got {mode!r}")
    if align:
        check_manual_alignment(len(driving), align_scale, align_offset, align_frame)
    photo_size = (reference.shape[1], reference.shape[0])
    pose = known_pose if known_pose is not None else detect_reference_pose(reference, detector)
    if pose is not None and not len(pose.present_points()):
        pose = None
    framing = fit(fit_mode, photo_size, size, [pose] if pose is not None else [])
    cut = pose is not None and framing.cuts(pose)
    if cut:
        logger.warning(
            "the reference person is partly outside the %dx%d frame after --fit %s; use --fit pad or person "
            "to keep all of them",
            *size,
            fit_mode,
        )
    fitted_pose = framing.pose(pose) if pose is not None else None
    if align and fitted_pose is None:
        logger.warning("no person found in the reference photo: the driving poses are used without alignment")
    if align and fitted_pose is not None:
        poses = align_pose_sequence(
            driving, fitted_pose, size, scale=align_scale, offset=align_offset, body_frame=align_frame
        )
    else:
        found = [p for p, seen in zip(driving.frames, driving.found) if seen] or driving.frames
        poses = fit(driving_fit, driving.size, size, found).poses(driving)
    return Framed(framing.image(reference), framing, fitted_pose, bool(cut), poses, align and fitted_pose is not None)


def animate(
    pipeline,
    reference: np.ndarray,
    driving: PoseSequence,
    *,
    size: tuple[int, int] | None = None,
    align: bool = True,
    seed: int = 42,
    frame_chunk_size: int = 16,
    fps: float | None = None,
    known_reference_pose: Pose | None = None,
    fit_mode: str = "person",
    driving_fit: str = "person",
    align_scale: float = 1.0,
    align_offset: tuple[float, float] = (0.0, 0.0),
    align_frame: int | None = None,
    detector: PoseDetector | None = None,
    **sampling,
) -> Animation:
    """Animate `reference` (RGB uint8) with `driving` poses. Same inputs and seed give the same frames.

    `known_reference_pose` (in the photo's pixels) replaces pose detection on the photo; `detector`
    is the run's `PoseDetector` when the photo still needs one. `fit_mode` / `driving_fit`: how the
    photo / the unaligned driving poses fill the output frame (`magicpose.poses.framing`).
    `sampling`: overrides of the model's own recipe, as `MagicPosePipeline.__call__` takes them
    (`num_inference_steps`, `guidance_scale`, `start_from_reference`, ...); None or absent: the model's."""
    factor = pipeline.vae_scale_factor
    size = size or (pipeline.unet.config.sample_size * factor,) * 2
    if size[0] % factor or size[1] % factor:
        raise InputError(f"--size must be a multiple of {factor} on each side, got {size[0]}x{size[1]}")
    framed = frame_inputs(
        reference,
        driving,
        size,
        align=align,
        fit_mode=fit_mode,
        driving_fit=driving_fit,
        align_scale=align_scale,
        align_offset=align_offset,
        align_frame=align_frame,
        known_pose=known_reference_pose,
        detector=detector,
    )
    skeletons = [draw_openpose(pose, *size) for pose in framed.poses.frames]
    # The pose ControlNet's input size: the output's at SD scale, where the drawn skeletons serve as they are.
    condition = tuple(side // factor * pipeline.pose_scale_factor for side in size)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    output = pipeline(
        framed.reference,
        skeletons if condition == tuple(size) else framed.poses,
        generator=generator,
        height=size[1],
        width=size[0],
        frame_chunk_size=frame_chunk_size,
        output_type="np",
        **sampling,
    )
    frames = [(frame * 255).round().astype(np.uint8) for frame in output.frames[0]]  # the one video
    return Animation(
        frames,
        skeletons,
        framed.reference,
        framed.poses,
        float(fps or driving.fps),
        framed.aligned,
        framed.reference_cut,
        framed.framing,
    )


def grid_frames(animation: Animation) -> list[np.ndarray]:
    """reference | driving skeleton | result, side by side."""
    return [
        np.concatenate([animation.reference, skeleton, frame], axis=1)
        for skeleton, frame in zip(animation.skeletons, animation.frames)
    ]


def check_audio_choice(choice: str | None) -> None:
    """--audio is driving, none or a file with sound; a missing or silent file stops the run early."""
    if choice in (None, *AUDIO_CHOICES):
        return
    if not Path(choice).is_file():
        raise InputError(f"--audio {choice}: no such file; pass driving, none or an audio/video file with sound")
    if probe_audio(choice) is None:
        raise InputError(f"--audio {choice} has no sound; pass driving, none or a file with an audio stream")


def audio_cut(choice: str | None, driving: Driving, frames: int, fps: float) -> AudioCut | None:
    """The sound for `frames` output frames at `fps`: the driving video's (`driving`), none, or a file's.

    Cut on the driving timeline, [driving.start, + frames / fps): a file given instead of the driving
    video's own sound is taken to run with the driving video, so `--start` cuts it too."""
    if choice in (None, "none"):
        return None
    source = driving.source if choice == "driving" else Path(choice)
    if choice == "driving" and (not source.is_file() or is_image_path(source) or source.suffix.lower() == ".json"):
        return None  # pose files, image folders and photos have no sound
    check_audio_choice(None if choice == "driving" else choice)
    info = probe_audio(source)
    if info is None:
        return None  # a driving video without sound: the result is silent, as the driving video
    if driving.source_fps and abs(fps - driving.source_fps) > 1e-3:
        logger.warning(
            "the output plays at %g fps, the driving video at %g fps: the motion no longer matches its music "
            "(the sound is cut to the video's length)",
            fps,
            driving.source_fps,
        )
    if info.duration is not None and driving.start >= info.duration:
        logger.warning("%s has no sound after %.2f s: the result is silent", source, driving.start)
        return None
    return check_cut(AudioCut(source, driving.start, frames / fps))  # None: unusable, the result silent


def summary(animation: Animation, driving: Driving | None = None, audio: AudioCut | None = None) -> str:
    """One line on what was made and what happened on the way (the CLI's and the jobs report's)."""
    height, width = animation.frames[0].shape[:2]
    parts = [f"{len(animation.frames)} frames at {animation.fps:g} fps, {width}x{height}"]
    if animation.aligned:
        parts.append(f"aligned ({CUT_NOTE})" if animation.reference_cut else "aligned")
    elif animation.reference_cut:
        parts.append(CUT_NOTE)
    if driving is not None:
        missing = driving.missing
        if missing:
            parts.append(f"{missing} of {len(driving.poses)} driving frames had nobody detected (filled)")
        if driving.timing:
            parts.append(driving.timing)
        person = describe_person(driving.poses.person)
        if person:
            parts.append(person)
    if audio is not None:
        parts.append(f"audio from {audio.path.name} at {audio.start:.2f} s")
    return ", ".join(parts)


def describe_person(person: dict | None) -> str | None:
    """Whom the detector followed (`PoseSequence.person`, from `magicpose.poses.tracking`), in words."""
    if not person or "mode" not in person:
        return None
    first = person.get("first_frame", 0)
    if person["mode"] == "single":
        return f"followed the one person in the video (from driving frame {first})"
    choice = person.get("choice")
    among = person.get("people_first_frame")
    chosen = {"largest": "the largest", "center": "the most central"}.get(choice, f"person {choice} from the left")
    seen = person.get("people_seen")
    return f"followed {chosen} of {among} people on driving frame {first}" + (
        f" ({seen} people seen in all)" if seen and seen != among else ""
    )
