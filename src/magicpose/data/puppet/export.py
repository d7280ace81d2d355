"""Write puppet videos into the dataset layout, with every piece of ground truth the world knows."""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from magicpose.data.layout import META, VideoFolderWriter
from magicpose.data.puppet.world import PuppetVideo, VideoSpec, video_spec


def export_video(spec: VideoSpec, root: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Frames, masks, part labels, poses, the empty background and meta (spec, identity) of one video."""
    video = PuppetVideo(spec)
    poses = video.poses()
    with VideoFolderWriter(root, spec.video_id, overwrite=overwrite) as writer:
        for index in range(len(video)):
            frame = video.frame(index)
            writer.add_frame(frame.image, mask=frame.mask, parts=frame.parts)
        meta = {"source": "puppet", "split": spec.split, "spec": spec.to_dict(), "identity": video.identity.to_dict()}
        return writer.finish(poses, meta=meta, background=video.background)


def export_split(
    root: str | os.PathLike, split: str, count: int, *, start: int = 0, progress: bool = True, **options
) -> list[Path]:
    """Videos `start` .. `start + count - 1` of a split; videos already in `root` are kept (resumable)."""
    folders = []
    for index in tqdm(range(start, start + count), desc=f"puppets ({split})", unit="video", disable=not progress):
        spec = video_spec(split, index, **options)
        folder = Path(root) / spec.video_id
        if not (folder / META).is_file():
            folder = export_video(spec, root, overwrite=True)
        folders.append(folder)
    return folders
