"""The web app's logic without a browser: limits, bad files, previews, generation, the puppet example."""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

from magicpose.errors import InputError
from magicpose.interfaces import app, app_page
from magicpose.media import read_video
from magicpose.pipelines.assembly import load_pipeline
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return app.puppet_examples(tmp_path_factory.mktemp("cache"), frames=4)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    MagicPosePipeline(**get_dummy_components()).save_pretrained(folder)
    return folder


def test_puppet_examples_are_a_photo_and_a_short_video(examples):
    photo, dance = examples
    frames, fps = read_video(dance)
    assert photo.suffix == ".png" and len(frames) == 4 and fps == pytest.approx(15)
    assert dance.stat().st_size < 300_000  # rendered at run time, small enough to cache anywhere


def test_upload_limits_and_bad_files_raise_input_errors(examples, tmp_path):
    photo, dance = examples
    with pytest.raises(InputError, match="at most 0.001 MB"):
        app.check_upload(photo, "reference photo", max_mb=0.001)
    with pytest.raises(InputError, match="no driving video"):
        app.load_driving(None, 50, 64)
    with pytest.raises(InputError, match="at most 3 frames"):
        app.load_driving(dance, 50, max_frames=3)
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match="cannot read .*broken.mp4 as a video"):
        app.load_driving(garbage, 50, 64)
    with pytest.raises(InputError):
        app.load_reference(garbage, 50)
    with pytest.raises(InputError, match="multiple of 8"):
        app.parse_size(30, 64)
    with pytest.raises(InputError, match="height must be a multiple of 8 from 8 to 2048"):
        app.parse_size(64, 4096)
    assert app.parse_size(0, 0) is None and app.parse_size(64, 0) == (64, 64) and app.parse_size(0, 48) == (48, 48)
    assert app.parse_size(64, 96) == (64, 96)  # not square: width x height, as the CLI's --size 64x96


def test_preview_shows_the_skeleton_and_aligns_it_to_the_reference(examples):
    photo, dance = examples
    reference = app.load_reference(photo, 50)
    driving = app.load_driving(dance, 50, 64)
    skeleton, overlay, note = app.preview(reference, driving, (64, 64), app.Settings(align=True))
    assert skeleton.shape == (driving.poses.height, driving.poses.width, 3) and skeleton.any()
    assert overlay.shape == (64, 64, 3) and "aligned" in note and "4 driving frames" in note
    _, unaligned, note = app.preview(reference, driving, (64, 64), app.Settings(align=False))
    assert "alignment off" in note and not np.array_equal(overlay, unaligned)
    # the advanced settings reach the preview (their geometry is tested in tests/poses/test_align.py)
    moved = app.settings_from_page(True, "person", "person", 1, 8, 0, -1)
    assert moved.align_offset == (8.0, 0.0) and moved.align_frame is None
    assert not np.array_equal(app.preview(reference, driving, (64, 64), moved)[1], overlay)
    with pytest.raises(InputError, match="--align-frame must be a driving frame from 0 to 3"):
        app.preview(reference, driving, (64, 64), app.settings_from_page(True, "person", "person", 1, 0, 0, 9))


def test_preview_takes_other_shapes_and_the_fit(examples):
    photo, dance = examples
    reference, driving = app.load_reference(photo, 50), app.load_driving(dance, 50, 64)
    for fit in ("pad", "crop", "person"):
        _, overlay, note = app.preview(reference, driving, (64, 96), app.Settings(fit=fit))
        assert overlay.shape == (96, 64, 3) and "aligned" in note


def test_generate_writes_the_result_and_the_grid(examples, model, tmp_path):
    photo, dance = examples
    pipeline = load_pipeline(model)
    reference, driving = app.load_reference(photo, 50), app.load_driving(dance, 50, 64)
    video, grid, note = app.generate(
        pipeline, reference, driving, tmp_path / "job", size=None, steps=1, guidance=7, seed=1
    )
    frames, fps = read_video(video)
    grid_frames, _ = read_video(grid)
    assert len(frames) == 4 and fps == pytest.approx(15) and frames[0].shape == (32, 32, 3)
    assert grid_frames[0].shape == (32, 96, 3) and note.startswith("4 frames at 15 fps, 32x32, aligned")
    assert "followed the one person in the video" in note
    with pytest.raises(InputError, match="steps"):
        app.generate(pipeline, reference, driving, tmp_path / "bad", size=None, steps=0, guidance=7.0, seed=1)


def test_missing_model_is_a_clear_message_not_a_crash(tmp_path):
    from magicpose.errors import MissingWeightsError
    from magicpose.interfaces.commands.app import model_problem

    def missing():
        raise MissingWeightsError("no default model is installed")

    with pytest.raises(InputError, match="no default model"):
        app.PipelineHolder(missing).get()
    args = argparse.Namespace(model=str(tmp_path / "nowhere"), official=None)
    assert "does not exist" in model_problem(args)


def test_importing_the_app_changes_no_process_wide_state():
    code = (
        "import os\nimport magicpose.interfaces.app, magicpose.interfaces.app_page\n"
        "print(os.environ.get('GRADIO_ANALYTICS_ENABLED'))"
    )
    env = {key: value for key, value in os.environ.items() if key != "GRADIO_ANALYTICS_ENABLED"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_the_page_builds_with_analytics_off_and_one_job_at_a_time(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    demo = app_page.build_app(
        app.AppConfig(load_pipeline=lambda: None, cache_dir=tmp_path), startup_message="No model"
    )
    assert demo.analytics_enabled is False and "GRADIO_ANALYTICS_ENABLED" not in os.environ
    assert all(block.concurrency_limit in (1, "default") for block in demo.fns.values())
    assert demo._queue.default_concurrency_limit == 1
    launched = {}
    monkeypatch.setattr(demo, "launch", lambda **options: launched.update(options))
    app_page.launch(demo, server_port=1)
    # served without Gradio's own wait, which would swallow SIGTERM (test_app_client.py checks the exit code)
    assert launched == {"server_port": 1, "prevent_thread_lock": True}
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_generate_keeps_the_driving_videos_sound_unless_told_not_to(examples, model, tmp_path):
    import av

    from magicpose.audio import AudioCut
    from magicpose.media import write_video
    from tests.test_audio import decoded, make_clip

    photo, dance = examples
    make_clip(tmp_path / "music.wav", 1.0, "pcm_s16le", 22050, "mono", video=False)
    frames, fps = read_video(dance)
    write_video(tmp_path / "dance.mp4", frames, fps, audio=AudioCut(tmp_path / "music.wav", 0.0, len(frames) / fps))
    pipeline = load_pipeline(model)
    reference, driving = app.load_reference(photo, 50), app.load_driving(tmp_path / "dance.mp4", 50, 64)
    video, grid, note = app.generate(
        pipeline, reference, driving, tmp_path / "job", size=(32, 48), steps=1, guidance=7, seed=1
    )
    assert "32x48" in note and "audio from dance.mp4" in note
    for path in (video, grid):
        _, rate, audio_seconds, video_seconds = decoded(path)
        assert rate == 22050 and abs(audio_seconds - video_seconds) < 1 / fps
    settings = app.settings_from_page(True, "pad", "person", 1, 0, 0, -1, audio="none")
    video, _, note = app.generate(
        pipeline, reference, driving, tmp_path / "quiet", size=None, settings=settings, steps=1, guidance=7, seed=1
    )
    with av.open(str(video)) as container:
        assert not container.streams.audio and "audio" not in note


def test_the_pages_handlers_take_the_widgets_values_in_order(examples, model, tmp_path):
    import inspect

    pipeline = load_pipeline(model)
    demo = app_page.build_app(app.AppConfig(load_pipeline=lambda: pipeline, cache_dir=tmp_path))
    handlers = {block.fn.__name__: block for block in demo.fns.values() if block.fn is not None}
    for name in ("on_preview", "on_generate"):  # every widget wired to a parameter, the progress bar last
        parameters = list(inspect.signature(handlers[name].fn).parameters)
        assert len(handlers[name].inputs) == len(parameters) - 1 and parameters[-1] == "progress"
    photo, dance = (str(path) for path in examples)
    advanced = [True, "pad", "person", 1.0, 0, 0, -1, "largest", "off"]
    skeleton, overlay, note = handlers["on_preview"].fn(photo, dance, 64, 96, *advanced, progress=lambda *a, **k: None)
    assert overlay.shape == (96, 64, 3) and "aligned" in note
    video, grid, files, note = handlers["on_generate"].fn(
        photo, dance, 32, 48, 1, 7.0, 3, *advanced, "driving", progress=lambda *a, **k: None
    )
    assert read_video(video)[0][0].shape == (48, 32, 3) and files == [video, grid] and "32x48" in note


def test_messages_shown_to_visitors_carry_no_server_paths():
    from magicpose.interfaces.app import hide_paths

    message = "cannot read /tmp/gradio/0f3a/clip.mp4 as a video; the model /srv/models/magicpose/unet is incomplete"
    assert hide_paths(message) == "cannot read clip.mp4 as a video; the model unet is incomplete"
    assert hide_paths("--steps must be from 1 to 1000 (x/y stays)") == "--steps must be from 1 to 1000 (x/y stays)"


def test_values_from_api_clients_are_checked_in_the_clis_words():
    # what a client may send in place of a widget's value (test_app_client.py sends some through the API)
    with pytest.raises(InputError, match="fit must be one of pad, crop, person, got 'stretch'"):
        app.settings_from_page(True, "stretch", "person", 1, 0, 0, -1)
    with pytest.raises(InputError, match="align scale must be above 0, got 0"):
        app.settings_from_page(True, "pad", "person", 0, 0, 0, -1)
    with pytest.raises(InputError, match="align frame must be a whole number, got 1.5"):
        app.settings_from_page(True, "pad", "person", 1, 0, 0, 1.5)
    with pytest.raises(InputError, match="align offset x must be a finite number, got inf"):
        app.settings_from_page(True, "pad", "person", 1, float("inf"), 0, -1)
    with pytest.raises(InputError, match="align must be true or false, got 'yes'"):
        app.settings_from_page("yes", "pad", "person", 1, 0, 0, -1)
    with pytest.raises(InputError, match="width must be a number, got 'wide'"):
        app.parse_size("wide", 64)
    with pytest.raises(InputError, match="height must be a number, got True"):
        app.parse_size(64, True)
    with pytest.raises(InputError, match="who drives must be largest, center or an index"):
        app.person_choice("tallest")
    with pytest.raises(InputError, match="smooth must be one of off, low, medium, high, got 'max'"):
        app.smooth_choice("max")
    with pytest.raises(InputError, match=r"a seed is from 0 to 2\*\*63 - 1, got 9223372036854775808"):
        app.sampling_numbers(10, 7, 2**63)
    assert app.sampling_numbers(10.0, 7, 2**63 - 1) == (10, 7.0, 2**63 - 1)
    assert app.settings_from_page(False, "pad", "crop", None, None, "", None) == app.Settings(
        align=False, fit="pad", driving_fit="crop"
    )
    assert app.person_choice(2) == 2 and app.person_choice("center") == "center" and app.person_choice("auto") is None
    assert app.upload_path({"path": "/up/a.png", "orig_name": "a.png"}) == app.Path("/up/a.png")
    assert app.upload_path(None) is None and app.upload_path("b.mp4") == app.Path("b.mp4")
    with pytest.raises(InputError, match="expected an uploaded file, got int"):
        app.upload_path(3)


def test_a_damaged_driving_sound_is_told_before_the_model_loads_and_beside_the_result(examples, model, tmp_path):
    import re
    import warnings

    from tests.test_real_media import damaged, make_clip, sound_of

    photo, dance = examples
    frames, fps = read_video(dance)
    make_clip(tmp_path / "clip.mkv", "libmp3lame", seconds=0.4, late=0.0, images=frames)  # 6 frames at 15 fps
    damaged(tmp_path / "clip.mkv", tmp_path / "damaged.mkv", lambda index: index == 5)
    pipeline, told = load_pipeline(model), []

    def load():
        told.append([str(warning.message) for warning in caught])  # what the visitor had been told by now
        return pipeline

    demo = app_page.build_app(app.AppConfig(load_pipeline=load, cache_dir=tmp_path / "cache"))
    handlers = {block.fn.__name__: block for block in demo.fns.values() if block.fn is not None}
    advanced = [True, "pad", "person", 1.0, 0, 0, -1, "largest", "off"]
    with warnings.catch_warnings(record=True) as caught:  # outside a server, gr.Warning is a Python warning
        warnings.simplefilter("always")
        video, _, _, note = handlers["on_generate"].fn(
            str(photo),
            str(tmp_path / "damaged.mkv"),
            32,
            32,
            1,
            7.0,
            3,
            *advanced,
            "driving",
            progress=lambda *a, **k: None,
        )
    damage = re.compile(r"^damaged\.mkv: [12] sound packet\(s\) do not decode and are skipped")  # mp3's reservoir
    assert [message for message in told[0] if damage.match(message)]  # shown before the model loaded, no paths
    assert damage.match(note.split("\n\nWarning: ")[1]) and str(tmp_path) not in note  # and beside the result
    samples, audio_seconds, video_seconds = sound_of(video)
    assert video_seconds == pytest.approx(0.4, abs=0.01) and abs(audio_seconds - video_seconds) < 1 / 15
