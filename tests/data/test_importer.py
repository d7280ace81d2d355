"""Importing real videos into the layout: frames, poses, resizing, caching, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from magicpose.data.importer import import_videos
from magicpose.data.layout import LayoutDataset
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.errors import InputError
from magicpose.media import write_video
from magicpose.poses.types import PoseSequence
from tests.reference_data import reference_path


class CountingDetector:
    """Stands in for the MediaPipe detector: the puppet's true poses, and a count of the videos it saw."""

    def __init__(self, video: PuppetVideo):
        self.video, self.calls = video, 0

    def detect_video(self, path, progress=True):
        self.calls += 1
        return PoseSequence([self.video.frame(i).pose for i in range(len(self.video))], 64, 64, 15.0)


@pytest.fixture()
def source(tmp_path):
    video = PuppetVideo(video_spec("test", 1, num_frames=5, width=64, height=64))
    folder = tmp_path / "videos"
    write_video(folder / "dance one.mp4", [video.frame(i).image for i in range(5)], fps=15.0)
    return folder, video


def test_import_writes_frames_and_poses_and_caches(tmp_path, source):
    folder, video = source
    detector = CountingDetector(video)
    out = tmp_path / "dataset"
    import_videos(folder, out, detector=detector, max_side=None, progress=False)
    record = LayoutDataset(out)[0]
    assert record.video_id == "dance_one" and record.num_frames == 5 and record.fps == 15.0
    sample = record.sample(4)
    error = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()  # noqa: E731
    assert error(sample.image, video.frame(4).image) < 12  # H.264 at 64 px is lossy...
    assert error(sample.image, video.frame(4).image) < error(sample.image, video.frame(0).image)  # ...but in order
    assert np.allclose(sample.pose.body, video.frame(4).pose.body)
    import_videos(folder, out, detector=detector, max_side=None, progress=False)
    assert detector.calls == 1  # the second run found the video done
    import_videos(folder, out, detector=detector, max_side=32, progress=False)
    assert detector.calls == 2  # other options: redone


def test_import_resizes_frames_and_poses_together(tmp_path, source):
    folder, video = source
    out = tmp_path / "dataset"
    import_videos(folder, out, detector=CountingDetector(video), max_side=32, progress=False)
    record = LayoutDataset(out)[0]
    assert (record.width, record.height) == (32, 32) and record.sample(0).image.shape == (32, 32, 3)
    truth = video.frame(2).pose.body
    present = truth[:, 2] > 0
    assert np.allclose(record.sample(2).pose.body[present, :2], truth[present, :2] * 0.5 - 0.25)


def test_import_refuses_a_folder_without_videos(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos"):
        import_videos(tmp_path / "empty", tmp_path / "out", detector=object(), progress=False)
    with pytest.raises(InputError, match="not found"):
        import_videos(tmp_path / "missing", tmp_path / "out", detector=object(), progress=False)


def test_import_with_the_real_detector(tmp_path):
    """MediaPipe Holistic (offline, in the wheel) on a short clip made from the reference photo."""

    from magicpose.media import read_image

    photo = reference_path("real_media", "astronaut.png")
    write_video(tmp_path / "src" / "astronaut.mp4", [read_image(photo)] * 2, fps=10.0)
    import_videos(tmp_path / "src", tmp_path / "out", max_side=256, progress=False)
    record = LayoutDataset(tmp_path / "out")[0]
    assert (record.width, record.height, record.num_frames) == (256, 256, 2)
    pose = record.sample(1).pose
    assert pose.has("body") and pose.has("face")
    nose = pose.body[0]
    assert nose[2] > 0 and 0 <= nose[0] < 256 and 0 <= nose[1] < 128  # a portrait: the face is in the upper half


def test_a_bad_video_is_skipped_and_listed_and_the_others_are_imported(tmp_path, source, capsys):
    folder, video = source
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    out, failed = tmp_path / "dataset", []
    folders = import_videos(
        folder, out, detector=CountingDetector(video), max_side=None, progress=False, failed=failed
    )
    assert [path.name for path in folders] == ["dance_one"]
    assert [path.name for path, _ in failed] == ["broken.mp4"] and "broken.mp4" in failed[0][1]
    with pytest.raises(InputError, match="broken.mp4"):  # without a list to report into, the first one stops
        import_videos(folder, tmp_path / "other", detector=CountingDetector(video), max_side=None, progress=False)
