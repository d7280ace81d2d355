"""The page of `magicpose app`: Gradio widgets wired to the plain functions of `magicpose.interfaces.app`.

    reference photo, driving video ─ previews (on upload, on every setting) ─ Generate ─ result + grid

`build_app` lays the page out; `launch` serves it.
"""

from __future__ import annotations

import functools
import os
import time
import uuid

from magicpose.errors import InputError
from magicpose.interfaces.app import (
    EXAMPLE_FRAMES,
    MAX_SIDE,
    AppConfig,
    PipelineHolder,
    driving_sound,
    generate,
    hide_paths,
    load_driving,
    load_reference,
    model_size,
    parse_size,
    person_choice,
    preview,
    prune_results,
    puppet_examples,
    sampling_numbers,
    settings_from_page,
    smooth_choice,
    upload_path,
)
from magicpose.pipelines.recipe import MAX_GUIDANCE, MAX_STEPS
from magicpose.poses.detect import detector_for_smoothing
from magicpose.poses.framing import FIT_MODES
from magicpose.poses.smoothing import DEFAULT_SMOOTHING, SMOOTHING_LEVELS
from magicpose.poses.types import Pose
from magicpose.workflows.animation import detect_reference_pose

# Every event takes its inputs unprocessed (preprocess=False): Gradio's own conversion of an upload or a number
# fails with its internal text and the server's upload path, so each value goes through the app's checks instead,
# which are the CLI's (the widgets' min/max only guide the browser's spinners).
RAW = dict(preprocess=False)


def build_app(config: AppConfig, startup_message: str | None = None):
    """The Gradio Blocks page. `startup_message` (e.g. why no model is available) is shown at the top."""
    import gradio as gr

    holder = PipelineHolder(config.load_pipeline)
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    prune_results(config.cache_dir, config.keep_results, config.keep_hours)

    def as_gradio_error(function):
        @functools.wraps(function)  # Gradio reads the signature: inputs and the gr.Progress argument
        def wrapped(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except InputError as error:
                raise gr.Error(hide_paths(str(error)), print_exception=False) from None

        return wrapped

    def read_inputs(reference_path, driving_path, person, smooth):
        """The photo, the driving motion and the photo's pose (an empty pose: nobody), with one detector."""
        reference = load_reference(reference_path, config.max_upload_mb)
        level = smooth_choice(smooth)
        with detector_for_smoothing(level or DEFAULT_SMOOTHING) as detector:
            driving = load_driving(
                driving_path,
                config.max_upload_mb,
                config.max_frames,
                person=person_choice(person),
                smooth=level,
                detector=detector,
            )
            return reference, driving, detect_reference_pose(reference, detector) or Pose()

    @as_gradio_error
    def on_example():
        photo, dance = puppet_examples(config.cache_dir, min(EXAMPLE_FRAMES, config.max_frames))
        return str(photo), str(dance)

    @as_gradio_error
    def on_preview(
        reference_path,
        driving_path,
        width,
        height,
        align,
        fit,
        driving_fit,
        scale,
        dx,
        dy,
        frame,
        person,
        smooth,
        progress=gr.Progress(track_tqdm=True),
    ):
        if upload_path(reference_path) is None or upload_path(driving_path) is None:
            return None, None, "upload a reference photo and a driving video to see the skeletons"
        settings = settings_from_page(align, fit, driving_fit, scale, dx, dy, frame)
        reference, driving, pose = read_inputs(reference_path, driving_path, person, smooth)
        size = parse_size(width, height) or (128, 128)  # previews need no model
        return preview(reference, driving, size, settings, reference_pose=pose)

    @as_gradio_error
    def on_generate(
        reference_path,
        driving_path,
        width,
        height,
        steps,
        guidance,
        seed,
        align,
        fit,
        driving_fit,
        scale,
        dx,
        dy,
        frame,
        person,
        smooth,
        audio,
        progress=gr.Progress(track_tqdm=True),
    ):
        settings = settings_from_page(align, fit, driving_fit, scale, dx, dy, frame, audio)
        size = parse_size(width, height)
        steps, guidance, seed = sampling_numbers(steps, guidance, seed)  # before the slow pose detection
        progress(0, desc="detecting the driving poses")
        reference, driving, pose = read_inputs(reference_path, driving_path, person, smooth)
        sound = driving_sound(driving, settings)  # told now, as the CLI tells it, not after the sampling
        for message in sound[1]:
            gr.Warning(message)
        progress(0, desc="loading the model")
        pipeline = holder.get()
        # From here the pipeline's own tqdm bar (frames x steps) drives the page's bar (track_tqdm).
        progress(0, desc="aligning the skeleton")
        out_dir = config.cache_dir / "jobs" / uuid.uuid4().hex[:12]
        video, grid, note = generate(
            pipeline,
            reference,
            driving,
            out_dir,
            size=size or model_size(pipeline),
            settings=settings,
            steps=steps,
            guidance=guidance,
            seed=seed,
            reference_pose=pose,
            sound=sound,
        )
        if config.model_note:
            note += f"\n\nNote: {config.model_note}"
        prune_results(config.cache_dir, config.keep_results, config.keep_hours)  # this one is the newest
        return str(video), str(grid), [str(video), str(grid)], note

    # uploads and results older than a day go every hour, and all of them when the server stops
    with gr.Blocks(title="MagicPose", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
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
                preview_note = gr.Markdown(label="preview note", elem_id="preview-note")
            with gr.Column():
                steps = gr.Number(
                    label="steps",
                    value=config.default_steps,
                    precision=0,
                    minimum=1,
                    maximum=MAX_STEPS,
                    elem_id="steps",
                )
                guidance = gr.Number(
                    label="guidance",
                    value=config.default_guidance,
                    minimum=0,
                    maximum=MAX_GUIDANCE,
                    elem_id="guidance",
                )
                seed = gr.Number(label="seed", value=42, precision=0, elem_id="seed")
                with gr.Row():
                    width = gr.Number(
                        label="width (0 = the model's)",
                        value=config.default_size,
                        precision=0,
                        minimum=0,
                        maximum=MAX_SIDE,
                        step=8,
                        elem_id="width",
                    )
                    height = gr.Number(
                        label="height (0 = as the width)",
                        value=0,
                        precision=0,
                        minimum=0,
                        maximum=MAX_SIDE,
                        step=8,
                        elem_id="height",
                    )
                fit = gr.Radio(list(FIT_MODES), value="person", label="fit the photo to the frame", elem_id="fit")
                audio = gr.Radio(["driving", "none"], value="driving", label="sound", elem_id="audio")
                align = gr.Checkbox(label="align the skeleton to the reference body", value=True, elem_id="align")
                with gr.Accordion("advanced: framing, alignment, poses", open=False):
                    driving_fit = gr.Radio(
                        list(FIT_MODES),
                        value="person",
                        label="fit the driving frame (alignment off)",
                        elem_id="driving-fit",
                    )
                    align_scale = gr.Number(
                        label="align scale (x the automatic size)", value=1.0, elem_id="align-scale"
                    )
                    with gr.Row():
                        align_dx = gr.Number(label="align offset x (px)", value=0, elem_id="align-dx")
                        align_dy = gr.Number(label="align offset y (px)", value=0, elem_id="align-dy")
                    align_frame = gr.Number(
                        label="align frame (the driving frame whose body is the driver's; -1 = automatic)",
                        value=-1,
                        precision=0,
                        elem_id="align-frame",
                    )
                    smooth = gr.Dropdown(
                        list(SMOOTHING_LEVELS), value=DEFAULT_SMOOTHING, label="smooth the skeleton", elem_id="smooth"
                    )
                    person = gr.Dropdown(
                        ["largest", "center", "0", "1", "2", "3"],
                        value="largest",
                        label="who drives (several people)",
                        elem_id="person",
                    )
                run = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
            result = gr.Video(label="result", elem_id="result", interactive=False, height=256)
            grid = gr.Video(label="reference | skeleton | result", elem_id="grid", interactive=False, height=256)
        with gr.Row():
            downloads = gr.File(label="download", file_count="multiple", elem_id="downloads", interactive=False)
            result_note = gr.Markdown(label="summary", elem_id="result-note")

        choices = [align, fit, driving_fit, align_scale, align_dx, align_dy, align_frame, person, smooth]
        preview_inputs = [reference, driving, width, height, *choices]
        preview_outputs = [skeleton, alignment, preview_note]
        # One endpoint per action (/example, /preview, /generate): the previews' many triggers are one event,
        # and the example's follow-up preview is the page's own step, not an endpoint.
        example.click(on_example, None, [reference, driving], api_name="example").then(
            on_preview, preview_inputs, preview_outputs, api_visibility="private", **RAW
        )
        gr.on(
            [reference.upload, driving.upload, *(component.input for component in choices)],
            on_preview,
            preview_inputs,
            preview_outputs,
            api_name="preview",
            **RAW,
        )
        run.click(
            on_generate,
            [reference, driving, width, height, steps, guidance, seed, *choices, audio],
            [result, grid, downloads, result_note],
            api_name="generate",
            **RAW,
        )
    # One job at a time: a diffusion run takes the whole GPU (or CPU); the others wait in line.
    demo.queue(default_concurrency_limit=1, max_size=16)
    return demo


def launch(demo, **options) -> None:
    """Serve the page until the server stops or the process is interrupted. Only now does the process tell
    Gradio, which reads it at run time, to send no usage reports (importing this module changes nothing
    process-wide). Gradio's own wait swallows Ctrl-C and SIGTERM (exit 0); this one closes the server and lets
    the interrupt reach `magicpose app`, which exits 130 / 143."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo.launch(prevent_thread_lock=True, **options)
    try:
        while demo.is_running:
            time.sleep(0.1)
    finally:
        demo.close()
