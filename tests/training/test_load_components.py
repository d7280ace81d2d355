"""`load_components` builds each network once: nothing the run replaces (by a folder or by `model.sd15`),
the appearance branch once (a copy of the final base UNet), the pose ControlNet once; and the preset's
random components come out as `presets.build_components` draws them."""

import functools
import json
from collections import Counter

import pytest
import torch
from diffusers import ControlNetModel, ModelMixin, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, PreTrainedModel

import magicpose.models.presets as presets
from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.presets import build_components
from magicpose.training.components import load_components
from magicpose.training.config import ModelConfig

NETWORKS = ("unet", "appearance_control", "pose_control", "vae", "text_context")
# Whole networks (their blocks, e.g. Transformer2DModel, are models too but are not counted)
COUNTED = {
    "UNet2DConditionModel",
    "AppearanceControlModel",
    "ControlNetModel",
    "AutoencoderKL",
    "TextContext",
    "CLIPTextModel",
}


@pytest.fixture(scope="module")
def sd15_folder(tmp_path_factory):
    """An SD-1.5 diffusers folder at the tiny preset's size (unet, vae, text_encoder, tokenizer), an
    OpenPose-ControlNet-like folder for it, a stage-1 appearance branch and another base UNet."""
    root = tmp_path_factory.mktemp("tiny_sd15")
    parts = build_components("tiny", seed=5)
    parts["unet"].save_pretrained(root / "sd15" / "unet")
    parts["vae"].save_pretrained(root / "sd15" / "vae")
    parts["pose_control"].save_pretrained(root / "openpose")
    AppearanceControlModel.from_unet(parts["unet"]).save_pretrained(root / "stage1" / "appearance_control")
    build_components("tiny", seed=9)["unet"].save_pretrained(root / "another_unet")
    torch.manual_seed(0)
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
        )
    ).save_pretrained(root / "sd15" / "text_encoder")
    tokens = (
        ["<|startoftext|>", "<|endoftext|>"]
        + [f"{c}</w>" for c in "abcdefghijklmnopqrstuvwxyz"]
        + list("abcdefghijklmnopqrstuvwxyz")
    )
    vocab = {token: i for i, token in enumerate(tokens)}
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77).save_pretrained(root / "sd15" / "tokenizer")
    (root / "sd15" / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))  # as SD-1.5's tokenizer/ holds them
    (root / "sd15" / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    return root


@pytest.fixture()
def constructions(monkeypatch):
    """Counts of models constructed, by class name (diffusers models, TextContext and transformers
    models; loading a folder constructs one too), with the preset builder not allowed to run."""
    counts = Counter()
    for base in (ModelMixin, PreTrainedModel):
        original = base.__init__

        @functools.wraps(original)
        def counting(self, *args, __original=original, **kwargs):
            if type(self).__name__ in COUNTED:
                counts[type(self).__name__] += 1
            __original(self, *args, **kwargs)

        monkeypatch.setattr(base, "__init__", counting)

    def refuse(*args, **kwargs):
        raise AssertionError("the preset built components although the config supplies them all")

    monkeypatch.setattr(presets, "build_components", refuse)
    monkeypatch.setattr(presets, "component_configs", refuse)
    return counts


def _sd15_config(root, **paths) -> ModelConfig:
    # preset sd15, as configs/sd15: the refusing preset builder guarantees that nothing SD-sized is built here
    return ModelConfig(
        preset="sd15", seed=7, sd15=str(root / "sd15"), **{name: str(path) for name, path in paths.items()}
    )


def test_stage_1_on_sd15_builds_each_network_once(sd15_folder, constructions):
    components = load_components(_sd15_config(sd15_folder, pose_control=sd15_folder / "openpose"))
    assert constructions == {
        "UNet2DConditionModel": 1,
        "AppearanceControlModel": 1,
        "ControlNetModel": 1,
        "AutoencoderKL": 1,
        "CLIPTextModel": 1,
        "TextContext": 1,
    }
    assert components["loaded"] == {"pose_control"}
    # what it builds is what it did before: the SD UNet and VAE, the appearance branch a copy of the UNet,
    # the ControlNet from its folder, the empty prompt's CLIP embedding
    sd15_unet = UNet2DConditionModel.from_pretrained(sd15_folder / "sd15" / "unet").state_dict()
    assert all(torch.equal(sd15_unet[k], v) for k, v in components["unet"].state_dict().items())
    appearance = components["appearance_control"].state_dict()
    assert appearance and all(torch.equal(sd15_unet[k], v) for k, v in appearance.items())
    pose = ControlNetModel.from_pretrained(sd15_folder / "openpose").state_dict()
    assert all(torch.equal(pose[k], v) for k, v in components["pose_control"].state_dict().items())
    assert components["text_context"](1).shape == (1, 77, 32)


def test_stage_2_on_sd15_loads_the_appearance_branch_and_copies_nothing(sd15_folder, constructions):
    components = load_components(
        _sd15_config(
            sd15_folder,
            pose_control=sd15_folder / "openpose",
            appearance_control=sd15_folder / "stage1" / "appearance_control",
        )
    )
    assert constructions == {
        "UNet2DConditionModel": 1,
        "AppearanceControlModel": 1,
        "ControlNetModel": 1,
        "AutoencoderKL": 1,
        "CLIPTextModel": 1,
        "TextContext": 1,
    }
    assert components["loaded"] == {"pose_control", "appearance_control"}


def test_sd15_without_a_controlnet_makes_one_from_the_unet_once(sd15_folder, constructions):
    components = load_components(_sd15_config(sd15_folder))
    assert constructions == {
        "UNet2DConditionModel": 1,
        "AppearanceControlModel": 1,
        "ControlNetModel": 1,
        "AutoencoderKL": 1,
        "CLIPTextModel": 1,
        "TextContext": 1,
    }
    with torch.random.fork_rng():
        torch.manual_seed(7)  # model.seed
        expected = ControlNetModel.from_unet(components["unet"], conditioning_channels=3).state_dict()
    assert all(torch.equal(expected[k], v) for k, v in components["pose_control"].state_dict().items())


def test_a_base_unet_folder_beside_sd15_is_the_only_unet_read(sd15_folder, constructions):
    components = load_components(
        _sd15_config(sd15_folder, unet=sd15_folder / "another_unet", pose_control=sd15_folder / "openpose")
    )
    assert constructions["UNet2DConditionModel"] == 1 and constructions["AppearanceControlModel"] == 1
    base = UNet2DConditionModel.from_pretrained(sd15_folder / "another_unet").state_dict()
    assert all(torch.equal(base[k], v) for k, v in components["appearance_control"].state_dict().items())


@pytest.mark.parametrize("preset", ["tiny", "puppet"])
def test_from_scratch_components_are_the_presets(preset):
    components = load_components(ModelConfig(preset=preset, seed=3))
    expected = build_components(preset, seed=3)
    for name in NETWORKS:
        built = expected[name].state_dict()
        assert all(torch.equal(built[k], v) for k, v in components[name].state_dict().items()), name
    assert components["loaded"] == set()


def test_parts_given_as_folders_are_not_built_and_the_rest_draw_as_before(tmp_path, monkeypatch):
    """The tiny preset's context is drawn after the VAE: a VAE folder still leaves it (and the rest) as before."""
    with torch.random.fork_rng():
        build_components("tiny", seed=11)["vae"].save_pretrained(tmp_path / "vae")
    expected = build_components("tiny", seed=3)
    components = load_components(ModelConfig(preset="tiny", seed=3, vae=str(tmp_path / "vae")))
    for name in ("unet", "appearance_control", "pose_control", "text_context"):
        built = expected[name].state_dict()
        assert all(torch.equal(built[k], v) for k, v in components[name].state_dict().items()), name
    assert not torch.equal(components["vae"].encoder.conv_in.weight, expected["vae"].encoder.conv_in.weight)

    # the puppet preset's context is zeros: a VAE folder means no random VAE is built at all
    counts = Counter()
    original = ModelMixin.__init__

    def counting(self, *args, **kwargs):
        if type(self).__name__ in COUNTED:
            counts[type(self).__name__] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(ModelMixin, "__init__", counting)
    load_components(ModelConfig(preset="puppet", vae=str(tmp_path / "vae")))
    assert counts == {
        "UNet2DConditionModel": 1,
        "AppearanceControlModel": 1,
        "ControlNetModel": 1,
        "AutoencoderKL": 1,
        "TextContext": 1,
    }
