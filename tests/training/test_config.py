import numpy as np
import pytest

from magicpose.errors import InputError
from magicpose.training.config import load_config

CONFIG = """
stage: pose
train: {max_steps: 10, learning_rate: 1.0e-5}
output: {dir: runs/x}
"""


@pytest.fixture()
def path(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text(CONFIG)
    return file


def test_overrides_are_parsed_as_yaml_and_applied(path):
    config = load_config(
        path,
        [
            "train.max_steps=3",
            "train.learning_rate=1e-4",
            "train.gradient_checkpointing=true",
            "model.pose_control=null",
            "data.crop_scale=[0.5, 1.0]",
        ],
    )
    assert config.train.max_steps == 3 and config.train.learning_rate == pytest.approx(1e-4)
    assert config.train.gradient_checkpointing is True and config.data.crop_scale == (0.5, 1.0)
    assert config.output.dir == "runs/x" and config.stage == "pose"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_step=3", "unknown key"),
        ("trian.max_steps=3", "unknown section"),
        ("train.max_steps=many", "must be int"),
        ("train.max_steps=0", "at least 1"),
        ("train.mixed_precision=fp8", "fp16 or bf16"),
        ("train.image_guidance_dropout=1.5", r"\[0, 1\]"),
        ("stage=stage9", "stage must be one of"),
        ("max_steps", "section.key=value"),
    ],
)
def test_bad_configs_name_the_problem(path, override, message):
    with pytest.raises(InputError, match=message):
        load_config(path, [override])


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_cover_every_stage():
    from magicpose.training.config import STAGES
    from tests.training.helpers import training_configs

    assert {load_config(path).stage for path in training_configs()} == set(STAGES)


def test_puppet_size_gives_native_scale_patches_of_larger_frames():
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.training.data import training_dataset
    from tests.training.helpers import tiny_config

    config = tiny_config(
        "vae",
        "unused",
        data={
            "size": 16,
            "puppet_size": 32,
            "crop": "random",
            "crop_scale": [0.5, 0.5],
            "puppet_videos": 1,
            "puppet_frames": 2,
        },
    )
    target = training_dataset(config)[0]["target"]
    assert target.shape == (3, 16, 16)
    # the patch is a 16x16 window of some 32x32 training frame, pixel for pixel (no resampling)
    pixels = ((target.numpy().transpose(1, 2, 0) + 1) * 127.5).round().astype(int)
    video = PuppetVideo(video_spec("train", 0, width=32, height=32, num_frames=2))
    frames = [video.frame(f).image.astype(int) for f in range(2)]
    windows = [frame[y : y + 16, x : x + 16] for frame in frames for y in range(17) for x in range(17)]
    assert min(np.abs(window - pixels).max() for window in windows) <= 1


def test_sampling_defaults_to_the_official_recipe(path):
    sampling = load_config(path).sampling
    assert (sampling.scheduler, sampling.num_inference_steps, sampling.guidance_scale) == ("ddim", 50, 7.0)
    assert sampling.start_from_reference is False and sampling.guidance_interval is None
    assert (sampling.window_frames, sampling.window_overlap) == (16, 4)
    sampling = load_config(path, ["sampling.guidance_interval=[500, 1000]", "sampling.scheduler=euler-a"]).sampling
    assert sampling.guidance_interval == (500.0, 1000.0) and sampling.scheduler == "euler-a"


def test_sampling_scheduler_names_are_the_pipelines():
    from magicpose.pipelines.recipe import SCHEDULER_NAMES
    from magicpose.pipelines.schedulers import SCHEDULERS

    assert SCHEDULER_NAMES == tuple(SCHEDULERS)


def test_a_config_that_validates_samples(path):
    """The config checks the sampling recipe with the pipeline's own check: a guidance the pipeline would
    refuse at the first validation grid is refused when the config is read."""
    from magicpose.pipelines.recipe import MAX_GUIDANCE, check_recipe

    check_recipe(guidance_scale=MAX_GUIDANCE)
    assert load_config(path, [f"sampling.guidance_scale={MAX_GUIDANCE}"]).sampling.guidance_scale == MAX_GUIDANCE
    with pytest.raises(InputError):
        check_recipe(guidance_scale=50)
    with pytest.raises(InputError, match="sampling.guidance_scale must be from 0 to 30.*got 50"):
        load_config(path, ["sampling.guidance_scale=50"])
    with pytest.raises(InputError, match="output.validation_guidance_scale .* must be from 0 to 30.*got 50"):
        load_config(path, ["output.validation_guidance_scale=50"])
    with pytest.raises(InputError, match="output.validation_inference_steps .* must be from 1 to 1000, got 0"):
        load_config(path, ["output.validation_inference_steps=0"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("sampling.scheduler=pndm", "sampling.scheduler must be one of ddim, dpm\\+\\+, unipc, euler-a, got 'pndm'"),
        ("sampling.num_inference_steps=0", "sampling.num_inference_steps must be from 1 to 1000, got 0"),
        ("sampling.num_inference_steps=2.5", "sampling.num_inference_steps must be int"),
        ("sampling.guidance_scale=-1", "sampling.guidance_scale must be from 0 to 30"),
        ("sampling.guidance_scale=.nan", "sampling.guidance_scale must be from 0 to 30"),
        ("sampling.start_from_reference=yes please", "sampling.start_from_reference must be true or false"),
        (
            "sampling.guidance_interval=[800, 200]",
            r"sampling.guidance_interval must be \[low, high\] training timesteps with 0 <= low < high <= 1000",
        ),
        ("sampling.guidance_interval=[0, 1001]", "sampling.guidance_interval must be \\[low, high\\]"),
        ("sampling.guidance_interval=[-1, 500]", "sampling.guidance_interval must be \\[low, high\\]"),
        ("sampling.guidance_interval=500", "sampling.guidance_interval must be a list of 2 numbers"),
        ("sampling.window_frames=0", "sampling.window_frames must be at least 1"),
        (
            "sampling.window_overlap=16",
            r"sampling.window_overlap must be from 0 to the window length - 1 \(15\), got 16",
        ),
        ("sampling.window_overlap=-1", "sampling.window_overlap must be from 0"),
        ("sampling.steps=10", "unknown key"),
    ],
)
def test_bad_sampling_values_name_the_problem(path, override, message):
    with pytest.raises(InputError, match=message):
        load_config(path, [override])
