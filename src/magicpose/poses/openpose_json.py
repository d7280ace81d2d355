"""Read and write poses in the OpenPose JSON convention.

OpenPose writes one file per frame: `{"people": [{"pose_keypoints_2d": [x, y, c] * 18,
"hand_left_keypoints_2d": [x, y, c] * 21, "hand_right_keypoints_2d": ..., "face_keypoints_2d":
[x, y, c] * 70}]}` in pixels (COCO-18 body order; an empty list means the part is absent).
controlnet_aux adds `canvas_width` / `canvas_height`, which we read when present.

Our sequence file keeps a whole video in one JSON, each frame in that same per-person layout:

    {"format": "magicpose.poses", "version": 1, "fps": 30.0, "width": 512, "height": 768,
     "frames": [{"found": true, "people": [{"pose_keypoints_2d": [...], ...}]}, ...]}

`found` is false where the detector saw nobody and the pose was filled in (held or interpolated).
Sequences from a video detector also carry `"person"`, whom it followed (`magicpose.poses.tracking.
person_record`: how they were chosen, on which frame, among how many, and their box per frame, null
where unseen); files without it load with `person` None.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from magicpose.errors import InputError
from magicpose.files import atomic_path, not_found
from magicpose.poses import keypoint_layouts as layouts
from magicpose.poses.fill import fill_missing
from magicpose.poses.types import NUM_BODY, NUM_FACE, NUM_HAND, Pose, PoseSequence

SEQUENCE_FORMAT = "magicpose.poses"
SEQUENCE_VERSION = 1
DEFAULT_FPS = 30.0
FPS_RANGE = (1.0, 1000.0)  # a pose file's frame rate: below 1 or above 1000 is a broken file, not a video
MAX_CANVAS = 16384  # the largest frame side a pose file may record (pixels)
MAX_COORDINATE = 1e5  # pixels; beyond it a keypoint is garbage (an overflow, a unit mix-up), not a position
OUTSIDE_FRAMES = 2  # present points may lie this many frame sizes outside the frame (tools that crop), no more

# OpenPose key -> (Pose attribute, number of points)
PART_KEYS = {
    "pose_keypoints_2d": ("body", NUM_BODY),
    "hand_left_keypoints_2d": ("left_hand", NUM_HAND),
    "hand_right_keypoints_2d": ("right_hand", NUM_HAND),
    "face_keypoints_2d": ("face", NUM_FACE),
}


def pose_to_person(pose: Pose) -> dict:
    """One OpenPose `people[i]` entry; absent parts become empty lists, as OpenPose writes them.

    Values keep full float precision: rendering truncates pixels, so rounding could move a point.
    """
    person = {}
    for key, (attribute, _) in PART_KEYS.items():
        points = pose.part(attribute)
        person[key] = [float(v) for v in points.reshape(-1)] if (points[:, 2] > 0).any() else []
    return person


def person_to_pose(person: dict, where: str = "pose") -> Pose:
    """Parse one OpenPose `people[i]` entry. Missing keys, `null` and empty lists mean absent parts; other
    tools' layouts (BODY_25, COCO-17, COCO-WholeBody, 68-point faces) are mapped (`keypoint_layouts`)."""
    if not isinstance(person, dict):
        raise InputError(f"{where}: each entry of 'people' must be an object with OpenPose keypoint lists")
    parts, whole = {}, {}
    for key, (attribute, _) in PART_KEYS.items():
        points = _keypoints(person.get(key), f"{where} {key}", attribute)
        if points is not None and attribute == "body" and len(points) == layouts.WHOLE_BODY:
            whole = layouts.split_whole_body(points)
            points = whole["body"]
        parts[attribute] = points
    for attribute, points in whole.items():  # a whole-body list fills the parts the person gives no list for
        if parts.get(attribute) is None:
            parts[attribute] = points
    if parts["body"] is not None:
        parts["body"] = layouts.body_to_coco_18(parts["body"])
    if parts["face"] is not None:
        parts["face"] = layouts.face_to_70(parts["face"])
    return Pose(**parts)


def _keypoints(values, where: str, attribute: str) -> np.ndarray | None:
    """A flat [x, y, confidence, ...] list as (N, 3), None when absent; refuses nulls, text, non-finite or
    absurd numbers and unknown point counts, naming the value."""
    if values is None:
        return None
    if not isinstance(values, list):
        raise InputError(
            f"{where} must be a flat list of numbers [x, y, confidence, ...], got {type(values).__name__}"
        )
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{where}: value {index} is {json.dumps(value)}; keypoints must be finite numbers")
        if index % 3 != 2 and abs(value) > MAX_COORDINATE:
            raise InputError(
                f"{where}: value {index} is {value:g}, not a pixel coordinate (more than {MAX_COORDINATE:g} "
                "from the frame)"
            )
    if not values:
        return None
    if len(values) % 3 or len(values) // 3 not in layouts.counts(attribute):
        raise InputError(
            f"{where} must hold {layouts.EXPECTED[attribute]} (x, y, confidence) triples, got {len(values)} numbers"
        )
    return np.asarray(values, dtype=np.float64).reshape(-1, 3)


def _person_size(pose: Pose) -> float:
    points = pose.present_points()
    if len(points) == 0:
        return 0.0
    extent = points.max(axis=0) - points.min(axis=0)
    return float(extent[0] * extent[1]) + len(points)  # bounding-box area, ties broken by point count


def main_person(people: Sequence[Pose]) -> Pose | None:
    """The person a single-person sequence follows: the one with the largest bounding box."""
    people = [pose for pose in people if len(pose.present_points())]
    return max(people, key=_person_size) if people else None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise not_found(path, "pose file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path} as JSON ({error}); pass a pose sequence or OpenPose JSON") from None


def _natural_key(path: Path):
    return [int(token) if token.isdigit() else token.lower() for token in re.split(r"(\d+)", path.name)]


def _number(data: dict, key: str, where, low: float, high: float, whole: bool = False) -> float:
    """`data[key]`, refused (naming the file and field) unless a finite number from `low` to `high`."""
    value = data.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
        or (whole and value != int(value))
    ):
        kind = "a whole number" if whole else "a number"
        raise InputError(f"{where}: '{key}' must be {kind} from {low:g} to {high:g}, got {json.dumps(value)}")
    return value


def _canvas_size(data: dict, where) -> tuple[int, int] | None:
    if data.get("canvas_width") is None and data.get("canvas_height") is None:
        return None
    return tuple(
        int(_number(data, key, where, 1, MAX_CANVAS, whole=True)) for key in ("canvas_width", "canvas_height")
    )


def _people(entry, where: str) -> list[Pose]:
    """The people of one frame (an OpenPose file or a frame of our sequence file)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("people", []), list):
        raise InputError(f"{where} must be an object with a 'people' list, got {json.dumps(entry)[:40]}")
    return [person_to_pose(person, f"{where} people[{i}]") for i, person in enumerate(entry.get("people", []))]


def load_people(path: str | os.PathLike) -> tuple[list[Pose], tuple[int, int] | None]:
    """All people of one OpenPose per-frame JSON, and its canvas size if the file records one."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise InputError(f"{path} is not an OpenPose JSON file: it has no 'people' list")
    return _people(data, str(path)), _canvas_size(data, path)


def _load_sequence_file(path: Path, data: dict) -> PoseSequence:
    version = data.get("version")
    if version != SEQUENCE_VERSION:
        raise InputError(f"{path}: pose sequence version {version!r} is not supported (expected {SEQUENCE_VERSION})")
    width, height = (int(_number(data, key, path, 1, MAX_CANVAS, whole=True)) for key in ("width", "height"))
    fps = float(_number(data, "fps", path, *FPS_RANGE))
    entries = data.get("frames")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: 'frames' must be a list with at least one frame")
    poses, marked = [], []
    for index, entry in enumerate(entries):
        poses.append(main_person(_people(entry, f"{path} frame {index}")))
        found = entry.get("found", True)
        if not isinstance(found, bool):
            raise InputError(f"{path} frame {index}: 'found' must be true or false, got {json.dumps(found)}")
        marked.append(found)
    person = data.get("person")
    if person is not None:
        boxes = person.get("boxes") if isinstance(person, dict) else None
        if not isinstance(boxes, list) or len(boxes) != len(entries):
            raise InputError(f"{path}: 'person' must be an object whose 'boxes' list has one entry per frame")
    frames, found = _filled(poses)
    # a frame marked not found keeps the pose its writer filled in, and counts as filled
    found &= np.asarray(marked, dtype=bool)
    _check_extent(frames, (width, height), [f"{path} frame {index}" for index in range(len(frames))])
    return PoseSequence(frames, width, height, fps, found, person=person)


def _filled(poses: list[Pose | None]) -> tuple[list[Pose], np.ndarray]:
    """Frames with nobody filled from their neighbours (`fill.fill_missing`); all empty when nobody is in any."""
    if not any(pose is not None for pose in poses):
        return [Pose() for _ in poses], np.zeros(len(poses), dtype=bool)
    return fill_missing(poses)


def _check_extent(frames: list[Pose], size: tuple[int, int], labels: list[str]) -> None:
    """Refuse a present point far outside the frame: it would stretch the skeleton over the whole video."""
    low, high = -OUTSIDE_FRAMES * np.asarray(size), (1 + OUTSIDE_FRAMES) * np.asarray(size)
    for label, pose in zip(labels, frames):
        for part in Pose.PARTS:
            points = pose.part(part)
            bad = (points[:, 2] > 0) & ((points[:, :2] < low) | (points[:, :2] > high)).any(axis=1)
            if bad.any():
                x, y = points[np.flatnonzero(bad)[0], :2]
                raise InputError(
                    f"{label} {part}: a keypoint at ({x:g}, {y:g}) lies far outside the "
                    f"{size[0]}x{size[1]} frame; fix the file (or pass the frame size it was made for)"
                )


def load_poses(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    infer_size: bool = False,
) -> PoseSequence:
    """Load a pose sequence from our sequence file, one OpenPose JSON, or a folder of them.

    Per-frame OpenPose files carry no fps and often no frame size: `size` (width, height) is then
    required (it is taken from `canvas_width`/`canvas_height` when the files have them) and `fps`
    defaults to 30. Keypoints normalised to 0..1 are scaled to that size. Frames with several people keep
    the largest one; frames with nobody are filled from their neighbours and marked not found.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"), key=_natural_key)
        if not files:
            raise InputError(f"{path} holds no .json files; pass a folder of OpenPose per-frame JSON files")
    elif path.exists():
        data = _read_json(path)
        if isinstance(data, dict) and data.get("format") == SEQUENCE_FORMAT:
            sequence = _load_sequence_file(path, data)
            if fps is not None:
                sequence.fps = float(fps)
            return sequence
        files = [path]
    else:
        raise not_found(path, "pose file")

    poses, canvas = [], None
    for file in files:
        people, file_canvas = load_people(file)
        canvas = canvas or file_canvas
        poses.append(main_person(people))
    frames, found = _filled(poses)
    size = size or canvas
    points = [pose.present_points() for pose in frames if len(pose.present_points())]
    if size is not None and points and np.concatenate(points).max() <= 1.0:
        frames = [pose.transformed(np.asarray(size, dtype=np.float64), np.zeros(2)) for pose in frames]
    if size is None and infer_size:
        size = size_from_extent(frames, path)
    if size is None:
        raise InputError(
            f"{path} does not record the frame size (no canvas_width/canvas_height); pass it, e.g. --size 512x768"
        )
    _check_extent(frames, size, [str(file) for file in files])
    return PoseSequence(frames, int(size[0]), int(size[1]), float(fps or DEFAULT_FPS), found)


def size_from_extent(frames: list[Pose], path) -> tuple[int, int] | None:
    """A canvas for OpenPose files that record none: the keypoints' extent plus a margin, rounded up to a
    multiple of 8, with a warning (the true frame may be larger). None for normalised (0..1) keypoints."""
    points = [pose.present_points() for pose in frames if len(pose.present_points())]
    if not points:
        return None
    extent = np.concatenate(points).max(axis=0)
    if extent.max() <= 1.0:
        raise InputError(
            f"{path} holds normalised keypoints (0..1) and no frame size; pass the video's size, "
            "e.g. --pose-size 720x1280"
        )
    width, height = (int(np.ceil(value * 1.05 / 8) * 8) for value in extent)
    warnings.warn(
        f"{path} does not record its frame size; assuming {width}x{height} from the keypoints' extent "
        "(pass --pose-size WxH, the driving video's size, if the skeleton sits wrongly)",
        stacklevel=3,
    )
    return width, height


def sequence_to_dict(sequence: PoseSequence) -> dict:
    """Our sequence-file layout as plain JSON data."""
    data = {
        "format": SEQUENCE_FORMAT,
        "version": SEQUENCE_VERSION,
        "fps": float(sequence.fps),
        "width": int(sequence.width),
        "height": int(sequence.height),
        "frames": [
            {"found": bool(found), "people": [pose_to_person(pose)] if len(pose.present_points()) else []}
            for pose, found in zip(sequence.frames, sequence.found)
        ],
    }
    if sequence.person is not None:
        data["person"] = sequence.person
    return data


def save_poses(sequence: PoseSequence, path: str | os.PathLike) -> None:
    """Write the sequence file atomically (the file appears whole or not at all)."""
    if not math.isfinite(sequence.fps):
        raise ValueError("fps must be finite")
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(sequence_to_dict(sequence), handle, separators=(",", ":"))
