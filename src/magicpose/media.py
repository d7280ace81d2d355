"""Image and video I/O for the whole project: RGB uint8 arrays in, files out.

Images go through Pillow, videos through PyAV (FFmpeg): mp4, mov, avi, webm, mkv and gif are
decoded, animated WebP through Pillow (FFmpeg has no decoder for it), and folders of images read as
videos in natural order (frame2 before frame10). A video's frames have the times its container gives
them (`VideoReader.times`, from `magicpose.timing`): GIF and WebP delays, variable frame rates.
Videos are written as H.264 mp4 in yuv420p, the one combination every player accepts; yuv420p
needs even sizes, so odd frames are padded by one replicated edge pixel.
An mp4 can carry a cut of another file's sound (`magicpose.audio`).
Every file is written through `atomic_path`: it appears whole or not at all.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from magicpose.audio import AudioCut, Soundtrack, check_cut
from magicpose.errors import DamagedMediaWarning, InputError
from magicpose.files import atomic_path, not_found
from magicpose.timing import Clock, clock, packet_times

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v", ".gif")
DEFAULT_FOLDER_FPS = 30.0

# Pillow modes with a faithful 8-bit RGB conversion. 16-bit and float images ("I;16", "I", "F")
# have no agreed mapping to 8 bits, so they are refused rather than silently clipped.
_CONVERTIBLE_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_animated_image(path: str | os.PathLike) -> bool:
    """An image file with more than one frame (an animated WebP, PNG or GIF): a video, not a photo."""
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def _to_rgb(image: Image.Image, where: str) -> np.ndarray:
    if image.mode not in _CONVERTIBLE_MODES:
        raise InputError(
            f"{where}: image mode {image.mode!r} is not supported; save it as 8-bit RGB, RGBA or grayscale"
        )
    image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
    if "A" in image.getbands() or image.mode in ("P", "PA") and "transparency" in image.info:
        # Transparent pixels hold arbitrary colour; a white background is what viewers show.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB; palette, grayscale, CMYK and alpha images are converted.

    Transparent areas are composited onto white and EXIF orientation is applied.
    """
    path = Path(path)
    if not path.is_file():
        raise not_found(path, "image")
    try:
        with Image.open(path) as image:
            image.load()
            return _to_rgb(image, str(path))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(
            f"cannot read {path} as an image ({error}); pass a PNG, JPEG, BMP, WebP or TIFF file"
        ) from None


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array; the format follows the suffix."""
    with atomic_path(path) as temporary:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            temporary, format=Image.registered_extensions().get(Path(path).suffix.lower())
        )


def _natural_key(path: Path):
    return [int(token) if token.isdigit() else token.lower() for token in re.split(r"(\d+)", path.name)]


def image_folder_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder, naturally sorted (frame2.png before frame10.png)."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and is_image_path(p)]
    return sorted(files, key=_natural_key)


def _loaded(image: Image.Image) -> Image.Image:
    image.load()  # an animation frame's delay is known once it is decoded
    return image


class VideoReader:
    """Frames of a video file or an image folder, decoded one at a time.

    `fps`, `width`, `height` and `frame_count` (from the container, None when unknown) are known
    on opening, so a caller can size a progress bar before decoding. `times` are the frames' presentation
    times in seconds from the timeline's 0 (the video stream's start, as `magicpose.audio` counts), `end`
    when the last one stops (both None when the container has no timestamps). `variable` says the times
    follow no constant rate; `fps` is then their typical rate. Iterating (once) yields
    (H, W, 3) uint8 RGB arrays, rotated upright when the file carries a display rotation (phone
    videos). An empty, missing or undecodable file raises InputError on opening.
    """

    def __init__(self, path: str | os.PathLike, *, folder_fps: float = DEFAULT_FOLDER_FPS):
        self.path = Path(path)
        self._container = None
        self._files = None
        self._animated = False
        self.times: np.ndarray | None = None
        self.end: float | None = None
        self.variable = False
        if self.path.is_dir():
            self._files = image_folder_files(self.path)
            if not self._files:
                raise InputError(
                    f"{self.path} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a video or a folder of frames"
                )
            first = read_image(self._files[0])
            self.height, self.width = first.shape[:2]
            self.fps = float(folder_fps)
            self.frame_count: int | None = len(self._files)
            self.times, self.end = np.arange(self.frame_count) / self.fps, self.frame_count / self.fps
            return
        if not self.path.is_file():
            raise not_found(self.path, "video")
        if self.path.suffix.lower() in IMAGE_SUFFIXES and is_animated_image(self.path):
            self._open_animation()
            return

        try:
            self._container = av.open(str(self.path))
            if not self._container.streams.video:
                raise InputError(
                    f"{self.path} has no video stream (or no frames); pass a video with at least one frame"
                )
            stream = self._container.streams.video[0]
            stamps = packet_times(self.path)
        except av.FFmpegError as error:
            self.close()
            raise InputError(
                f"cannot read {self.path} as a video ({error}); pass an mp4, mov, avi, webm or gif file"
            ) from None
        except InputError:
            self.close()
            raise
        stream.thread_type = "AUTO"
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else DEFAULT_FOLDER_FPS
        self.frame_count = self._declared = stream.frames or None
        if stamps is not None:  # the stream's nominal rate first: exact (30000/1001) where a clock in ms is not
            self._set(clock(*stamps, [float(r) for r in (stream.guessed_rate, rate, stream.base_rate) if r], self.fps))
        # Decode the first frame now: it gives the upright size (after display rotation) and
        # turns an empty or undecodable file into an error before any work starts.
        self._decoded = self._decode()
        try:
            self._first = next(self._decoded, None)
        except InputError:
            self.close()
            raise
        if self._first is None:
            self.close()
            raise InputError(f"{self.path} contains no frames; pass a video with at least one frame")
        self.height, self.width = self._first.shape[:2]

    def _open_animation(self) -> None:
        """An animated image (WebP, PNG): Pillow decodes it, each frame shown for its own delay."""
        try:
            with Image.open(self.path) as image:
                self.width, self.height = image.size
                delays = [_loaded(frame).info.get("duration") or 0 for frame in ImageSequence.Iterator(image)]
        except (OSError, SyntaxError, ValueError) as error:
            raise InputError(f"cannot read {self.path} as an animation ({error}); the file may be damaged") from None
        if not any(delays):
            delays = [100] * len(delays)  # no delays at all: 10 frames a second, as browsers show it
        seconds = np.array(delays, dtype=np.float64) / 1000
        self._animated = True
        rate = len(delays) / seconds.sum()
        self._set(clock(np.concatenate([[0.0], np.cumsum(seconds[:-1])]), seconds[-1], 0.001, [rate], rate))

    def _set(self, found: Clock) -> None:
        self.times, self.end, self.fps, self.variable = found.times, found.end, found.fps, found.variable
        self.frame_count = len(found.times)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._files is not None:
            for file in self._files:
                frame = read_image(file)
                if frame.shape[:2] != (self.height, self.width):
                    raise InputError(
                        f"{file} is {frame.shape[1]}x{frame.shape[0]}, other frames are {self.width}x{self.height}"
                    )
                yield frame
            return
        if self._animated:
            with Image.open(self.path) as image:
                for frame in ImageSequence.Iterator(image):
                    yield _to_rgb(frame, str(self.path))
            return
        if self._first is None:
            raise RuntimeError("a VideoReader can be iterated only once")
        first, self._first = self._first, None
        yield first
        yield from self._decoded

    def _decode(self) -> Iterator[np.ndarray]:

        decoded = 0
        try:
            for frame in self._container.decode(self._stream):
                decoded += 1
                array = frame.to_ndarray(format="rgb24")
                rotation = getattr(frame, "rotation", 0) or 0
                if rotation % 360:
                    # PyAV reports the counter-clockwise display rotation; np.rot90 turns counter-clockwise.
                    array = np.ascontiguousarray(np.rot90(array, k=int(round(rotation / 90)) % 4))
                yield array
        except av.FFmpegError as error:
            raise InputError(f"{self.path}: decoding failed ({error}); the file may be truncated or corrupt") from None
        if self._declared and decoded < self._declared:
            # threaded decoding skips what it cannot decode: the count against the header is the only sign
            warnings.warn(
                DamagedMediaWarning(
                    f"{self.path}: only {decoded} of the {self._declared} frames its header declares could be "
                    f"decoded ({self._declared - decoded} lost; the file is truncated or damaged)"
                ),
                stacklevel=2,
            )


def read_video(path: str | os.PathLike, *, folder_fps: float = DEFAULT_FOLDER_FPS) -> tuple[list[np.ndarray], float]:
    """All frames as (H, W, 3) uint8 RGB arrays, and the frame rate. An empty video is an InputError."""
    with VideoReader(path, folder_fps=folder_fps) as reader:
        frames = list(reader)
        fps = reader.fps
    if not frames:
        raise InputError(f"{path} contains no frames; pass a video with at least one frame")
    return frames, fps


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width by replicating the last row/column (yuv420p needs even sizes)."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def frame_rate(fps: float) -> Fraction:
    """The exact rational rate for an fps value (29.97 -> 30000/1001, as FFmpeg expects)."""
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Write RGB frames to an H.264 mp4 one at a time; the file appears only when closed cleanly.

    Use as a context manager: an exception inside the block removes the partial file. With `audio`
    (an `AudioCut`) the mp4 also carries that sound, muxed as the frames arrive; `audio_copied` then
    says whether its AAC packets were copied (True) or it was encoded to AAC (False).
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, crf: int = 18, audio: AudioCut | None = None):
        self.path = Path(path)
        self.rate = frame_rate(fps)
        self.crf = crf
        self.audio = audio if audio is None or audio.checked else check_cut(audio)  # None: unusable, silent
        self.audio_copied: bool | None = None
        self.frames_written = 0
        self._atomic = None
        self._container = None
        self._stream = None
        self._sound = None
        self._size = None

    def __enter__(self) -> VideoWriter:

        self._atomic = atomic_path(self.path, suffix=".mp4")
        temporary = self._atomic.__enter__()
        self._container = av.open(str(temporary), mode="w", format="mp4")
        return self

    def write(self, frame: np.ndarray) -> None:

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        frame = _even(frame)
        if self._stream is None:
            self._size = frame.shape[:2]
            self._stream = self._container.add_stream("libx264", rate=self.rate)
            self._stream.height, self._stream.width = self._size
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf)}
            if self.audio is not None:  # every stream is declared before the first packet
                try:
                    self._sound = Soundtrack(self.audio, self._container)
                    self.audio_copied = self._sound.copied
                except (InputError, av.FFmpegError) as error:
                    self._sound_lost(error)
        elif frame.shape[:2] != self._size:
            raise ValueError(f"all frames must have one size: got {frame.shape[:2]} after {self._size}")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)
        self.frames_written += 1
        self._mux_sound(self.frames_written / self.rate)

    def _mux_sound(self, seconds: float | None) -> None:
        if self._sound is None:
            return
        try:
            self._sound.mux_until(seconds)
        except (InputError, av.FFmpegError) as error:  # the pictures are worth keeping without their sound
            self._sound.close()
            self._sound = None
            self._sound_lost(error, started=True)

    def _sound_lost(self, error: Exception, started: bool = False) -> None:
        after = "the sound up to there, silence after" if started else "no sound"
        warnings.warn(
            DamagedMediaWarning(f"the sound of {self.audio.path} cannot be used ({error}): {self.path} has {after}"),
            stacklevel=3,
        )

    def __exit__(self, exc_type, exc, traceback) -> None:
        error = exc
        if error is None and self.frames_written == 0:
            error = InputError(f"no frames to write to {self.path}; the input produced no frames")
        try:
            if error is None:
                for packet in self._stream.encode():  # flush the encoder's delayed frames
                    self._container.mux(packet)
                self._mux_sound(None)
        except Exception as flush_error:  # noqa: BLE001 - re-raised below after cleanup
            error = flush_error
        finally:
            if self._sound is not None:
                self._sound.close()
            self._container.close()
        if error is None:
            self._atomic.__exit__(None, None, None)
            return
        self._atomic.__exit__(type(error), error, error.__traceback__)  # removes the partial file
        if error is not exc:
            raise error


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 18,
    audio: AudioCut | None = None,
) -> int:
    """Write RGB uint8 frames as an H.264 (yuv420p) mp4, with `audio` if given; returns the frames written."""
    with VideoWriter(path, fps, crf=crf, audio=audio) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written
