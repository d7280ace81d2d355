"""The puppet world: identities x motions x framings, rendered into videos with full ground truth.

A video is named by a `VideoSpec` (identity seed, motion seed, framing, size, fps); everything in
it is a pure function of the spec, frame by frame, so any frame can be made on its own (training
pairs need no disk) and the same spec always gives the same pixels. Seeds are split into disjoint
ranges: test identities and motions are never seen in training.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from magicpose.data.puppet.background import render_background
from magicpose.data.puppet.identity import Identity, sample_identity
from magicpose.data.puppet.motion import random_static_angles, sample_dance
from magicpose.data.puppet.render import PuppetImage, render_puppet
from magicpose.data.puppet.skeleton import articulate
from magicpose.poses.render import draw_openpose
from magicpose.poses.types import Pose, PoseSequence

#: Disjoint seed ranges [start, stop) for identities and motions of each split.
SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "val": range(1_000_000, 1_100_000),
    "test": range(2_000_000, 2_100_000),
}
FRAMINGS = ("full", "upper")
MOTIONS = ("dance", "static")


def split_of(seed: int) -> str:
    """The split whose seed range holds `seed`."""
    for name, seeds in SPLITS.items():
        if seed in seeds:
            return name
    raise ValueError(f"seed {seed} lies in no split; splits are {SPLITS}")


@dataclass(frozen=True)
class VideoSpec:
    """Everything that determines a puppet video."""

    identity_seed: int
    motion_seed: int
    framing: str = "full"
    motion: str = "dance"  # "dance": a continuous dance; "static": an independent random pose per frame
    width: int = 128
    height: int = 128
    fps: float = 15.0
    num_frames: int = 48

    def __post_init__(self):
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {self.framing!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, got {self.motion!r}")
        if split_of(self.identity_seed) != split_of(self.motion_seed):
            raise ValueError("identity and motion seeds must come from the same split")

    @property
    def split(self) -> str:
        return split_of(self.identity_seed)

    @property
    def video_id(self) -> str:
        return f"puppet-{self.identity_seed:07d}-{self.motion_seed:07d}-{self.motion}-{self.framing}"

    @property
    def background_seed(self) -> int:
        return self.identity_seed * 7_919 + self.motion_seed

    def to_dict(self) -> dict:
        return asdict(self)


def video_spec(split: str, index: int, **options) -> VideoSpec:
    """The `index`-th video of a split: identity and motion `index` of its seed range.

    The framing alternates (even: full body, odd: upper body) unless given.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    seeds = SPLITS[split]
    if not 0 <= index < len(seeds):
        raise ValueError(f"index {index} is outside the {split} split (0..{len(seeds) - 1})")
    options.setdefault("framing", FRAMINGS[index % 2])
    return VideoSpec(identity_seed=seeds.start + index, motion_seed=seeds.start + index, **options)


@dataclass(frozen=True)
class Camera:
    """World centimetres -> pixels: p = scale * x + offset; `floor_y`: the floor line in pixels (None: out of view)."""

    scale: float
    offset: np.ndarray
    floor_y: float | None


def camera_for(spec: VideoSpec, identity: Identity) -> Camera:
    """A fixed camera per video: full body (feet on a visible floor) or upper body (head to hips), jittered."""
    rng = np.random.default_rng([0xCA, spec.identity_seed, spec.motion_seed])
    p = identity.proportions
    zoom = rng.uniform(0.92, 1.05)
    centre_x = spec.width * (0.5 + rng.uniform(-0.08, 0.08))
    if spec.framing == "full":
        scale = zoom * 0.82 * spec.height / p.standing_height
        floor_y = spec.height * rng.uniform(0.9, 0.95)
        return Camera(scale, np.array([centre_x, floor_y]), floor_y)
    upper = p.torso + p.neck + 1.35 * p.head
    scale = zoom * 0.78 * spec.height / upper
    pelvis_y = spec.height * rng.uniform(0.05, 0.12) + scale * upper
    return Camera(scale, np.array([centre_x, pelvis_y + scale * (p.thigh + p.shin)]), None)


def visible_pose(pose: Pose, width: int, height: int) -> Pose:
    """The pose a detector could see: points outside the frame are marked missing (confidence 0)."""
    out = pose.copy()
    for name in Pose.PARTS:
        points = out.part(name)
        outside = (points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] > width - 1) | (points[:, 1] > height - 1)
        points[outside, 2] = 0.0
    return out


@functools.lru_cache(maxsize=32)
def _background(seed: int, width: int, height: int, floor_y: float | None) -> np.ndarray:
    image = render_background(seed, width, height, floor_y)
    image.setflags(write=False)
    return image


@dataclass
class PuppetFrame:
    """Ground truth of one frame: RGB, mask and part labels (`rendered`), and the visible pose."""

    rendered: PuppetImage
    pose: Pose

    @property
    def image(self) -> np.ndarray:
        return self.rendered.image

    @property
    def mask(self) -> np.ndarray:
        return self.rendered.mask

    @property
    def parts(self) -> np.ndarray:
        return self.rendered.parts

    def condition(self, **parts: bool) -> np.ndarray:
        """The OpenPose condition image of this frame's pose (what a pose ControlNet sees)."""

        height, width = self.image.shape[:2]
        return draw_openpose(self.pose, width, height, **parts)


class PuppetVideo:
    """A puppet video, rendered frame by frame on demand."""

    def __init__(self, spec: VideoSpec):
        self.spec = spec
        self.identity = sample_identity(spec.identity_seed)
        self.camera = camera_for(spec, self.identity)
        self._dance = sample_dance(spec.motion_seed) if spec.motion == "dance" else None

    def __len__(self) -> int:
        return self.spec.num_frames

    @property
    def background(self) -> np.ndarray:
        """The scene without the person (read-only): the known background."""
        return _background(self.spec.background_seed, self.spec.width, self.spec.height, self.camera.floor_y)

    def angles(self, index: int) -> np.ndarray:
        if self._dance is not None:
            return self._dance.angles_at(index / self.spec.fps)
        return random_static_angles(np.random.default_rng([0x57, self.spec.motion_seed, index]))

    def render_pose(self, index: int) -> Pose:
        """The full pose the puppet is drawn from, in pixels (points may lie outside the frame)."""
        world = articulate(self.identity.proportions, self.angles(index))
        return world.transformed(self.camera.scale, self.camera.offset)

    def frame(self, index: int) -> PuppetFrame:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} of a {len(self)}-frame video")
        pose = self.render_pose(index)
        rendered = render_puppet(self.identity, pose, self.background)
        return PuppetFrame(rendered=rendered, pose=visible_pose(pose, self.spec.width, self.spec.height))

    def poses(self) -> PoseSequence:
        frames = [visible_pose(self.render_pose(i), self.spec.width, self.spec.height) for i in range(len(self))]
        return PoseSequence(frames, self.spec.width, self.spec.height, self.spec.fps)
