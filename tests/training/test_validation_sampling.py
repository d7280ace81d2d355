"""Validation grids sample as exported models do, through `MagicPosePipeline.denoise`: the MagicPose stages
with the config's `sampling:` recipe, the prerequisites (base UNet, ControlNet) their own networks alone."""

import dataclasses

import pytest
import torch

from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.training.config import OutputConfig, SamplingConfig
from magicpose.training.data import validation_batch
from magicpose.training.stages import build_stage, trainable_parameters
from magicpose.training.validation import save_validation_grid, validation_recipe
from tests.training.helpers import tiny_config

# A recipe unlike the defaults in every setting the grid depends on (the puppet configs' `sampling:`, 2 steps).
RECIPE = {"scheduler": "dpm++", "num_inference_steps": 2, "guidance_scale": 3.0, "start_from_reference": True}


def _give_the_controlnet_an_effect(control) -> None:
    """`from_unet`'s zero-initialised convolutions (hint embedding out, residual outputs) add nothing:
    random ones make the poses matter."""
    with torch.random.fork_rng():
        torch.manual_seed(5)
        zeros = [
            control.controlnet_cond_embedding.conv_out,
            *control.controlnet_down_blocks,
            control.controlnet_mid_block,
        ]
        for block in zeros:
            for parameter in block.parameters():
                parameter.data.normal_(0, 0.05)


def _official_ddim(eps, shape: tuple, steps: int) -> torch.Tensor:
    """The official sampler written out (DDIM, eta 0, from pure noise seeded 42): the prerequisite grids'
    loop before they sampled through the pipeline, kept as the yardstick."""
    scheduler = official_ddim_scheduler()
    scheduler.set_timesteps(steps)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(42))
    for t in scheduler.timesteps:
        latents = scheduler.step(eps(latents, t), t, latents, return_dict=False)[0]
    return latents


@pytest.mark.parametrize("stage_name", ["base_unet", "controlnet"])
def test_prerequisite_grids_are_the_official_ddim_sampler_through_the_pipeline(tmp_path, stage_name):
    """The base UNet alone, and with the ControlNet (the pipeline without a reference), each sample the
    network itself: no image guidance, pure noise, whatever the recipe's guidance and start say."""
    config = tiny_config(stage_name, tmp_path, sampling={**RECIPE, "scheduler": "ddim"})
    stage = build_stage(config).eval()
    if stage_name == "controlnet":
        _give_the_controlnet_an_effect(stage.pose_control)
    batch = validation_batch(config, 2)
    recipe = validation_recipe(config.sampling, config.output)
    columns = dict(stage.validation_columns(batch, recipe))
    assert list(columns) == (["pose"] if stage_name == "controlnet" else []) + ["generated", "ground truth"]

    context = stage.context(2)
    pose = batch["pose_image"]

    def eps(x, t):
        residuals = {}
        if stage_name == "controlnet":
            down, mid = stage.pose_control(
                x, t, encoder_hidden_states=context, controlnet_cond=pose, return_dict=False
            )
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return stage.unet(x, t, encoder_hidden_states=context, return_dict=False, **residuals)[0]

    with torch.no_grad():
        side = 32 // 2 ** (len(stage.vae.config.block_out_channels) - 1)
        latents = _official_ddim(eps, (2, stage.vae.config.latent_channels, side, side), recipe.num_inference_steps)
        expected = ((stage.vae.decode(latents / stage.vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(columns["generated"], expected, atol=1e-5, rtol=0)
    assert expected.std() > 0.01
    if stage_name == "controlnet":  # the poses reach the sample
        without = dict(stage.validation_columns({**batch, "pose_image": torch.zeros_like(pose)}, recipe))
        assert (without["generated"] - columns["generated"]).abs().max() > 1e-4  # float noise: ~1e-7
    trained = stage.unet if stage_name == "base_unet" else stage.pose_control  # still training
    assert all(p.requires_grad for p in trained.parameters()) and len(trainable_parameters(stage)) == len(
        list(trained.parameters())
    )


def test_validation_settings_override_the_recipe_only_where_set():
    sampling = SamplingConfig(**RECIPE)
    assert validation_recipe(sampling, OutputConfig()) == sampling  # the defaults: the recipe itself
    recipe = validation_recipe(sampling, OutputConfig(validation_inference_steps=7, validation_guidance_scale=1.0))
    assert recipe == dataclasses.replace(sampling, num_inference_steps=7, guidance_scale=1.0)
    assert validation_recipe(sampling, OutputConfig(validation_inference_steps=7)).guidance_scale == 3.0


def test_stage_two_grid_generates_what_the_export_samples(tmp_path):
    from magicpose.pipelines.assembly import load_pipeline
    from magicpose.training.export import export_components

    config = tiny_config("pose", tmp_path / "run", sampling=RECIPE, output={"validation_inference_steps": None})
    stage = build_stage(config).eval()
    _give_the_controlnet_an_effect(stage.model.pose_control)
    batch = validation_batch(config, 2)
    columns = dict(stage.validation_columns(batch, validation_recipe(config.sampling, config.output)))

    # The export of these very modules, sampled with the recipe it carries (nothing passed to denoise).
    export_components(stage.exported(), tmp_path / "export", config.sampling)
    pipeline = load_pipeline(tmp_path / "export")
    assert type(pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"
    generator = torch.Generator().manual_seed(42)
    side = 32 // pipeline.vae_scale_factor
    noise = torch.randn((2, pipeline.unet.config.in_channels, side, side), generator=generator)  # one draw per row
    latents = pipeline.denoise(
        noise,
        pipeline.encode_reference(batch["reference"]),
        batch["pose_image"],
        pipeline.encode_context(None),
        generator=generator,
        frame_chunk_size=2,
    )
    expected = ((pipeline.decode_latents(latents, 2) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(columns["generated"], expected, atol=1e-5, rtol=0)
    assert expected.std() > 0.01  # an image, not a constant

    # The recipe is what decides: the official one samples something else from the same modules.
    official = dict(stage.validation_columns(batch, dataclasses.replace(SamplingConfig(), num_inference_steps=2)))
    assert (official["generated"] - columns["generated"]).abs().max() > 1e-3


@pytest.mark.parametrize("stage_name", ["appearance", "motion"])
def test_validation_leaves_the_stage_as_it_trains(tmp_path, stage_name):
    """The pipeline wraps the networks in a model of its own, which changes no requires_grad flag: a motion
    UNet's temporal layers train on afterwards, through the same reference bank (the same loss)."""
    clips = stage_name == "motion"
    config = tiny_config(stage_name, tmp_path, sampling=RECIPE, data={"puppet_frames": 20} if clips else {})
    stage = build_stage(config)
    trained = [name for name, parameter in stage.named_parameters() if parameter.requires_grad]
    batch = validation_batch(config, 1 if clips else 2, clips=clips)
    loss = stage(batch, torch.Generator().manual_seed(0))

    grid = save_validation_grid(stage, batch, tmp_path / "grid.png", validation_recipe(config.sampling, config.output))
    assert grid.is_file() and stage.training
    assert [name for name, parameter in stage.named_parameters() if parameter.requires_grad] == trained
    assert len(trainable_parameters(stage)) == len(trained) > 0
    torch.testing.assert_close(stage(batch, torch.Generator().manual_seed(0)), loss, atol=0, rtol=0)
