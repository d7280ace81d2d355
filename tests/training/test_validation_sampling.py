"""Validation grids sample as exported models do: the MagicPose stages through `MagicPosePipeline.denoise`
with the config's `sampling:` recipe, on the stage's own networks."""

import dataclasses

import pytest
import torch

from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.training.config import OutputConfig, SamplingConfig
from magicpose.training.data import validation_batch
from magicpose.training.stages import build_stage, trainable_parameters
from magicpose.training.validation import ddim_sample, save_validation_grid, validation_columns, validation_recipe
from tests.training.helpers import tiny_config

# A recipe unlike the defaults in every setting the grid depends on (the puppet configs' `sampling:`, 2 steps).
RECIPE = {"scheduler": "dpm++", "num_inference_steps": 2, "guidance_scale": 3.0, "start_from_reference": True}


def test_ddim_sample_with_zero_eps_only_rescales_the_noise():
    # With eps = 0, DDIM only rescales: x_prev = sqrt(a_prev / a_t) x_t (Song et al. 2021, Eq. 12), so S steps
    # from pure noise give sqrt(a_final / a_first) noise, a_final = alphas_cumprod[0] (set_alpha_to_one=False).
    shape = (2, 4, 8, 8)
    sample = ddim_sample(lambda x, t: torch.zeros_like(x), shape, 4, "cpu", torch.float32)
    scheduler = official_ddim_scheduler()
    scheduler.set_timesteps(4)
    first_alpha, final_alpha = scheduler.alphas_cumprod[scheduler.timesteps[0]], scheduler.alphas_cumprod[0]
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(42))
    assert torch.allclose(sample, (final_alpha / first_alpha).sqrt() * noise, atol=1e-5)


def test_validation_settings_override_the_recipe_only_where_set():
    sampling = SamplingConfig(**RECIPE)
    assert validation_recipe(sampling, OutputConfig()) == sampling  # the defaults: the recipe itself
    recipe = validation_recipe(sampling, OutputConfig(validation_inference_steps=7, validation_guidance_scale=1.0))
    assert recipe == dataclasses.replace(sampling, num_inference_steps=7, guidance_scale=1.0)
    assert validation_recipe(sampling, OutputConfig(validation_inference_steps=7)).guidance_scale == 3.0


def _give_the_controlnet_an_effect(stage) -> None:
    """`from_unet`'s zero-initialised outputs add nothing: random ones make the poses matter."""
    with torch.random.fork_rng():
        torch.manual_seed(5)
        control = stage.model.pose_control
        for block in [*control.controlnet_down_blocks, control.controlnet_mid_block]:
            for parameter in block.parameters():
                parameter.data.normal_(0, 0.05)


def test_stage_two_grid_generates_what_the_export_samples(tmp_path):
    from magicpose.pipelines.assembly import load_pipeline
    from magicpose.training.export import export_components

    config = tiny_config("pose", tmp_path / "run", sampling=RECIPE, output={"validation_inference_steps": None})
    stage = build_stage(config).eval()
    _give_the_controlnet_an_effect(stage)
    batch = validation_batch(config, 2)
    columns = dict(validation_columns(stage, batch, validation_recipe(config.sampling, config.output)))

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
    official = dict(validation_columns(stage, batch, dataclasses.replace(SamplingConfig(), num_inference_steps=2)))
    assert (official["generated"] - columns["generated"]).abs().max() > 1e-3


@pytest.mark.parametrize("stage_name", ["appearance", "motion"])
def test_validation_leaves_the_stage_as_it_trains(tmp_path, stage_name):
    """The pipeline wraps the networks in a model of its own, which freezes the base UNet: a motion UNet's
    temporal layers must train on afterwards, through the same reference bank (the same loss)."""
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
