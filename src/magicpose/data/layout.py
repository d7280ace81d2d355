"""Our on-disk dataset layout: the writer, and its reader through the shared interface (`data.interface`).

    ROOT/VIDEO_ID/frames/000000.png     RGB frames
    ROOT/VIDEO_ID/poses.json            the pose sequence (`magicpose.poses.openpose_json.save_poses`)
    ROOT/VIDEO_ID/masks/000000.png      person masks (optional; 255 = person)
    ROOT/VIDEO_ID/parts/000000.png      part labels (optional; puppet world, values of `Part`)
    ROOT/VIDEO_ID/background.png        the scene without the person (optional; puppet world)
    ROOT/VIDEO_ID/meta.json             source, split, fps, size, frame count, anything else

A video folder is written under a temporary name and renamed when complete, so a crash never
leaves a half-written video that readers would take for a whole one. `meta.json` is the marker
of a complete video. Readers load nothing until a frame is asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from magicpose.data.interface import FrameSample, VideoCollection, VideoRecord
from magicpose.errors import InputError
from magicpose.media import read_image
from magicpose.poses.openpose_json import load_poses, save_poses
from magicpose.poses.types import PoseSequence

FRAMES, MASKS, PARTS = "frames", "masks", "parts"
POSES, META, BACKGROUND = "poses.json", "meta.json", "background.png"


def _frame_name(index: int) -> str:
    return f"{index:06d}.png"


def _write_png(path: Path, image: np.ndarray) -> None:
    array = np.asarray(image)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise InputError(f"cannot write {path}; check that the output folder is writable")


def _read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"cannot read {path} as an image; the dataset folder is damaged, rebuild it")
    return image


class VideoFolderWriter:
    """Write one video folder; it appears under its name only when `finish` succeeds.

    with VideoFolderWriter(root, "dance-001") as writer:
        for frame, mask in ...:
            writer.add_frame(frame, mask=mask)
        writer.finish(poses, meta={"source": "puppet"})
    """

    def __init__(self, root: str | os.PathLike, video_id: str, *, overwrite: bool = False):
        if not video_id or "/" in video_id or video_id.startswith("."):
            raise InputError(f"bad video id {video_id!r}; use a plain folder name")
        self.root = Path(root)
        self.final = self.root / video_id
        if self.final.exists() and not overwrite:
            raise InputError(f"{self.final} already exists; remove it or pass overwrite")
        self.overwrite = overwrite
        self.video_id = video_id
        self.count = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=f".{video_id}.", suffix=".partial", dir=self.root))
        except OSError as error:
            raise InputError(f"cannot write to {self.root}: {error.strerror}; choose a writable folder") from error
        (self.folder / FRAMES).mkdir()
        self._size: tuple[int, int] | None = None

    def add_frame(self, image: np.ndarray, *, mask: np.ndarray | None = None, parts: np.ndarray | None = None) -> None:
        height, width = image.shape[:2]
        if self._size is None:
            self._size = (width, height)
        elif self._size != (width, height):
            raise ValueError(
                f"frame {self.count} is {width}x{height}, earlier frames are {self._size[0]}x{self._size[1]}"
            )
        name = _frame_name(self.count)
        _write_png(self.folder / FRAMES / name, image)
        for folder, extra in ((MASKS, mask), (PARTS, parts)):
            if extra is not None:
                (self.folder / folder).mkdir(exist_ok=True)
                values = np.asarray(extra)
                _write_png(
                    self.folder / folder / name, values.astype(np.uint8) * 255 if values.dtype == bool else values
                )
        self.count += 1

    def finish(
        self, poses: PoseSequence | None, meta: dict | None = None, background: np.ndarray | None = None
    ) -> Path:
        """Write poses, background and meta.json, then move the folder into place."""
        if self.count == 0:
            raise InputError(f"video {self.video_id} has no frames")
        if poses is not None:
            if len(poses) != self.count:
                raise ValueError(f"{len(poses)} poses for {self.count} frames")
            save_poses(poses, self.folder / POSES)
        if background is not None:
            _write_png(self.folder / BACKGROUND, background)
        width, height = self._size
        fps = float(poses.fps) if poses is not None else float((meta or {}).get("fps", 30.0))
        record = {"video_id": self.video_id, "num_frames": self.count, "width": width, "height": height, "fps": fps}
        record.update(meta or {})
        (self.folder / META).write_text(json.dumps(record, indent=1, sort_keys=True))
        if self.final.exists() and self.overwrite:
            shutil.rmtree(self.final)
        os.replace(self.folder, self.final)
        return self.final

    def __enter__(self) -> VideoFolderWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.folder.exists():  # not finished: leave nothing behind
            shutil.rmtree(self.folder, ignore_errors=True)


class LayoutVideo(VideoRecord):
    """A video folder of the layout; files are read when a frame is asked for."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.is_file():
            raise InputError(f"{self.folder} is not a complete video folder (no {META}); rebuild it")
        self.meta = json.loads(meta_path.read_text())
        self.video_id = self.folder.name
        self.num_frames = int(self.meta["num_frames"])
        self.fps = float(self.meta["fps"])
        self.width, self.height = int(self.meta["width"]), int(self.meta["height"])
        self._poses: PoseSequence | None = None

    @property
    def poses(self) -> PoseSequence | None:
        if self._poses is None and (self.folder / POSES).is_file():
            self._poses = load_poses(self.folder / POSES)
        return self._poses

    @property
    def background(self) -> np.ndarray | None:
        path = self.folder / BACKGROUND
        return read_image(path) if path.is_file() else None

    def sample(self, index: int) -> FrameSample:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} of {self.video_id}, which has {self.num_frames}")
        name = _frame_name(index)
        poses = self.poses
        mask_path, parts_path = self.folder / MASKS / name, self.folder / PARTS / name
        return FrameSample(
            image=read_image(self.folder / FRAMES / name),
            pose=poses[index] if poses is not None else None,
            mask=_read_gray(mask_path) > 127 if mask_path.is_file() else None,
            parts=_read_gray(parts_path) if parts_path.is_file() else None,
        )


class LayoutDataset(VideoCollection):
    """Every complete video folder under `root` (sorted by name), optionally only one split."""

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"dataset folder not found: {self.root}; build one with `magicpose data prepare`")
        folders = sorted(
            p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / META).is_file()
        )
        self.videos = [LayoutVideo(folder) for folder in folders]
        if split is not None:
            self.videos = [video for video in self.videos if video.meta.get("split") == split]
        if not self.videos:
            which = f" of split {split!r}" if split else ""
            raise InputError(f"{self.root} holds no video folders{which}; build them with `magicpose data prepare`")

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> LayoutVideo:
        return self.videos[index]
