import numpy as np
import pytest
from PIL import Image

from magicpose.errors import InputError
from magicpose.evaluation.pairing import index_frames, pair_frames, read_frames


def write(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_subfolders_pair_by_frame_number_not_by_position(tmp_path):
    for i in (1, 2, 3, 10):
        write(tmp_path / "gt" / "clipA" / f"{i:04d}.png")
    # Generated side skips frame 2 and numbers differently; sorted-zip pairing would shift frames.
    for i in (1, 3, 10):
        write(tmp_path / "gen" / "clipA" / f"frame_{i}.png")
    videos, warnings = pair_frames(tmp_path / "gen", tmp_path / "gt")
    assert [v.name for v in videos] == ["clipA"]
    assert [(i, g.path.name, r.path.name) for i, g, r in videos[0].frames] == [
        (1, "frame_1.png", "0001.png"),
        (3, "frame_3.png", "0003.png"),
        (10, "frame_10.png", "0010.png"),
    ]
    assert len(warnings) == 1 and "1 ground-truth frame" in warnings[0]


def test_flat_folders_with_video_prefixes_do_not_collide(tmp_path):
    # TikTok-style names: the video name itself holds digits and underscores.
    for video in ("TiktokDance_00337", "TiktokDance_00338"):
        for i in (0, 1):
            write(tmp_path / "flat" / f"{video}_{i:04d}.png")
            write(tmp_path / "nested" / video / f"{i:04d}.png")
    frames = index_frames(tmp_path / "flat")
    assert sorted(frames) == [
        ("TiktokDance_00337", 0),
        ("TiktokDance_00337", 1),
        ("TiktokDance_00338", 0),
        ("TiktokDance_00338", 1),
    ]
    videos, warnings = pair_frames(tmp_path / "flat", tmp_path / "nested")
    assert [v.name for v in videos] == ["TiktokDance_00337", "TiktokDance_00338"] and warnings == []
    assert all(g.path.name.startswith(v.name) and r.path.parent.name == v.name for v in videos for _, g, r in v.frames)


def test_two_files_for_one_frame_is_an_error(tmp_path):
    write(tmp_path / "gen" / "a_1.png")
    write(tmp_path / "gen" / "a_001.jpg")
    with pytest.raises(InputError, match="both frame 1 of video 'a'"):
        index_frames(tmp_path / "gen")


def test_generated_frame_without_ground_truth_is_an_error(tmp_path):
    write(tmp_path / "gen" / "a_1.png")
    write(tmp_path / "gen" / "b_1.png")
    write(tmp_path / "gt" / "a_1.png")
    with pytest.raises(InputError, match="1 generated frame"):
        pair_frames(tmp_path / "gen", tmp_path / "gt")


def test_bad_folders(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        index_frames(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frames"):
        index_frames(tmp_path / "empty")
    write(tmp_path / "nonum" / "cover.png")
    with pytest.raises(InputError, match="no frame number"):
        index_frames(tmp_path / "nonum")


def test_dataset_layout_and_video_files(tmp_path):
    import av

    from tests.evaluation.evaluation_helpers import smooth_frames

    truth = smooth_frames(6, size=32)
    for i, frame in enumerate(truth):
        # The project's dataset layout: ROOT/VIDEO/frames/000000.png.
        path = tmp_path / "gt" / "puppet_001" / "frames" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(path)
    (tmp_path / "gen").mkdir()
    with av.open(str(tmp_path / "gen" / "puppet_001.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for frame in truth[:4]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    videos, warnings = pair_frames(tmp_path / "gen", tmp_path / "gt")
    assert [i for i, _, _ in videos[0].frames] == [0, 1, 2, 3] and "2 ground-truth frame" in warnings[0]
    generated = read_frames([g for _, g, _ in videos[0].frames])
    reference = read_frames([r for _, _, r in videos[0].frames])
    assert all(g.shape == (32, 32, 3) for g in generated)
    # H.264 is lossy, but each decoded frame is closest to its own ground truth.
    for i, g in enumerate(generated):
        errors = [np.abs(g.astype(int) - r.astype(int)).mean() for r in reference]
        assert int(np.argmin(errors)) == i
