"""Every stage on the puppet world, each using the previous stages' exports, ending in a pipeline."""

import numpy as np
import pytest
import torch

from magicpose.training.trainer import train
from tests.training.helpers import tiny_config

pytestmark = pytest.mark.slow  # trains every stage once for the module (minutes on 2 CPU cores)

# configs/puppet's stage 1 and 2 `sampling:` (the embedded model's recipe); stage 1 here has none (official)
PUPPET_SAMPLING = {
    "scheduler": "dpm++",
    "num_inference_steps": 10,
    "guidance_scale": 3.0,
    "start_from_reference": True,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    exports = {}
    exports["vae"] = train(tiny_config("vae", root / "vae", train={"learning_rate": 1e-3}))
    prior = {"vae": str(exports["vae"] / "vae")}
    exports["base_unet"] = train(tiny_config("base_unet", root / "base_unet", model=prior))
    prior.update(unet=str(exports["base_unet"] / "unet"), text_context=str(exports["base_unet"] / "text_context"))
    exports["controlnet"] = train(tiny_config("controlnet", root / "controlnet", model=prior))
    prior["pose_control"] = str(exports["controlnet"] / "pose_control")
    exports["appearance"] = train(
        tiny_config("appearance", root / "appearance", model=prior, train={"image_guidance_dropout": 0.5})
    )
    prior["appearance_control"] = str(exports["appearance"] / "appearance_control")
    exports["pose"] = train(
        tiny_config(
            "pose",
            root / "pose",
            model=prior,
            train={"gradient_checkpointing": True, "gradient_accumulation_steps": 2},
            sampling=PUPPET_SAMPLING,
        )
    )
    prior["pose_control"] = str(exports["pose"] / "pose_control")
    prior["appearance_control"] = str(exports["pose"] / "appearance_control")
    exports["motion"] = train(tiny_config("motion", root / "motion", model=prior, data={"puppet_frames": 20}))
    return root, exports


def test_prerequisites_export_component_folders(runs):
    _, exports = runs
    from diffusers import AutoencoderKL

    assert (exports["vae"] / "vae" / "config.json").is_file()
    vae = AutoencoderKL.from_pretrained(exports["vae"] / "vae")
    assert vae.config.scaling_factor != 1.0  # calibrated to unit-variance latents at export
    assert (exports["base_unet"] / "unet" / "config.json").is_file()
    assert (exports["controlnet"] / "pose_control" / "config.json").is_file()


def test_each_stage_trains_only_its_part(runs):
    """Stage 2 starts from stage 1's appearance branch and the pretrained ControlNet and changes both;
    the base UNet stays what the base stage exported."""
    from safetensors.torch import load_file

    _, exports = runs
    weights = lambda stage, part: load_file(exports[stage] / part / "diffusion_pytorch_model.safetensors")  # noqa: E731
    base, after = weights("base_unet", "unet"), weights("pose", "unet")
    assert all(torch.equal(base[k], after[k]) for k in base)
    for part, before in (("appearance_control", "appearance"), ("pose_control", "controlnet")):
        old, new = weights(before, part), weights("pose", part)
        assert any(not torch.equal(old[k], new[k]) for k in old), part
    stage1 = weights("appearance", "pose_control")
    pretrained = weights("controlnet", "pose_control")
    assert all(torch.equal(stage1[k], pretrained[k]) for k in stage1)  # stage 1 leaves the ControlNet alone


def test_runs_leave_grids_checkpoints_and_tensorboard_logs(runs):
    root, _ = runs
    from magicpose.media import read_image

    for stage in ("vae", "base_unet", "controlnet", "appearance", "pose", "motion"):
        grid = read_image(root / stage / "validation" / "step-000002.png")
        columns = {"vae": 2, "base_unet": 2, "controlnet": 3}.get(stage, 4)
        rows = 4 if stage == "motion" else 2  # motion: the first frames of one clip
        assert grid.shape == (rows * 32 + (rows - 1) * 2, columns * 32 + (columns - 1) * 2, 3)
        assert (root / stage / "checkpoints" / "step-000002" / "trainable.safetensors").is_file()
        assert list((root / stage / "logs").rglob("events.out.tfevents.*"))


def test_exported_model_loads_and_animates(runs):
    from magicpose.pipelines.assembly import load_pipeline

    _, exports = runs
    pipeline = load_pipeline(exports["pose"])
    assert pipeline.config.start_from_reference  # its config's sampling: from the noised reference
    assert (
        type(pipeline.scheduler).__name__,
        pipeline.config.num_inference_steps,
        pipeline.config.guidance_scale,
    ) == ("DPMSolverMultistepScheduler", 10, 3.0)
    official = load_pipeline(exports["appearance"])  # no sampling section: the official recipe
    assert (
        type(official.scheduler).__name__,
        official.config.num_inference_steps,
        official.config.guidance_scale,
    ) == ("DDIMScheduler", 50, 7.0)
    assert not official.config.start_from_reference and official.config.guidance_interval is None
    reference = np.full((32, 32, 3), 128, np.uint8)
    poses = torch.rand(2, 3, 32, 32)
    frames = pipeline(reference, poses, num_inference_steps=2, height=32, width=32, output_type="np").frames[0]
    assert frames.shape == (2, 32, 32, 3) and np.isfinite(frames).all()


def test_stage_three_exports_a_trained_motion_adapter(runs):
    from magicpose.models.motion_module import build_motion_unet, load_motion_adapter
    from magicpose.pipelines.assembly import load_pipeline

    _, exports = runs
    adapter = load_motion_adapter(exports["motion"] / "motion_adapter")
    # AnimateDiff starts with zero temporal output projections; training must have moved them
    assert any(p.abs().sum() > 0 for name, p in adapter.named_parameters() if "proj_out" in name)
    pipeline = load_pipeline(exports["pose"])
    pipeline.unet = build_motion_unet(pipeline.unet, adapter)
    frames = pipeline(
        np.full((32, 32, 3), 128, np.uint8),
        torch.rand(3, 3, 32, 32),
        num_inference_steps=1,
        height=32,
        width=32,
        output_type="np",
    ).frames[0]
    assert frames.shape == (3, 32, 32, 3) and np.isfinite(frames).all()
