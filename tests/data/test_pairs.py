"""Training pairs and clips: shapes and ranges, determinism, same crop, pose masking, all sources alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicpose.data.layout import LayoutDataset
from magicpose.data.pairs import ClipDataset, CropBox, PairDataset, crop_image, crop_pose
from magicpose.data.puppet.export import export_video
from magicpose.data.puppet.videos import PuppetVideos
from magicpose.data.puppet.world import video_spec
from magicpose.data.tiktok import TikTokDataset
from magicpose.poses.render import draw_openpose
from magicpose.poses.types import Pose
from tests.data.tiktok_tree import make_tiktok_tree


def test_puppet_pairs_have_the_documented_shapes_and_ranges():
    item = PairDataset(PuppetVideos("train"), size=64, crop="random", seed=3)[5]
    assert item["reference"].shape == item["target"].shape == item["pose_image"].shape == (3, 64, 64)
    assert item["mask"].shape == (1, 64, 64)
    assert -1 <= item["reference"].min() and item["reference"].max() <= 1 and item["reference"].min() < -0.2
    assert 0 <= item["pose_image"].min() and item["pose_image"].max() <= 1 and item["pose_image"].max() > 0.5
    assert set(torch.unique(item["mask"]).tolist()) == {0.0, 1.0}
    assert item["frames"][0] != item["frames"][1]
    assert not torch.equal(item["reference"], item["target"])


def test_pairs_are_deterministic_by_seed_and_index():
    videos = PuppetVideos("train")
    first, again = PairDataset(videos, size=32, seed=1)[7], PairDataset(videos, size=32, seed=1)[7]
    for key in ("reference", "target", "pose_image", "mask"):
        assert torch.equal(first[key], again[key])
    other = PairDataset(videos, size=32, seed=2)[7]
    assert not torch.equal(first["target"], other["target"])


def test_pose_image_is_the_cropped_target_pose_and_masking_removes_face_and_hands(tmp_path):
    export_video(video_spec("val", 1, num_frames=3, framing="upper"), tmp_path)
    videos = LayoutDataset(tmp_path)
    plain = PairDataset(videos, size=128, seed=0)[0]
    target = videos[0].sample(int(plain["frames"][1]))
    expected = draw_openpose(target.pose, 128, 128).astype(np.float32) / 255
    assert torch.allclose(plain["pose_image"], torch.from_numpy(expected).permute(2, 0, 1))
    masked = PairDataset(videos, size=128, seed=0, face_mask_probability=1.0, hand_mask_probability=1.0)[0]
    body_only = draw_openpose(target.pose, 128, 128, hands=False, face=False).astype(np.float32) / 255
    assert torch.allclose(masked["pose_image"], torch.from_numpy(body_only).permute(2, 0, 1))
    assert not torch.equal(masked["pose_image"], plain["pose_image"])  # the face was there to remove


def test_crop_moves_pose_points_with_the_pixels():
    image = np.zeros((40, 60, 3), np.uint8)
    image[20, 30] = 255
    box = CropBox(x0=20, y0=5, side=20)
    pose = Pose(body=np.tile([30.0, 20.0, 1.0], (18, 1)))
    for size in (20, 40):  # same size, and 2x upsampling
        cropped = crop_image(image, box, size).astype(np.float64)[..., 0]
        ys, xs = np.nonzero(cropped)
        centroid = np.array([(xs * cropped[ys, xs]).sum(), (ys * cropped[ys, xs]).sum()]) / cropped[ys, xs].sum()
        assert np.allclose(crop_pose(pose, box, size).body[0, :2], centroid, atol=0.05)
    outside = crop_pose(Pose(body=np.tile([5.0, 5.0, 1.0], (18, 1))), box, 20)
    assert (outside.body[:, 2] == 0).all()


def test_tiktok_pairs_use_the_pose_maps(tmp_path):
    make_tiktok_tree(tmp_path, videos=1, frames=3, size=(48, 32))
    item = PairDataset(TikTokDataset(tmp_path), size=32, seed=0)[0]
    assert "mask" not in item
    level = 7 * int(item["frames"][1]) / 255
    assert torch.allclose(item["pose_image"], torch.full((3, 32, 32), level), atol=1e-6)


def test_clips_are_consecutive_frames_of_one_video(tmp_path):
    export_video(video_spec("test", 0, num_frames=6, width=32, height=32), tmp_path)
    videos = LayoutDataset(tmp_path)
    item = ClipDataset(videos, clip_length=4, stride=1, size=32, seed=0)[1]
    assert item["target"].shape == item["pose_image"].shape == (4, 3, 32, 32)
    assert item["mask"].shape == (4, 1, 32, 32) and item["reference"].shape == (3, 32, 32)
    for k in range(4):
        frame = videos[0].sample(item["start"] + k).image
        assert torch.allclose(
            item["target"][k], torch.from_numpy(frame).permute(2, 0, 1).float() / 127.5 - 1, atol=1e-6
        )
    with pytest.raises(ValueError, match="frames a clip needs"):
        ClipDataset(videos, clip_length=7, size=32)[0]


def test_puppet_clips_on_the_fly():
    item = ClipDataset(PuppetVideos("train", num_frames=40), clip_length=16, size=32, seed=0)[0]
    assert item["target"].shape == (16, 3, 32, 32)
    # A dance moves smoothly: neighbouring frames are closer than frames far apart.
    near = (item["target"][1] - item["target"][0]).abs().mean()
    far = (item["target"][15] - item["target"][0]).abs().mean()
    assert near < far
