"""The web app behind `magicpose app`: a Gradio page around `magicpose.workflows.animation`.

    reference photo ─┐                 ┌─ skeleton preview (driving frame 0)
    driving video ───┴─ check limits ──┼─ alignment preview (aligned skeleton over the reference)
                                       └─ Generate ─ animate ─ result.mp4 + grid.mp4

Everything the page does is a plain function here (`check_upload`, `load_driving`, `preview`,
`generate`, `puppet_examples`), so it is tested without a browser; `build_app` only wires them to
widgets. Bad input raises `InputError`, which the handlers turn into a `gr.Error` (a red toast) and
the server keeps running.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magicpose.errors import InputError, MissingWeightsError

# Gradio reads this when it is imported: no usage reports leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EXAMPLE_FRAMES = 16


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


def check_upload(path: str | os.PathLike | None, what: str, max_mb: float) -> Path:
    """The uploaded file's path, or an InputError naming the limit."""
    if not path:
        raise InputError(f"no {what} given: upload one or press 'Use the puppet example'")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"the {what} {path.name} was not received; upload it again")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_mb:
        raise InputError(f"the {what} is {size_mb:.1f} MB; this server takes at most {max_mb:g} MB per file")
    return path


def count_frames(path: Path) -> tuple[int, float]:
    """(frames, fps) of a video from its container, without decoding it (falls back to decoding)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path.name} has no video stream; upload a video such as an mp4")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
            frames = stream.frames or sum(1 for _ in container.decode(stream))
    except av.error.FFmpegError as error:
        raise InputError(
            f"{path.name} is not a readable video ({error.strerror or error}); upload an mp4, webm or mov"
        ) from None
    return frames, fps


def load_reference(path: str | os.PathLike | None, max_mb: float) -> np.ndarray:
    from magicpose.media import read_image

    return read_image(check_upload(path, "reference photo", max_mb))


def load_driving(path: str | os.PathLike | None, max_mb: float, max_frames: int):
    """Driving poses of an uploaded video, rejected before pose detection when it is too long."""
    from magicpose.workflows.animation import load_driving_poses

    path = check_upload(path, "driving video", max_mb)
    frames, fps = count_frames(path)
    if frames > max_frames:
        raise InputError(
            f"the driving video has {frames} frames ({frames / fps:.1f} s); this server animates at most "
            f"{max_frames} frames: trim the video, or start the app with a larger --max-frames"
        )
    return load_driving_poses(path, progress=True)


def parse_side(size: float | int | None) -> tuple[int, int] | None:
    """The square output size from the page's number box (0 or empty: the model's own size)."""
    if not size:
        return None
    side = int(size)
    if side < 8 or side % 8:
        raise InputError(f"size must be a positive multiple of 8, got {size}")
    return side, side


def preview(reference: np.ndarray, driving, size: tuple[int, int], align: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """(skeleton of the first driving frame, aligned skeleton blended over the reference, a note)."""
    from magicpose.poses.framing import fit_image
    from magicpose.poses.render import draw_openpose
    from magicpose.workflows.animation import prepare_driving

    skeleton = draw_openpose(driving.frames[0], driving.width, driving.height)
    poses, aligned = prepare_driving(reference, driving, size, align)
    drawn = draw_openpose(poses.frames[0], *size)
    photo = fit_image(reference, size)
    # Bones over a dimmed photo: where the skeleton lands on the body is what alignment is about.
    lines = drawn.max(axis=2, keepdims=True) > 0
    overlay = np.where(lines, drawn, (photo * 0.6).astype(np.uint8))
    note = f"{len(driving)} driving frames at {driving.fps:g} fps; " + (
        "skeleton aligned to the reference body"
        if aligned
        else ("no person found in the photo: skeleton used as is" if align else "alignment off: skeleton used as is")
    )
    return skeleton, overlay, note


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
    align: bool,
    steps: int,
    guidance: float,
    seed: int,
) -> tuple[Path, Path, str]:
    """Animate and write result.mp4 and grid.mp4 (reference | skeleton | result) into `out_dir`."""
    from magicpose.media import write_video
    from magicpose.pipelines.pipeline_magicpose import check_recipe
    from magicpose.workflows.animation import animate, grid_frames

    check_recipe(num_inference_steps=int(steps), guidance_scale=float(guidance))
    animation = animate(
        pipeline,
        reference,
        driving,
        size=size,
        align=align,
        num_inference_steps=int(steps),
        guidance_scale=float(guidance),
        seed=int(seed),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    video, grid = out_dir / "result.mp4", out_dir / "grid.mp4"
    write_video(video, animation.frames, animation.fps)
    write_video(grid, grid_frames(animation), animation.fps)
    height, width = animation.frames[0].shape[:2]
    note = f"{len(animation.frames)} frames, {width}x{height}, {animation.fps:g} fps" + (
        ", aligned" if animation.aligned else ""
    )
    return video, grid, note


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


def build_app(config: AppConfig, startup_message: str | None = None):
    """The Gradio Blocks page. `startup_message` (e.g. why no model is available) is shown at the top."""
    import gradio as gr

    holder = PipelineHolder(config.load_pipeline)
    config.cache_dir.mkdir(parents=True, exist_ok=True)

    def as_gradio_error(function):
        @functools.wraps(function)  # Gradio reads the signature: inputs and the gr.Progress argument
        def wrapped(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except InputError as error:
                raise gr.Error(str(error), print_exception=False) from None

        return wrapped

    def output_size(size_box):
        size = parse_side(size_box)
        return size or model_size(holder.get())

    @as_gradio_error
    def on_example():
        photo, dance = puppet_examples(config.cache_dir, min(EXAMPLE_FRAMES, config.max_frames))
        return str(photo), str(dance)

    @as_gradio_error
    def on_preview(reference_path, driving_path, size_box, align, progress=gr.Progress(track_tqdm=True)):
        if not reference_path or not driving_path:
            return None, None, "upload a reference photo and a driving video to see the skeletons"
        reference = load_reference(reference_path, config.max_upload_mb)
        driving = load_driving(driving_path, config.max_upload_mb, config.max_frames)
        size = parse_side(size_box) or (128, 128)  # previews need no model
        return preview(reference, driving, size, align)

    @as_gradio_error
    def on_generate(
        reference_path, driving_path, size_box, align, steps, guidance, seed, progress=gr.Progress(track_tqdm=True)
    ):
        progress(0, desc="detecting the driving poses")
        reference = load_reference(reference_path, config.max_upload_mb)
        driving = load_driving(driving_path, config.max_upload_mb, config.max_frames)
        progress(0, desc="loading the model")
        pipeline = holder.get()
        size = output_size(size_box)
        # From here the pipeline's own tqdm bar (frames x steps) drives the page's bar (track_tqdm).
        progress(0, desc="aligning the skeleton")
        out_dir = config.cache_dir / "jobs" / uuid.uuid4().hex[:12]
        video, grid, note = generate(
            pipeline, reference, driving, out_dir, size=size, align=align, steps=steps, guidance=guidance, seed=seed
        )
        if config.model_note:
            note += f"\n\nNote: {config.model_note}"
        return str(video), str(grid), [str(video), str(grid)], note

    with gr.Blocks(title="MagicPose", analytics_enabled=False) as demo:
        gr.Markdown(
            "# MagicPose\nAnimate a person in a photo with the motion of a driving video. "
            f"Limits: {config.max_upload_mb:g} MB per file, {config.max_frames} driving frames; one job at a time."
        )
        if startup_message:
            gr.Markdown(f"**{startup_message}**", elem_id="startup-message")
        with gr.Row():
            with gr.Column():
                reference = gr.Image(label="reference photo", type="filepath", elem_id="reference", height=256)
                driving = gr.Video(label="driving video", elem_id="driving", height=256)
                example = gr.Button("Use the puppet example", elem_id="example")
            with gr.Column():
                skeleton = gr.Image(
                    label="driving skeleton (first frame)", elem_id="skeleton", interactive=False, height=256
                )
                alignment = gr.Image(label="alignment preview", elem_id="alignment", interactive=False, height=256)
                preview_note = gr.Markdown(elem_id="preview-note")
            with gr.Column():
                steps = gr.Number(label="steps", value=config.default_steps, precision=0, minimum=1, elem_id="steps")
                guidance = gr.Number(label="guidance", value=config.default_guidance, elem_id="guidance")
                seed = gr.Number(label="seed", value=42, precision=0, elem_id="seed")
                size = gr.Number(
                    label="size (square side in pixels; 0 = the model's)",
                    value=config.default_size,
                    precision=0,
                    minimum=0,
                    elem_id="size",
                )
                align = gr.Checkbox(label="align the skeleton to the reference body", value=True, elem_id="align")
                run = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
            result = gr.Video(label="result", elem_id="result", interactive=False, height=256)
            grid = gr.Video(label="reference | skeleton | result", elem_id="grid", interactive=False, height=256)
        with gr.Row():
            downloads = gr.File(label="download", file_count="multiple", elem_id="downloads", interactive=False)
            result_note = gr.Markdown(elem_id="result-note")

        preview_inputs = [reference, driving, size, align]
        preview_outputs = [skeleton, alignment, preview_note]
        example.click(on_example, None, [reference, driving]).then(on_preview, preview_inputs, preview_outputs)
        for component in (reference, driving):
            component.upload(on_preview, preview_inputs, preview_outputs)
        align.input(on_preview, preview_inputs, preview_outputs)
        run.click(
            on_generate,
            [reference, driving, size, align, steps, guidance, seed],
            [result, grid, downloads, result_note],
        )
    # One job at a time: a diffusion run takes the whole GPU (or CPU); the others wait in line.
    demo.queue(default_concurrency_limit=1, max_size=16)
    return demo
