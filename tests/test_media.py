"""Image and video I/O: formats in, H.264 mp4 out, clear errors for bad files."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from magicpose import media
from magicpose.errors import InputError


def moving_bar_frames(count: int = 6, height: int = 32, width: int = 48) -> list[np.ndarray]:
    """Frames with a white bar moving right: each frame differs, so order is checkable."""
    frames = []
    for index in range(count):
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[:, index * 6 : index * 6 + 8] = (255, 255, 255)
        frame[:4, :, 0] = 200  # a red band, to catch channel swaps
        frames.append(frame)
    return frames


def bar_position(frame: np.ndarray) -> float:
    columns = frame[8:, :, 1].astype(float).mean(axis=0)
    return float((columns * np.arange(len(columns))).sum() / columns.sum())


def encode(path, frames, codec: str, pix_fmt: str, rate: int = 10) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize(
    "suffix, codec, pix_fmt",
    [
        (".mp4", "libx264", "yuv420p"),
        (".mov", "libx264", "yuv420p"),
        (".avi", "mpeg4", "yuv420p"),
        (".webm", "libvpx-vp9", "yuv420p"),
        (".gif", "gif", "rgb8"),
    ],
)
def test_reads_common_containers_in_order(tmp_path, suffix, codec, pix_fmt):
    frames = moving_bar_frames()
    path = tmp_path / f"clip{suffix}"
    encode(path, frames, codec, pix_fmt)
    decoded, fps = media.read_video(path)
    assert fps == pytest.approx(10.0)
    assert len(decoded) == len(frames)
    assert all(frame.shape == (32, 48, 3) and frame.dtype == np.uint8 for frame in decoded)
    positions = [bar_position(frame) for frame in decoded]
    expected = [bar_position(frame) for frame in frames]
    assert np.allclose(positions, expected, atol=1.0)
    assert decoded[0][1, 20, 0] > 150 and decoded[0][1, 20, 2] < 80  # red stays red (RGB order)


def test_write_video_round_trip_keeps_fps_frames_and_pads_odd_sizes(tmp_path):
    frames = moving_bar_frames(count=5, height=33, width=47)
    path = tmp_path / "out.mp4"
    assert media.write_video(path, frames, fps=29.97) == 5
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    decoded, fps = media.read_video(path)
    assert fps == pytest.approx(29.97, abs=1e-3)
    assert len(decoded) == 5 and decoded[0].shape == (34, 48, 3)
    assert np.allclose([bar_position(f[:33, :47]) for f in decoded], [bar_position(f) for f in frames], atol=1.0)
    assert not list(tmp_path.glob(".out.mp4.*")), "the temporary file must be renamed away"


def test_video_reader_streams_and_reports_size_before_decoding(tmp_path):
    path = tmp_path / "clip.mp4"
    media.write_video(path, moving_bar_frames(count=4), fps=12)
    with media.VideoReader(path) as reader:
        assert (reader.width, reader.height, reader.fps) == (48, 32, 12.0)
        assert reader.frame_count == 4
        assert sum(1 for _ in reader) == 4


def test_image_folder_is_read_in_natural_order(tmp_path):
    frames = moving_bar_frames(count=11)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    decoded, fps = media.read_video(tmp_path, folder_fps=8)
    assert fps == 8 and len(decoded) == 11
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames))  # frame10 comes last


def test_write_video_with_an_error_leaves_no_file(tmp_path):
    path = tmp_path / "broken.mp4"

    def frames():
        yield moving_bar_frames(count=1)[0]
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        media.write_video(path, frames(), fps=10)
    with pytest.raises(InputError, match="no frames"):
        media.write_video(path, [], fps=10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "mode, check",
    [
        ("P", lambda rgb: rgb[0, 0].tolist() == [10, 200, 30]),
        ("L", lambda rgb: rgb[0, 0].tolist() == [77, 77, 77]),
        ("RGBA", lambda rgb: rgb[0, 0].tolist() == [255, 255, 255]),
        ("CMYK", lambda rgb: rgb.shape == (4, 5, 3)),
        ("1", lambda rgb: rgb[0, 0].tolist() == [255, 255, 255]),
    ],
)
def test_read_image_converts_modes_to_rgb(tmp_path, mode, check):
    if mode == "P":
        image = Image.new("RGB", (5, 4), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode == "L":
        image = Image.new("L", (5, 4), 77)
    elif mode == "RGBA":
        image = Image.new("RGBA", (5, 4), (0, 0, 0, 0))  # fully transparent: shown on white
    elif mode == "1":
        image = Image.new("1", (5, 4), 1)
    else:
        image = Image.new("CMYK", (5, 4), (0, 0, 0, 0))
    path = tmp_path / ("image.tif" if mode == "CMYK" else "image.png")
    image.save(path)
    rgb = media.read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 5, 3)
    assert check(rgb)


def test_read_image_rejects_unsupported_modes_and_bad_files(tmp_path):
    Image.new("I;16", (5, 4)).save(tmp_path / "deep.png")
    with pytest.raises(InputError, match="mode"):
        media.read_image(tmp_path / "deep.png")
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="cannot read"):
        media.read_image(tmp_path / "fake.png")
    with pytest.raises(InputError, match="not found"):
        media.read_image(tmp_path / "missing.png")


def test_unreadable_and_empty_videos_are_input_errors(tmp_path):
    (tmp_path / "fake.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="cannot read"):
        media.read_video(tmp_path / "fake.mp4")
    with av.open(str(tmp_path / "empty.mp4"), "w") as container:  # a stream and no frames
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.start_encoding()
    assert (tmp_path / "empty.mp4").stat().st_size > 0
    with pytest.raises(InputError, match="no frames"):
        media.read_video(tmp_path / "empty.mp4")
    (tmp_path / "frames").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        media.read_video(tmp_path / "frames")
    with pytest.raises(InputError, match="not found"):
        media.read_video(tmp_path / "missing.mp4")
