"""The puppet world as a `VideoCollection`: the same interface as a dataset folder, with no disk.

Video k of a split is `video_spec(split, k)`; frames are rendered when asked for, so training can
draw pairs and clips from hundreds of thousands of identities without storing any of them.
"""

from __future__ import annotations

from magicpose.data.interface import FrameSample, VideoCollection, VideoRecord
from magicpose.data.puppet.world import FRAMINGS, SPLITS, PuppetVideo, video_spec


class PuppetRecord(VideoRecord):
    def __init__(self, video: PuppetVideo):
        self.video = video
        spec = video.spec
        self.video_id, self.num_frames, self.fps = spec.video_id, spec.num_frames, spec.fps
        self.width, self.height = spec.width, spec.height
        self.meta = {"source": "puppet", "split": spec.split, "spec": spec.to_dict()}

    @property
    def background(self):
        return self.video.background

    def sample(self, index: int) -> FrameSample:
        frame = self.video.frame(index)
        return FrameSample(image=frame.image, pose=frame.pose, mask=frame.mask, parts=frame.parts)


class PuppetVideos(VideoCollection):
    """Videos of one split of the puppet world.

    `framing`: "full", "upper", or None to alternate; `motion`: "dance" (consecutive frames of a
    dance, for pairs and clips) or "static" (an independent random pose per frame); `count` limits
    the number of videos (default: the whole split's seed range).
    """

    def __init__(
        self,
        split: str = "train",
        *,
        width: int = 128,
        height: int = 128,
        fps: float = 15.0,
        num_frames: int = 120,
        framing: str | None = None,
        motion: str = "dance",
        count: int | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
        if framing is not None and framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS} or None, got {framing!r}")
        self.split, self.framing, self.motion = split, framing, motion
        self.options = {"width": width, "height": height, "fps": fps, "num_frames": num_frames, "motion": motion}
        self.count = len(SPLITS[split]) if count is None else min(int(count), len(SPLITS[split]))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> PuppetRecord:
        if not 0 <= index < self.count:
            raise IndexError(f"video {index} of {self.count}")
        options = dict(self.options)
        if self.framing is not None:
            options["framing"] = self.framing
        return PuppetRecord(PuppetVideo(video_spec(self.split, index, **options)))
