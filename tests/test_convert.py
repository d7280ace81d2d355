"""`magicpose convert` and loading: the official tiny checkpoint becomes a folder that reproduces it."""

import json
import os
import stat
import warnings

import pytest
import torch
import yaml
from safetensors.torch import load_file

from magicpose.errors import MissingWeightsError
from magicpose.files import process_umask
from magicpose.interfaces.cli import main
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.official_checkpoint import (
    CLIP_PREFIX,
    COMPONENT_CLASSES,
    convert_official_state_dict,
    load_ldm_config,
)
from magicpose.models.text_context import TextContext, encode_prompt
from magicpose.pipelines.assembly import load_pipeline
from magicpose.pipelines.official import pipeline_from_official
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.reference_data import reference_path


@pytest.fixture(scope="module")
def converted_folder(tmp_path_factory):
    tiny = reference_path("magicdance", "tiny")
    out = tmp_path_factory.mktemp("convert") / "magicpose-tiny"
    code = main(
        ["convert", str(tiny / "official_state_dict.safetensors"), str(out), "--config", str(tiny / "config.yaml")]
    )
    assert code == 0
    return out


def test_converted_folder_reproduces_official_sampling(converted_folder):
    tiny = reference_path("magicdance", "tiny")
    cases = load_file(tiny / "cases.safetensors")
    sampling = json.loads((tiny / "cases.json").read_text())["sampling"]
    pipeline = load_pipeline(converted_folder)
    pipeline.set_progress_bar_config(disable=True)
    latents = pipeline.denoise(
        cases[sampling["x_T"]],
        cases["ref_latent"],
        cases["hint"],
        cases["context"],
        num_inference_steps=5,
        guidance_scale=7.0,
    )
    expected = cases[sampling["final_latent"]]
    assert float((latents - expected).abs().max() / expected.abs().max()) < 1e-4


def test_existing_output_is_not_overwritten_without_flag(converted_folder, capsys):
    tiny = reference_path("magicdance", "tiny")
    before = sorted(p.name for p in converted_folder.iterdir())
    code = main(
        [
            "convert",
            str(tiny / "official_state_dict.safetensors"),
            str(converted_folder),
            "--config",
            str(tiny / "config.yaml"),
        ]
    )
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in converted_folder.iterdir()) == before


def test_missing_checkpoint_and_garbage_file_are_clear_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.th"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    garbage = tmp_path / "model_state-1.th"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["convert", str(garbage), str(tmp_path / "out")]) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_incomplete_model_folder_lists_what_is_missing(converted_folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text((converted_folder / "model_index.json").read_text())
    (broken / "unet").mkdir()
    with pytest.raises(MissingWeightsError) as error:
        load_pipeline(broken)
    message = str(error.value)
    assert "unet/config.json" in message and "vae/ (folder)" in message and "pose_control/ (folder)" in message
    with pytest.raises(MissingWeightsError, match="no model_index.json"):
        load_pipeline(tmp_path)


def test_official_torch_file_with_module_prefix_converts(tmp_path):
    tiny = reference_path("magicdance", "tiny")
    state = load_file(tiny / "official_state_dict.safetensors")
    path = tmp_path / "model_state-110000.th"
    torch.save({"module." + key: value for key, value in state.items()}, path)  # a DDP-wrapped save
    out = tmp_path / "out"
    assert main(["convert", str(path), str(out), "--config", str(tiny / "config.yaml"), "--dtype", "bf16"]) == 0
    saved = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(tensor.dtype == torch.bfloat16 for tensor in saved.values())
    assert load_pipeline(out, dtype=torch.bfloat16).unet.dtype == torch.bfloat16


def _files(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _in_memory_conversion(state, config, dtype=None):
    """The conversion as it was done before components were written one at a time: every component
    initialised, loaded with a copy of its weights and cast, in one pipeline."""
    converted = convert_official_state_dict(state, config)
    components = {}
    for name, weights in converted.state_dicts.items():
        model = COMPONENT_CLASSES[name].from_config(converted.configs[name])
        model.load_state_dict(weights, strict=True)
        components[name] = model.to(dtype) if dtype is not None else model
    context = TextContext(length=77, dim=converted.configs["unet"]["cross_attention_dim"])  # no text encoder
    return MagicPosePipeline(**components, text_context=context, scheduler=official_ddim_scheduler())


@pytest.mark.parametrize("source, dtype", [("safetensors", None), ("th", torch.bfloat16)])
def test_converted_folder_is_byte_for_byte_the_in_memory_conversion(tmp_path, source, dtype):
    tiny = reference_path("magicdance", "tiny")
    state = load_file(tiny / "official_state_dict.safetensors")
    checkpoint = tiny / "official_state_dict.safetensors"
    if source == "th":
        checkpoint = tmp_path / "model_state-1.th"
        torch.save(state, checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _in_memory_conversion(state, load_ldm_config(tiny / "config.yaml"), dtype).save_pretrained(tmp_path / "before")
    flags = ["--dtype", "bf16"] if dtype is not None else []
    assert (
        main(["convert", str(checkpoint), str(tmp_path / "after"), "--config", str(tiny / "config.yaml"), *flags]) == 0
    )
    assert _files(tmp_path / "after") == _files(tmp_path / "before")
    for name in _files(tmp_path / "before"):
        assert (tmp_path / "after" / name).read_bytes() == (tmp_path / "before" / name).read_bytes(), name
    # The in-memory path (animate --official) builds the same weights.
    in_memory = pipeline_from_official(checkpoint, config=tiny / "config.yaml", dtype=dtype)
    loaded = load_pipeline(tmp_path / "after", dtype=dtype)
    for name in ("unet", "appearance_control", "pose_control", "vae"):
        ours, theirs = getattr(in_memory, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]) for key in ours), name
    context = load_file(tmp_path / "after" / "text_context" / "diffusion_pytorch_model.safetensors")["embedding"]
    assert torch.equal(in_memory.text_context.embedding, context)  # float32 in both


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_converted_folder_is_readable_as_the_umask_allows(tmp_path, mask):
    tiny = reference_path("magicdance", "tiny")
    previous = os.umask(mask)
    try:
        assert process_umask() == mask  # read without changing it
        code = main(
            [
                "convert",
                str(tiny / "official_state_dict.safetensors"),
                str(tmp_path / "out"),
                "--config",
                str(tiny / "config.yaml"),
            ]
        )
    finally:
        os.umask(previous)
    assert code == 0
    paths = [tmp_path / "out", *(tmp_path / "out").rglob("*")]
    assert any(path.name.endswith(".safetensors") for path in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o777 if path.is_dir() else 0o666) & ~mask, (path, oct(mode))
    if mask == 0o022:
        assert all(
            path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH) == stat.S_IRGRP | stat.S_IROTH for path in paths
        )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def _tiny_with_text_encoder(tmp_path):
    """The tiny checkpoint plus a small random CLIP text encoder (official keys), and its model YAML."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tiny = reference_path("magicdance", "tiny")
    clip_config = dict(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=32,
    )
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(**clip_config))
    state = load_file(tiny / "official_state_dict.safetensors")
    state.update({CLIP_PREFIX + "text_model." + key: value for key, value in clip.state_dict().items()})
    state[CLIP_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77)[None]
    checkpoint = tmp_path / "model_state-clip.th"
    torch.save(state, checkpoint)
    config = yaml.safe_load((tiny / "config.yaml").read_text())
    config["model"]["params"]["cond_stage_config"] = {"params": clip_config}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return checkpoint, tmp_path / "config.yaml", clip.eval()


def test_text_encoder_is_written_in_the_asked_dtype_and_the_context_comes_from_float32(tmp_path):
    checkpoint, config, clip = _tiny_with_text_encoder(tmp_path)
    assert main(["convert", str(checkpoint), str(tmp_path / "out"), "--config", str(config), "--dtype", "fp16"]) == 0
    saved = load_file(tmp_path / "out" / "text_encoder" / "model.safetensors")
    assert {value.dtype for value in saved.values()} == {torch.float16}
    expected = clip.state_dict()
    assert all(torch.equal(saved[key], expected[key].half()) for key in saved)
    context = load_file(tmp_path / "out" / "text_context" / "diffusion_pytorch_model.safetensors")["embedding"]
    assert context.dtype == torch.float32
    assert torch.equal(context, encode_prompt(clip, ""))
    pipeline = load_pipeline(tmp_path / "out", dtype=torch.float16)
    assert pipeline.text_encoder.dtype == torch.float16
    in_memory = pipeline_from_official(checkpoint, config=config, dtype=torch.float16)
    assert in_memory.text_encoder.dtype == torch.float16
    assert torch.equal(in_memory.text_context.embedding, context)


def test_a_converted_folder_carries_the_official_recipe(converted_folder):
    from magicpose.pipelines.assembly import load, sampling_recipe

    recipe = dict(
        num_inference_steps=50,
        guidance_scale=7.0,
        guidance_interval=None,
        start_from_reference=False,
        window_frames=16,
        window_overlap=4,
    )
    assert sampling_recipe(converted_folder) == recipe  # read from model_index.json, no weights loaded
    pipeline = load(converted_folder, device="cpu")
    assert pipeline.recipe() == recipe
    assert type(pipeline.scheduler).__name__ == "DDIMScheduler" and pipeline.scheduler.config.steps_offset == 1
