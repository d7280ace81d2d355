"""From a reference photo and a driving motion to frames: the job behind `magicpose animate`, the demo
and the web app.

    photo ─ crop to the output frame ─ detect its pose ─┐
    driving video/poses ─ detect (or load) poses ───────┴─ align to the reference body ─ render
    skeletons ─ MagicPosePipeline ─ frames (+ the side-by-side grid)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from magicpose.errors import InputError
from magicpose.poses.framing import fit_image, fit_pose, fit_poses
from magicpose.poses.types import Pose, PoseSequence

logger = logging.getLogger(__name__)


@dataclass
class Animation:
    frames: list[np.ndarray]  # generated RGB uint8 frames
    skeletons: list[np.ndarray]  # the pose conditions, at the output size
    reference: np.ndarray  # the reference photo as the model saw it
    poses: PoseSequence  # the (aligned) driving poses in the output frame
    fps: float
    aligned: bool


def load_driving_poses(
    driving: str | Path, fps: float | None = None, max_frames: int | None = None, progress: bool = True
) -> PoseSequence:
    """Poses from our pose file / OpenPose JSON(s), or detected in a video, image folder or image."""
    from magicpose.media import is_image_path
    from magicpose.poses.openpose_json import load_poses

    driving = Path(driving)
    if not driving.exists():
        raise InputError(f"driving input {driving} does not exist; pass a video, an image folder or a poses.json")
    if driving.suffix.lower() == ".json" or (driving.is_dir() and any(driving.glob("*.json"))):
        sequence = load_poses(driving, fps=fps)
    else:
        from magicpose.poses.detect import PoseDetector

        with PoseDetector() as detector:
            if is_image_path(driving):
                from magicpose.media import read_image

                sequence = detector.detect_video([read_image(driving)], progress=False, fps=fps)
            else:
                sequence = detector.detect_video(driving, progress=progress, max_frames=max_frames)
        if fps:
            sequence.fps = float(fps)
    if len(sequence) == 0:
        raise InputError(f"{driving} has no pose frames")
    if not sequence.found.any():
        raise InputError(f"{driving} has no person in any frame; pass poses or a video that show a person")
    if max_frames is not None:
        sequence = PoseSequence(
            sequence.frames[:max_frames], sequence.width, sequence.height, sequence.fps, sequence.found[:max_frames]
        )
    return sequence


def reference_pose(reference: np.ndarray) -> Pose | None:
    from magicpose.poses.detect import PoseDetector

    with PoseDetector() as detector:
        return detector.detect_image(reference)


def prepare_driving(
    reference: np.ndarray, driving: PoseSequence, size: tuple[int, int], align: bool, known_pose: Pose | None = None
) -> tuple[PoseSequence, bool]:
    """The driving poses in the output frame, aligned to the reference body when asked and possible.

    The reference pose (`known_pose`, or else detected at the photo's full resolution) is mapped into
    the output frame.
    """
    from magicpose.poses.align import align_pose_sequence

    if align:
        pose = known_pose if known_pose is not None else reference_pose(reference)
        if pose is None or not len(pose.present_points()):
            logger.warning("no person found in the reference photo: the driving poses are used without alignment")
        else:
            photo_size = (reference.shape[1], reference.shape[0])
            return align_pose_sequence(driving, fit_pose(pose, photo_size, size), size), True
    return fit_poses(driving, size), False


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
    **sampling,
) -> Animation:
    """Animate `reference` (RGB uint8) with `driving` poses. Same inputs and seed give the same frames.

    `known_reference_pose` (in the photo's pixels) replaces pose detection on the photo for alignment.
    `sampling`: overrides of the model's own recipe, as `MagicPosePipeline.__call__` takes them
    (`num_inference_steps`, `guidance_scale`, `start_from_reference`, ...); None or absent: the model's."""
    from magicpose.poses.render import draw_openpose

    factor = pipeline.vae_scale_factor
    size = size or (pipeline.unet.config.sample_size * factor,) * 2
    if size[0] % factor or size[1] % factor:
        raise InputError(f"--size must be a multiple of {factor} on each side, got {size[0]}x{size[1]}")
    poses, aligned = prepare_driving(reference, driving, size, align, known_reference_pose)
    reference = fit_image(reference, size)
    previews = [draw_openpose(pose, *size) for pose in poses.frames]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    output = pipeline(
        reference,
        poses,  # the pipeline draws them at its pose ControlNet's input size
        generator=generator,
        height=size[1],
        width=size[0],
        frame_chunk_size=frame_chunk_size,
        output_type="np",
        **sampling,
    )
    frames = [(frame * 255).round().astype(np.uint8) for frame in output.frames]
    return Animation(frames, previews, reference, poses, float(fps or driving.fps), aligned)


def grid_frames(animation: Animation) -> list[np.ndarray]:
    """reference | driving skeleton | result, side by side."""
    return [
        np.concatenate([animation.reference, skeleton, frame], axis=1)
        for skeleton, frame in zip(animation.skeletons, animation.frames)
    ]
