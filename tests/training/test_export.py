import json
from pathlib import Path

import torch
import yaml

from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.presets import build_components
from magicpose.pipelines.recipe import RECIPE_KEYS
from magicpose.training.config import config_from_dict, load_config
from magicpose.training.export import calibrate_vae_latents, export_components
from tests.training.helpers import training_configs


def test_vae_calibration_centres_and_scales_the_latents_without_changing_reconstructions():
    vae = build_components("puppet")["vae"]
    with torch.no_grad():
        vae.quant_conv.bias[:4] += torch.tensor([3.0, -2.0, 1.0, 4.0])  # latents with large per-channel offsets
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = vae.decode(vae.encode(images).latent_dist.mode()).sample
        scale = calibrate_vae_latents(vae, images)
        latents = vae.encode(images).latent_dist.mode()
        after = vae.decode(latents).sample
    assert torch.allclose(before, after, atol=1e-5)
    assert latents.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert abs((latents * scale).std().item() - 1.0) < 1e-3


# The sampling recipe a whole-pipeline export carries (the config's `sampling:` section).
ROOT = Path(__file__).resolve().parents[2]


def _export_pipeline(tmp_path, sampling):
    parts = build_components("tiny")
    del parts["scheduler"]
    out = export_components(parts, tmp_path / "export", sampling)
    index = json.loads((out / "model_index.json").read_text())
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    return out, {key: index[key] for key in RECIPE_KEYS}, scheduler


def test_an_sd15_config_exports_the_official_recipe(tmp_path):
    config = load_config(ROOT / "configs" / "sd15" / "stage1_appearance.yaml")  # says nothing about sampling
    _, recipe, scheduler = _export_pipeline(tmp_path, config.sampling)
    assert recipe == {
        "num_inference_steps": 50,
        "guidance_scale": 7.0,
        "guidance_interval": None,
        "start_from_reference": False,
        "window_frames": 16,
        "window_overlap": 4,
    }
    official = official_ddim_scheduler().config
    assert scheduler["_class_name"] == "DDIMScheduler"
    assert all(
        scheduler[key] == official[key]
        for key in (
            "timestep_spacing",
            "steps_offset",
            "set_alpha_to_one",
            "beta_schedule",
            "beta_start",
            "beta_end",
            "clip_sample",
        )
    )
    assert _export_pipeline(tmp_path / "none", None)[1] == recipe  # no recipe given at all: the official one too


def test_a_puppet_config_exports_the_embedded_models_recipe(tmp_path):
    config = load_config(ROOT / "configs" / "puppet" / "stage2_pose.yaml")
    _, recipe, scheduler = _export_pipeline(tmp_path, config.sampling)
    embedded = json.loads((ROOT / "src" / "magicpose" / "default_model" / "model_index.json").read_text())
    assert recipe == {key: embedded[key] for key in RECIPE_KEYS}
    assert recipe["num_inference_steps"] == 10 and recipe["start_from_reference"] is True
    assert scheduler["_class_name"] == "DPMSolverMultistepScheduler"


def test_every_config_that_exports_a_pipeline_says_how_it_samples_or_is_sd15():
    for path in training_configs():
        config = load_config(path)
        if config.stage in ("appearance", "pose"):
            explicit = "sampling" in yaml.safe_load(path.read_text())
            assert explicit == (path.parent.name == "puppet"), path


def test_a_sampling_section_is_what_the_export_samples_with(tmp_path):
    from magicpose.pipelines.assembly import load_pipeline

    config = config_from_dict(
        {
            "stage": "pose",
            "sampling": {
                "scheduler": "unipc",
                "num_inference_steps": 12,
                "guidance_scale": 2.5,
                "start_from_reference": True,
                "guidance_interval": [100, 900],
                "window_frames": 8,
                "window_overlap": 2,
            },
        }
    )
    out, recipe, scheduler = _export_pipeline(tmp_path, config.sampling)
    assert recipe == {
        "num_inference_steps": 12,
        "guidance_scale": 2.5,
        "guidance_interval": [100.0, 900.0],
        "start_from_reference": True,
        "window_frames": 8,
        "window_overlap": 2,
    }
    assert scheduler["_class_name"] == "UniPCMultistepScheduler"
    pipeline = load_pipeline(out)
    assert type(pipeline.scheduler).__name__ == "UniPCMultistepScheduler"
    assert pipeline.recipe() == {**recipe, "guidance_interval": (100.0, 900.0)}
