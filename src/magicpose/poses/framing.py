"""Framing: how a photo (or a driving video) and its poses map into the output frame.

Every fit is one similarity, x' = scale * x + offset, from source pixels to output pixels, so the
image and its poses always move together (`Framing.image`, `Framing.pose`, `Framing.poses`):

* `pad`: the whole source, as large as fits, centred; the rest of the frame is filled with the
  source's mean border colour (a flat, neutral edge that the model does not take for a person).
* `crop`: the largest centred box of the output's shape, filling the frame (a person off centre can
  be cut out).
* `person`: a box of the output's shape at the crop's size, centred on the person (their keypoint
  box, raised for the top of the head, with a margin around) as far as the photo allows; when the
  person is too tall or wide for such a box, the smallest box of the output's shape that holds them
  and their margin, padded where it leaves the photo.

With the same aspect ratio in and out, all three are the same plain resize.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import PIL.Image

from magicpose.poses.types import Pose, PoseSequence

FIT_MODES = ("pad", "crop", "person")
PERSON_MARGIN = 0.1  # of the person box's larger side, on every side
HEAD_ABOVE_NOSE = 0.6  # the top of the head is about this many nose-to-neck lengths above the nose
NOSE, NECK = 0, 1

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class Framing:
    """Source pixels -> output pixels: x' = scale * x + offset, in a frame of `size` = (width, height)."""

    mode: str
    source_size: tuple[int, int]
    size: tuple[int, int]
    scale: float
    offset: tuple[float, float]

    @property
    def padded(self) -> bool:
        """Whether part of the output frame lies outside the source (and is filled)."""
        left, top, right, bottom = self.output_box((0, 0, *self.source_size))
        return left > 0.5 or top > 0.5 or right < self.size[0] - 0.5 or bottom < self.size[1] - 0.5

    def output_box(self, box: Box) -> Box:
        """A source box in output pixels."""
        (left, top, right, bottom), (dx, dy) = box, self.offset
        return left * self.scale + dx, top * self.scale + dy, right * self.scale + dx, bottom * self.scale + dy

    def image(self, image: np.ndarray) -> np.ndarray:
        """The source image in the output frame (Lanczos), padding filled with its mean border colour."""
        width, height = self.size
        visible = np.clip(self.output_box((0, 0, image.shape[1], image.shape[0])), 0, [width, height] * 2)
        left, top, right, bottom = (int(round(v)) for v in visible)
        if right <= left or bottom <= top:
            return np.broadcast_to(border_colour(image), (height, width, 3)).copy()
        # the source box behind exactly those output pixels, so the image lands where the poses do
        box = tuple((np.array([left, top, right, bottom], float) - np.tile(self.offset, 2)) / self.scale)
        box = tuple(np.clip(box, 0, [image.shape[1], image.shape[0]] * 2))
        resized = PIL.Image.fromarray(image).resize((right - left, bottom - top), PIL.Image.LANCZOS, box=box)
        if (left, top, right, bottom) == (0, 0, width, height):
            return np.asarray(resized)
        canvas = np.empty((height, width, 3), dtype=np.uint8)
        canvas[:] = border_colour(image)
        canvas[top:bottom, left:right] = np.asarray(resized)
        return canvas

    def pose(self, pose: Pose) -> Pose:
        return pose.transformed(self.scale, np.asarray(self.offset))

    def poses(self, sequence: PoseSequence) -> PoseSequence:
        """Every frame mapped; what else the sequence carries (found, the followed person) is kept."""
        frames = [self.pose(pose) for pose in sequence.frames]
        return dataclasses.replace(sequence, frames=frames, width=self.size[0], height=self.size[1])

    def cuts(self, pose: Pose) -> bool:
        """Whether the frame loses part of the person the source shows (by more than one output pixel)."""
        box = person_box([pose], self.source_size, margin=0.0)
        if box is None:
            return False
        left, top, right, bottom = self.output_box(box)
        return left < -1 or top < -1 or right > self.size[0] + 1 or bottom > self.size[1] + 1


def border_colour(image: np.ndarray) -> np.ndarray:
    """Mean colour of the outermost 2 % of the image: what padding is filled with."""
    height, width = image.shape[:2]
    band = max(1, round(0.02 * min(height, width)))
    strips = [image[:band].reshape(-1, 3), image[-band:].reshape(-1, 3)]
    strips += [image[:, :band].reshape(-1, 3), image[:, -band:].reshape(-1, 3)]
    return np.concatenate(strips).mean(axis=0).round().astype(np.uint8)


def _centred(mode: str, source_size: tuple[int, int], size: tuple[int, int], scale: float) -> Framing:
    offset = ((size[0] - scale * source_size[0]) / 2, (size[1] - scale * source_size[1]) / 2)
    return Framing(mode, tuple(source_size), tuple(size), float(scale), offset)


def pad_framing(source_size: tuple[int, int], size: tuple[int, int]) -> Framing:
    """The whole source, as large as fits, centred."""
    return _centred("pad", source_size, size, min(size[0] / source_size[0], size[1] / source_size[1]))


def crop_framing(source_size: tuple[int, int], size: tuple[int, int]) -> Framing:
    """The largest centred box of the output's shape."""
    return _centred("crop", source_size, size, max(size[0] / source_size[0], size[1] / source_size[1]))


def person_framing(
    source_size: tuple[int, int], size: tuple[int, int], box: Box | None, margin: float = PERSON_MARGIN
) -> Framing:
    """A box of the output's shape around `box` (the person, in source pixels; see `person_box`).

    At the crop's scale when the person fits in it, centred on them (with `margin` around) as far as
    the photo allows; else the smallest box that holds them and the margin, padded beyond the photo.
    No box: the centre crop."""
    if box is None:
        return dataclasses.replace(crop_framing(source_size, size), mode="person")
    width, height = source_size
    aspect = size[0] / size[1]
    left, top, right, bottom = box
    fits = right - left <= aspect * min(height, width / aspect) and bottom - top <= min(height, width / aspect)
    pad = margin * max(right - left, bottom - top)
    left, top = max(left - pad, 0.0), max(top - pad, 0.0)
    right, bottom = min(right + pad, float(width)), min(bottom + pad, float(height))
    if fits:  # the largest box of the output's shape inside the photo: no padding, the crop's scale
        crop_height = min(height, width / aspect)
    else:  # the person alone is too big for it: hold them and their margin, pad
        crop_height = max(bottom - top, (right - left) / aspect)
    crop_width = aspect * crop_height
    x = _place((left + right) / 2 - crop_width / 2, crop_width, width)
    y = _place((top + bottom) / 2 - crop_height / 2, crop_height, height)
    scale = size[0] / crop_width
    return Framing("person", tuple(source_size), tuple(size), float(scale), (-x * scale, -y * scale))


def _place(start: float, length: float, limit: float) -> float:
    """Shift a 1-D window to lie inside [0, limit], or, when it is longer, to hold all of it."""
    low, high = (0.0, limit - length) if length <= limit else (limit - length, 0.0)
    return min(max(start, low), high)


def person_box(poses: Iterable[Pose], source_size: tuple[int, int], margin: float = 0.0) -> Box | None:
    """The box of every present keypoint of `poses`, raised for the top of the head (keypoints stop at
    the eyes and brows) and widened by `margin` of its larger side, inside the source; None if empty."""
    points, tops = [], []
    for pose in poses:
        present = pose.present_points()
        if len(present):
            points.append(present)
        if pose.body[NOSE, 2] > 0 and pose.body[NECK, 2] > 0:
            tops.append(pose.body[NOSE, 1] - HEAD_ABOVE_NOSE * abs(pose.body[NECK, 1] - pose.body[NOSE, 1]))
    if not points:
        return None
    points = np.concatenate(points)
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    top = min([top, *tops])
    pad = margin * max(right - left, bottom - top)
    width, height = source_size
    return (
        max(float(left - pad), 0.0),
        max(float(top - pad), 0.0),
        min(float(right + pad), float(width)),
        min(float(bottom + pad), float(height)),
    )


def fit(
    mode: str, source_size: tuple[int, int], size: tuple[int, int], poses: Iterable[Pose] | None = None
) -> Framing:
    """The framing for a fit mode; `person` frames the box of `poses` (all of them: a whole dance stays in)."""
    if mode == "pad":
        return pad_framing(source_size, size)
    if mode == "crop":
        return crop_framing(source_size, size)
    if mode == "person":
        return person_framing(source_size, size, person_box(poses or [], source_size))
    raise ValueError(f"unknown fit mode {mode!r}; choose one of {', '.join(FIT_MODES)}")
