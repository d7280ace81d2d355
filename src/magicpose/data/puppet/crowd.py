"""Several puppets in one video, with known identities: the ground truth for person choice and tracking.

Each puppet dances its own dance while its whole body slides along a straight path; the renderer
composes onto any image, so the puppets are drawn back to front, each over the frame so far (the
later one occludes the earlier). Every puppet keeps its full pose (occluded points included) and
its visible mask, so a tracker can be scored on who it followed in every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from magicpose.data.puppet.render import render_puppet
from magicpose.data.puppet.world import PuppetVideo, VideoSpec, video_spec, visible_pose
from magicpose.poses.types import Pose, PoseSequence


@dataclass
class CrowdClip:
    """RGB frames, and per puppet (back to front) its poses in frame pixels and its visible masks."""

    frames: list[np.ndarray]
    poses: list[PoseSequence]  # points outside the frame are missing; occluded points are kept
    masks: list[list[np.ndarray]]  # (H, W) bool per frame: the pixels where that puppet is seen
    fps: float

    def box(self, puppet: int, index: int) -> np.ndarray:
        """(x0, y0, x1, y1) around the puppet's present keypoints in frame `index`."""
        points = self.poses[puppet][index].present_points()
        return np.concatenate([points.min(axis=0), points.max(axis=0)])


def crowd_clip(
    specs: Sequence[VideoSpec],
    paths: Sequence[tuple[float, float]],
    *,
    scales: Sequence[float] | None = None,
) -> CrowdClip:
    """Puppets `specs` (same size, fps and length; the first one's scene) drawn back to front.

    `paths[k]` = (start, end) horizontal shift of puppet k in pixels, linear over the clip;
    `scales[k]` shrinks puppet k about its feet (a person further away).
    """
    if len(specs) != len(paths) or not specs:
        raise ValueError("give one (start, end) path per puppet")
    videos = [PuppetVideo(spec) for spec in specs]
    first = specs[0]
    if any(
        (s.width, s.height, s.fps, s.num_frames) != (first.width, first.height, first.fps, first.num_frames)
        for s in specs
    ):
        raise ValueError("the puppets' videos must share size, fps and length")
    scales = [1.0] * len(specs) if scales is None else list(scales)
    count, background = first.num_frames, videos[0].background
    frames, masks = [], [[] for _ in specs]
    truth: list[list[Pose]] = [[] for _ in specs]
    for index in range(count):
        t = index / max(count - 1, 1)
        image, seen = background, []
        for k, video in enumerate(videos):
            pose = video.render_pose(index)
            feet = np.array([video.camera.offset[0], video.camera.offset[1]])
            shift = np.array([paths[k][0] + t * (paths[k][1] - paths[k][0]), 0.0])
            pose = pose.transformed(scales[k], (1 - scales[k]) * feet + shift)
            rendered = render_puppet(video.identity, pose, image)
            image = rendered.image
            seen = [mask & ~rendered.mask for mask in seen] + [rendered.mask]
            truth[k].append(visible_pose(pose, first.width, first.height))
        frames.append(image)
        for k, mask in enumerate(seen):
            masks[k].append(mask)
    poses = [PoseSequence(t, first.width, first.height, first.fps) for t in truth]
    return CrowdClip(frames=frames, poses=poses, masks=masks, fps=first.fps)


def crossing_clip(
    num_frames: int = 40, width: int = 384, height: int = 256, fps: float = 15.0, first: int = 0, second: int = 1
) -> CrowdClip:
    """Two test-split full-body puppets walking past each other: puppet 1 (in front) crosses puppet 0."""
    specs = [
        video_spec("test", index, framing="full", width=width, height=height, fps=fps, num_frames=num_frames)
        for index in (first, second)
    ]
    videos = [PuppetVideo(spec) for spec in specs]
    # Start a quarter of the width from each side (relative to where each camera put its puppet).
    left, right = 0.22 * width, 0.78 * width
    paths = [
        (left - videos[0].camera.offset[0], right - videos[0].camera.offset[0]),
        (right - videos[1].camera.offset[0], left - videos[1].camera.offset[0]),
    ]
    return crowd_clip(specs, paths)
