"""The web app's logic without a browser: limits, bad files, previews, generation, the puppet example."""

import argparse

import numpy as np
import pytest

from magicpose.errors import InputError
from magicpose.interfaces import app
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
    with pytest.raises(InputError, match="not a readable video"):
        app.load_driving(garbage, 50, 64)
    with pytest.raises(InputError):
        app.load_reference(garbage, 50)
    with pytest.raises(InputError, match="multiple of 8"):
        app.parse_side(30)
    assert app.parse_side(0) is None and app.parse_side(64) == (64, 64)


def test_preview_shows_the_skeleton_and_aligns_it_to_the_reference(examples):
    photo, dance = examples
    reference = app.load_reference(photo, 50)
    driving = app.load_driving(dance, 50, 64)
    skeleton, overlay, note = app.preview(reference, driving, (64, 64), align=True)
    assert skeleton.shape == (driving.height, driving.width, 3) and skeleton.any()
    assert overlay.shape == (64, 64, 3) and "aligned" in note and "4 driving frames" in note
    _, unaligned, note = app.preview(reference, driving, (64, 64), align=False)
    assert "alignment off" in note and not np.array_equal(overlay, unaligned)


def test_generate_writes_the_result_and_the_grid(examples, model, tmp_path):
    photo, dance = examples
    pipeline = load_pipeline(model)
    reference, driving = app.load_reference(photo, 50), app.load_driving(dance, 50, 64)
    video, grid, note = app.generate(
        pipeline, reference, driving, tmp_path / "job", size=None, align=True, steps=1, guidance=7.0, seed=1
    )
    frames, fps = read_video(video)
    grid_frames, _ = read_video(grid)
    assert len(frames) == 4 and fps == pytest.approx(15) and frames[0].shape == (32, 32, 3)
    assert grid_frames[0].shape == (32, 96, 3) and "4 frames, 32x32" in note
    with pytest.raises(InputError, match="steps"):
        app.generate(
            pipeline, reference, driving, tmp_path / "bad", size=None, align=True, steps=0, guidance=7.0, seed=1
        )


def test_missing_model_is_a_clear_message_not_a_crash(tmp_path):
    from magicpose.errors import MissingWeightsError
    from magicpose.interfaces.commands.app import model_problem

    def missing():
        raise MissingWeightsError("no default model is installed")

    with pytest.raises(InputError, match="no default model"):
        app.PipelineHolder(missing).get()
    args = argparse.Namespace(model=str(tmp_path / "nowhere"), official=None)
    assert "does not exist" in model_problem(args)


def test_the_page_builds_with_analytics_off_and_one_job_at_a_time(tmp_path):
    import os

    demo = app.build_app(app.AppConfig(load_pipeline=lambda: None, cache_dir=tmp_path), startup_message="No model")
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and demo.analytics_enabled is False
    assert all(block.concurrency_limit in (1, "default") for block in demo.fns.values())
    assert demo._queue.default_concurrency_limit == 1
