"""The on-disk layout: round trip, atomic folders, splits, TikTok folders through the same interface."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magicpose.data.layout import LayoutDataset, VideoFolderWriter
from magicpose.data.puppet.export import export_split, export_video
from magicpose.data.puppet.videos import PuppetVideos
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.data.sources import open_collection
from magicpose.data.tiktok import TikTokDataset, is_tiktok_root
from magicpose.errors import InputError
from magicpose.poses.render import draw_openpose
from tests.data.tiktok_tree import make_tiktok_tree


def test_puppet_export_round_trips_every_piece_of_ground_truth(tmp_path):
    spec = video_spec("test", 2, num_frames=4, width=64, height=64)
    folder = export_video(spec, tmp_path)
    video = PuppetVideo(spec)
    record = LayoutDataset(tmp_path)[0]
    assert record.video_id == folder.name == spec.video_id
    assert (record.num_frames, record.width, record.height, record.fps) == (4, 64, 64, spec.fps)
    assert record.meta["split"] == "test" and record.meta["identity"]["seed"] == spec.identity_seed
    for index in (0, 3):
        sample, truth = record.sample(index), video.frame(index)
        assert np.array_equal(sample.image, truth.image)
        assert np.array_equal(sample.mask, truth.mask)
        assert np.array_equal(sample.parts, truth.parts)
        assert np.allclose(sample.pose.body, truth.pose.body)
        assert np.array_equal(draw_openpose(sample.pose, 64, 64), truth.condition())
    assert np.array_equal(record.background, video.background)


def test_a_failed_write_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoFolderWriter(tmp_path, "broken") as writer:
            writer.add_frame(np.zeros((8, 8, 3), np.uint8))
            raise RuntimeError("crash mid-video")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no video folders"):
        LayoutDataset(tmp_path)


def test_existing_videos_are_not_overwritten_by_accident(tmp_path):
    with VideoFolderWriter(tmp_path, "clip") as writer:
        writer.add_frame(np.zeros((8, 8, 3), np.uint8))
        writer.finish(None, {"fps": 12.0})
    with pytest.raises(InputError, match="already exists"):
        VideoFolderWriter(tmp_path, "clip")
    record = LayoutDataset(tmp_path)[0]
    assert record.fps == 12.0 and record.sample(0).pose is None and record.sample(0).mask is None


def test_split_filter_and_resumable_export(tmp_path):
    export_split(tmp_path, "train", 2, progress=False, num_frames=2, width=32, height=32)
    export_split(tmp_path, "val", 1, progress=False, num_frames=2, width=32, height=32)
    stamp = (tmp_path / video_spec("val", 0).video_id / "meta.json").stat().st_mtime_ns
    export_split(tmp_path, "val", 1, progress=False, num_frames=2, width=32, height=32)  # already there: kept
    assert (tmp_path / video_spec("val", 0).video_id / "meta.json").stat().st_mtime_ns == stamp
    assert len(LayoutDataset(tmp_path)) == 3
    assert len(LayoutDataset(tmp_path, split="train")) == 2
    assert [v.meta["split"] for v in open_collection(tmp_path, split="val").videos] == ["val"]


def test_tiktok_folders_read_through_the_same_interface(tmp_path):
    make_tiktok_tree(tmp_path)
    assert is_tiktok_root(tmp_path) and not is_tiktok_root(tmp_path / "train_set")
    videos = open_collection(tmp_path)
    assert isinstance(videos, TikTokDataset) and len(videos) == 2
    record = videos[0]
    assert (record.num_frames, record.width, record.height) == (3, 40, 32)
    sample = record.sample(2)
    assert sample.pose is None and sample.image.shape == (32, 40, 3)
    assert (sample.pose_map == 14).all()
    with pytest.raises(InputError, match="test_set"):
        TikTokDataset(tmp_path, subset="test")


def test_meta_json_is_plain_json(tmp_path):
    folder = export_video(video_spec("val", 1, num_frames=1, width=32, height=32), tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["source"] == "puppet" and meta["num_frames"] == 1 and meta["spec"]["framing"] == "upper"


def test_open_collection_knows_every_source_and_says_how_to_import_raw_videos(tmp_path):
    puppets = open_collection("puppet", "val", size=48, frames=5, count=3)
    assert isinstance(puppets, PuppetVideos) and len(puppets) == 3
    assert (puppets[0].width, puppets[0].num_frames, puppets[0].meta["split"]) == (48, 5, "val")
    export_split(tmp_path / "ours", "train", 1, progress=False, num_frames=2, width=32, height=32)
    assert isinstance(open_collection(tmp_path / "ours"), LayoutDataset)
    with pytest.raises(InputError, match="no video folders of split 'val'"):
        open_collection(tmp_path / "ours", "val")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "dance.mp4").write_bytes(b"")
    for raw in (tmp_path / "raw", tmp_path / "raw" / "dance.mp4"):
        with pytest.raises(InputError, match="magicpose data prepare videos"):
            open_collection(raw)
    with pytest.raises(InputError, match="dataset folder not found"):
        open_collection(tmp_path / "nowhere")
