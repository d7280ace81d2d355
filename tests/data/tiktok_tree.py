"""A tiny TikTok-style folder tree for tests."""

import numpy as np

from magicpose.media import write_image


def make_tiktok_tree(root, videos=2, frames=3, size=(40, 32)):
    rng = np.random.default_rng(0)
    for v in range(videos):
        for f in range(frames):
            write_image(
                root / "train_set" / f"{v:05d}" / f"{f + 1:04d}.png",
                rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8),
            )
            write_image(
                root / "pose_map_train_set" / f"{v:05d}" / f"{f + 1:04d}.png",
                np.full((*size[::-1], 3), 7 * f, np.uint8),
            )
    # A frame without a pose map is left out.
    write_image(root / "train_set" / "00000" / "0099.png", np.zeros((*size[::-1], 3), np.uint8))
