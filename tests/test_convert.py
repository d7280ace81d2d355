"""`magicpose convert` and loading: the official tiny checkpoint becomes a folder that reproduces it."""

import json

import pytest
import torch
from safetensors.torch import load_file

from magicpose.errors import MissingWeightsError
from magicpose.interfaces.cli import main
from magicpose.pipelines.assembly import load_pipeline
from tests.reference_data import reference_path


@pytest.fixture(scope="module")
def converted_folder(tmp_path_factory):
    tiny = reference_path("magicdance", "tiny")
    out = tmp_path_factory.mktemp("convert") / "magicpose-tiny"
    code = main(["convert", str(tiny / "official_state_dict.safetensors"), str(out), "--config", str(tiny / "config.yaml")])
    assert code == 0
    return out


def test_converted_folder_reproduces_official_sampling(converted_folder):
    tiny = reference_path("magicdance", "tiny")
    cases = load_file(tiny / "cases.safetensors")
    sampling = json.loads((tiny / "cases.json").read_text())["sampling"]
    pipeline = load_pipeline(converted_folder)
    pipeline.set_progress_bar_config(disable=True)
    latents = pipeline.denoise(cases[sampling["x_T"]], cases["ref_latent"], cases["hint"], cases["context"],
                               num_inference_steps=5, guidance_scale=7.0)
    expected = cases[sampling["final_latent"]]
    assert float((latents - expected).abs().max() / expected.abs().max()) < 1e-4


def test_existing_output_is_not_overwritten_without_flag(converted_folder, capsys):
    tiny = reference_path("magicdance", "tiny")
    before = sorted(p.name for p in converted_folder.iterdir())
    code = main(["convert", str(tiny / "official_state_dict.safetensors"), str(converted_folder), "--config", str(tiny / "config.yaml")])
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
