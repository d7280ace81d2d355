"""Pictures of the puppet world for people: a contact sheet of identities, a motion strip, a ground-truth panel."""

from __future__ import annotations

import numpy as np

from magicpose.data.puppet.parts import Part
from magicpose.data.puppet.world import PuppetVideo, video_spec

# A colour per part label for the part-map panel.
PART_COLOURS = np.array(
    [
        [0, 0, 0],
        [230, 180, 150],
        [90, 50, 20],
        [40, 120, 220],
        [220, 60, 60],
        [250, 220, 40],
        [255, 255, 255],
        [0, 200, 120],
        [120, 0, 160],
        [255, 110, 180],
        [120, 20, 20],
    ],
    dtype=np.uint8,
)
assert len(PART_COLOURS) == len(Part)


def grid(tiles: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    """Tiles of equal size in rows of `columns`, separated by white gaps."""
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet[
            row * (height + gap) : row * (height + gap) + height,
            column * (width + gap) : column * (width + gap) + width,
        ] = tile
    return sheet


def contact_sheet(
    split: str = "train", count: int = 24, columns: int = 8, size: int = 128, frame: int = 10
) -> np.ndarray:
    """One frame of each of the first `count` videos of a split (full-body and upper-body alternate)."""
    tiles = [
        PuppetVideo(video_spec(split, i, width=size, height=size, num_frames=frame + 1)).frame(frame).image
        for i in range(count)
    ]
    return grid(tiles, columns)


def motion_strip(
    split: str = "test", index: int = 0, count: int = 8, step: int = 3, size: int = 128, framing: str = "full"
) -> np.ndarray:
    """Frames 0, step, 2 step, ... of one dance: the RGB frames over their OpenPose conditions."""
    video = PuppetVideo(video_spec(split, index, width=size, height=size, num_frames=count * step, framing=framing))
    frames = [video.frame(i * step) for i in range(count)]
    return grid([f.image for f in frames] + [f.condition() for f in frames], count)


def ground_truth_panel(split: str = "test", index: int = 1, frame: int = 5, size: int = 128) -> np.ndarray:
    """What the world knows about one frame: RGB, OpenPose condition, person mask, part labels, empty background."""
    video = PuppetVideo(video_spec(split, index, width=size, height=size, num_frames=frame + 1))
    sample = video.frame(frame)
    mask = np.repeat(sample.mask[..., None].astype(np.uint8) * 255, 3, axis=2)
    return grid([sample.image, sample.condition(), mask, PART_COLOURS[sample.parts], np.asarray(video.background)], 5)
