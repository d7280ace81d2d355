"""The web app behind `magicpose app`: a Gradio page around `magicpose.workflows.animation`.

    reference photo ─┐                 ┌─ skeleton preview (driving frame 0)
    driving video ───┴─ check limits ──┼─ alignment preview (aligned skeleton over the fitted photo)
                                       └─ Generate ─ animate ─ result.mp4 + grid.mp4 (with the sound)

Everything the page does is a plain function here (`check_upload`, `load_driving`, `preview`, `driving_sound`,
`generate`, `puppet_examples`), so it is tested without a browser; `app_page.build_app` only wires
them to widgets and `app_page.launch` serves them. Bad input raises `InputError`, which the handlers turn into a
`gr.Error` (a red toast) and the server keeps running.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from magicpose.errors import DamagedMediaWarning, InputError, MissingWeightsError
from magicpose.interfaces.options import check_person, check_seed
from magicpose.pipelines.recipe import check_recipe
from magicpose.poses.framing import FIT_MODES
from magicpose.poses.smoothing import SMOOTHING_LEVELS

if TYPE_CHECKING:
    from magicpose.audio import AudioCut

EXAMPLE_FRAMES = 16
MAX_SIDE = 2048  # the largest output side the page accepts (the CLI takes any multiple of 8)
AUTO = "auto"  # the page's word for "the workflow's default" in the smoothing and person choices


@dataclass
class AppConfig:
    """What `magicpose app` was started with. `load_pipeline` returns the pipeline or raises
    MissingWeightsError / InputError; it is called once, at the first generation."""

    load_pipeline: Callable[[], object]
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "magicpose-app")
    max_upload_mb: float = 50.0
    max_frames: int = 64
    default_steps: int = 50
    default_guidance: float = 7.0
    default_size: int = 0  # 0: the model's own size
    model_note: str | None = None  # shown beside every result (what the embedded model is)
    keep_results: int = 20  # the newest results kept under cache_dir/jobs; older ones go (prune_results)
    keep_hours: float = 24.0  # and none older than this


def prune_results(cache_dir: Path, keep: int, max_hours: float) -> int:
    """Remove results (cache_dir/jobs/*) older than `max_hours` and all but the newest `keep`, so a long-running
    server's disk use stays bounded, and unfinished ones (no grid.mp4, written last: a job dropped when the server
    was stopped); returns how many went. Called at start-up, after each generation and when stopped, never
    while a generation writes (one job at a time)."""
    jobs = cache_dir / "jobs"
    if not jobs.is_dir():
        return 0
    folders = sorted((path for path in jobs.iterdir() if path.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    oldest = time.time() - max_hours * 3600
    stale = [
        path
        for index, path in enumerate(folders)
        if index >= keep or path.stat().st_mtime < oldest or not (path / "grid.mp4").is_file()
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def page_number(value, name: str, *, whole: bool = False) -> float | int:
    """A number from a widget or an API client (which may send anything JSON holds), or an InputError in the
    CLI's words: a value Gradio would otherwise reject with its internal text, or torch with an overflow."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        number = value if isinstance(value, int) else float(value)  # ints stay exact (seeds up to 2**63 - 1)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value}")
    if whole:
        if number != int(number):
            raise InputError(f"{name} must be a whole number, got {value}")
        return int(number)
    return float(number)


def choice(value, name: str, choices) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def person_choice(value) -> str | int | None:
    """Who drives: largest, center or an index counted from the left (a whole number or its digits)."""
    if value in (None, "", AUTO):
        return None
    return check_person(value)


def smooth_choice(value) -> str | None:
    return None if value in (None, "", AUTO) else choice(value, "smooth", SMOOTHING_LEVELS)


class PipelineHolder:
    """Loads the pipeline on first use and remembers a failure, so the page can say why it cannot generate."""

    def __init__(self, load: Callable[[], object]):
        self._load = load
        self._pipeline = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._pipeline is None:
                try:
                    self._pipeline = self._load()
                except MissingWeightsError as error:
                    raise InputError(str(error)) from error
            return self._pipeline


def hide_paths(message: str) -> str:
    """A message for the page's visitors: the server's folders (upload caches, model paths) are not theirs to
    see, so each absolute path is shown as its file name."""
    return re.sub(r"(?<![\w.])/(?:[^\s/:;,'\"()]+/)+([^\s/:;,'\"()]*)", r"\1", message)


def upload_path(payload) -> Path | None:
    """The file of an upload: a path, or Gradio's file record (a dict or model with a `path`), which the page's
    handlers receive unprocessed so that every file goes through the CLI's readers and messages."""
    if payload is None or payload == "":
        return None
    if isinstance(payload, dict):
        payload = payload.get("path")
    payload = getattr(payload, "path", payload)
    if not isinstance(payload, (str, os.PathLike)) or not str(payload):
        raise InputError(f"expected an uploaded file, got {type(payload).__name__}; send it with handle_file(...)")
    return Path(payload)


def check_upload(payload, what: str, max_mb: float) -> Path:
    """The uploaded file's path, or an InputError naming the limit."""
    path = upload_path(payload)
    if path is None:
        raise InputError(f"no {what} given: upload one or press 'Use the puppet example'")
    if not path.is_file():
        raise InputError(f"the {what} {path.name} was not received; upload it again")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_mb:
        raise InputError(f"the {what} is {size_mb:.1f} MB; this server takes at most {max_mb:g} MB per file")
    return path


def count_frames(path: Path) -> tuple[int, float]:
    """(frames, fps) of a video from its container, without decoding it (falls back to decoding); opened by the
    CLI's reader, so a bad upload gets the CLI's message."""
    from magicpose.media import VideoReader

    with VideoReader(path) as video:
        return video.frame_count or sum(1 for _ in video), video.fps


def load_reference(path: str | os.PathLike | None, max_mb: float) -> np.ndarray:
    from magicpose.media import read_image

    return read_image(check_upload(path, "reference photo", max_mb))


def load_driving(
    path: str | os.PathLike | None,
    max_mb: float,
    max_frames: int,
    *,
    person: str | int | None = None,
    smooth: str | None = None,
    detector=None,
):
    """The driving motion of an uploaded video (a `workflows.animation.Driving`), rejected before
    pose detection when it is too long."""
    from magicpose.workflows.animation import read_driving

    path = check_upload(path, "driving video", max_mb)
    frames, fps = count_frames(path)
    if frames > max_frames:
        raise InputError(
            f"the driving video has {frames} frames ({frames / fps:.1f} s); this server animates at most "
            f"{max_frames} frames: trim the video, or start the app with a larger --max-frames"
        )
    return read_driving(path, progress=True, person=person, smooth=smooth, detector=detector)


def parse_size(width: float | int | None, height: float | int | None = None) -> tuple[int, int] | None:
    """(width, height) from the page's two number boxes: both 0 or empty, the model's own size; one of
    them 0, a square of the other. Each side a multiple of 8 up to MAX_SIDE."""
    width, height = (
        0 if side in (None, "") else page_number(side, name, whole=True)
        for side, name in ((width, "width"), (height, "height"))
    )
    if not width and not height:
        return None
    width, height = width or height, height or width
    for name, side in (("width", width), ("height", height)):
        if side < 8 or side % 8 or side > MAX_SIDE:
            raise InputError(f"{name} must be a multiple of 8 from 8 to {MAX_SIDE}, got {side}")
    return width, height


@dataclass
class Settings:
    """The page's framing, alignment and sound choices (the CLI's --fit, --driving-fit, --align-*, --audio)."""

    align: bool = True
    fit: str = "person"
    driving_fit: str = "person"
    align_scale: float = 1.0
    align_offset: tuple[float, float] = (0.0, 0.0)
    align_frame: int | None = None
    audio: str = "driving"

    def framing(self) -> dict:
        return dict(
            align=self.align,
            fit_mode=self.fit,
            driving_fit=self.driving_fit,
            align_scale=float(self.align_scale),
            align_offset=tuple(float(v) for v in self.align_offset),
            align_frame=self.align_frame,
        )


def settings_from_page(align, fit, driving_fit, scale, dx, dy, frame, audio="driving") -> Settings:
    """Settings from the widgets' values, or from an API client, checked (a negative or empty align frame:
    automatic; empty numbers: their defaults)."""
    frame = None if frame in (None, "") else page_number(frame, "align frame", whole=True)
    scale = 1.0 if scale in (None, "") else page_number(scale, "align scale")
    if scale <= 0:
        raise InputError(f"align scale must be above 0, got {scale:g}")
    offset = tuple(0.0 if v in (None, "") else page_number(v, f"align offset {n}") for v, n in ((dx, "x"), (dy, "y")))
    if not isinstance(align, bool):
        raise InputError(f"align must be true or false, got {align!r}")
    return Settings(
        align,
        choice(fit, "fit", FIT_MODES),
        choice(driving_fit, "driving fit", FIT_MODES),
        scale,
        offset,
        None if frame is None or frame < 0 else frame,
        choice(audio, "audio", ("driving", "none")),
    )


def preview(
    reference: np.ndarray, driving, size: tuple[int, int], settings: Settings | bool = True, reference_pose=None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(skeleton of the first driving frame, aligned skeleton blended over the fitted photo, a note).
    `reference_pose`: the photo's pose when it is known (else it is detected)."""
    from magicpose.poses.render import draw_openpose
    from magicpose.workflows.animation import CUT_NOTE, frame_inputs

    settings = settings if isinstance(settings, Settings) else Settings(align=bool(settings))
    poses = driving.poses
    skeleton = draw_openpose(poses.frames[0], poses.width, poses.height)
    framed = frame_inputs(reference, poses, size, known_pose=reference_pose, **settings.framing())
    shown = settings.align_frame if framed.aligned and settings.align_frame is not None else 0
    drawn = draw_openpose(framed.poses.frames[shown], *size)
    # Bones over a dimmed photo: where the skeleton lands on the body is what alignment is about.
    lines = drawn.max(axis=2, keepdims=True) > 0
    overlay = np.where(lines, drawn, (framed.reference * 0.6).astype(np.uint8))
    align = settings.align
    notes = [f"{len(poses)} driving frames at {poses.fps:g} fps"]
    if driving.missing:
        notes.append(f"{driving.missing} with nobody detected (filled)")
    notes.append(
        "skeleton aligned to the reference body"
        if framed.aligned
        else ("no person found in the photo: skeleton used as is" if align else "alignment off: skeleton used as is")
    )
    if framed.reference_cut:
        notes.append(CUT_NOTE.replace("--fit", "fit"))
    return skeleton, overlay, "; ".join(notes)


def sampling_numbers(steps, guidance, seed) -> tuple[int, float, int]:
    """Steps, guidance and seed as the CLI takes them (same ranges, same messages), whatever a client sent."""
    steps, guidance = page_number(steps, "steps", whole=True), page_number(guidance, "guidance")
    check_recipe(num_inference_steps=steps, guidance_scale=guidance)
    return steps, guidance, check_seed(page_number(seed, "seed", whole=True))


def driving_sound(driving, settings: Settings) -> tuple[AudioCut | None, list[str]]:
    """(the sound for a result of the driving frames, or None; what is wrong with it, in lines for the page),
    checked as the CLI's `animate` checks it, before any model or sampling: damaged packets are skipped, an
    unusable track gives a silent result. The warnings also go to the server's log."""
    from magicpose.workflows.animation import audio_cut

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DamagedMediaWarning)
        cut = audio_cut(settings.audio, driving, len(driving.poses), driving.poses.fps)
    for warning in caught:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    told = [str(w.message) for w in caught if issubclass(w.category, DamagedMediaWarning)]
    return cut, [hide_paths(message) for message in told]


def model_size(pipeline) -> tuple[int, int]:
    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    return side, side


def generate(
    pipeline,
    reference: np.ndarray,
    driving,
    out_dir: Path,
    *,
    size: tuple[int, int] | None,
    settings: Settings | None = None,
    steps: int,
    guidance: float,
    seed: int,
    reference_pose=None,
    sound: tuple[AudioCut | None, list[str]] | None = None,
) -> tuple[Path, Path, str]:
    """Animate and write result.mp4 and grid.mp4 (reference | skeleton | result), with the sound, into
    `out_dir`. `reference_pose`: the photo's pose when it is known (else it is detected). `sound`: the
    driving sound as `driving_sound` checked it (else it is checked here, before sampling)."""
    from magicpose.media import write_video
    from magicpose.workflows.animation import animate, grid_frames, summary

    settings = settings or Settings()
    steps, guidance, seed = sampling_numbers(steps, guidance, seed)
    audio, told = sound if sound is not None else driving_sound(driving, settings)
    animation = animate(
        pipeline,
        reference,
        driving.poses,
        size=size,
        num_inference_steps=steps,
        guidance_scale=guidance,
        seed=seed,
        known_reference_pose=reference_pose,
        **settings.framing(),
    )
    if audio is not None:  # the sound of the frames made
        audio = replace(audio, duration=len(animation.frames) / animation.fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    video, grid = out_dir / "result.mp4", out_dir / "grid.mp4"
    write_video(video, animation.frames, animation.fps, audio=audio)
    write_video(grid, grid_frames(animation), animation.fps, audio=audio)
    note = summary(animation, driving, audio).replace("--fit", "fit")
    return video, grid, "\n\n".join([note, *(f"Warning: {message}" for message in told)])


def puppet_examples(cache_dir: Path, frames: int = EXAMPLE_FRAMES) -> tuple[Path, Path]:
    """A test-split puppet photo and another test-split puppet's dance (held-out identities and
    motions), rendered once into `cache_dir` (a few hundred KB, so nothing binary ships)."""
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.files import atomic_path
    from magicpose.media import write_image, write_video

    cache_dir.mkdir(parents=True, exist_ok=True)
    photo, dance = cache_dir / "puppet_reference.png", cache_dir / f"puppet_driving_{frames}.mp4"
    if not photo.is_file():
        with atomic_path(photo) as temporary:
            write_image(temporary, PuppetVideo(video_spec("test", 0, num_frames=1, framing="full")).frame(0).image)
    if not dance.is_file():
        video = PuppetVideo(video_spec("test", 1, num_frames=frames, framing="full"))
        write_video(dance, (video.frame(i).image for i in range(frames)), video.spec.fps)
    return photo, dance
