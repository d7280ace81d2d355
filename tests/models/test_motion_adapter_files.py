"""A motion adapter's temporal norm is recorded and comes back with it; a damaged AnimateDiff file is refused
in one line (the CLI: exit 2, no traceback, nothing written)."""

import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import MotionAdapter

import magicpose.training.motion_stage as motion_stage
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.errors import InputError
from magicpose.interfaces.cli import main
from magicpose.media import write_image
from magicpose.models.default import default_model_folder
from magicpose.models.motion_module import (
    PER_FRAME,
    POOLED,
    FrameGroupNorm,
    build_motion_unet,
    extract_motion_adapter,
    load_motion_adapter,
    save_motion_adapter,
    temporal_norm_of,
)
from magicpose.poses.openpose_json import save_poses
from tests.dummy_components import get_dummy_components
from tests.motion_helpers import build_motion_adapter, motion_adapter_config, to_animatediff_layout

HEADS = 4  # the tiny test adapter's


@pytest.fixture(scope="module")
def original():
    """A tiny adapter's tensors under AnimateDiff's own names, as `mm_sd_v15_v2.ckpt` holds them."""
    return to_animatediff_layout(build_motion_adapter("tiny", seed=5, zero_init=False))


@pytest.fixture()
def animatediff_file(original, tmp_path):
    path = tmp_path / "mm_tiny_v2.ckpt"
    torch.save(original, path)
    return path


def _norms(module) -> set[type]:
    return {type(block.norm) for name, block in module.named_modules() if name.endswith("motion_modules.0")}


def test_the_norm_is_recorded_in_the_folder_and_loads_back(animatediff_file, tmp_path):
    unet = get_dummy_components()["unet"]
    adapter = load_motion_adapter(animatediff_file, num_attention_heads=HEADS)
    motion_unet = build_motion_unet(unet, adapter)
    assert temporal_norm_of(motion_unet) == PER_FRAME and _norms(motion_unet) == {FrameGroupNorm}
    folder = save_motion_adapter(extract_motion_adapter(motion_unet), tmp_path / "converted")
    assert json.loads((folder / "config.json").read_text())["temporal_norm"] == PER_FRAME
    again = load_motion_adapter(folder)
    assert temporal_norm_of(again) == PER_FRAME and _norms(build_motion_unet(unet, again)) == {FrameGroupNorm}
    # A folder written before the norm was recorded (the key absent) keeps diffusers' pooled statistics.
    config = json.loads((folder / "config.json").read_text())
    del config["temporal_norm"]
    config["_class_name"] = "MotionAdapter"
    (folder / "config.json").write_text(json.dumps(config))
    old = load_motion_adapter(folder)
    assert temporal_norm_of(old) == POOLED and _norms(build_motion_unet(unet, old)) == {torch.nn.GroupNorm}
    (folder / "config.json").write_text(json.dumps(config | {"temporal_norm": "sideways"}))
    with pytest.raises(InputError, match="temporal_norm 'sideways'"):
        load_motion_adapter(folder)


@pytest.mark.parametrize(
    ("version", "layout"),
    [
        ("v1", dict(use_motion_mid_block=False, motion_max_seq_length=24)),  # mm_sd_v15.ckpt
        ("v2", dict(use_motion_mid_block=True, motion_max_seq_length=32)),  # mm_sd_v15_v2.ckpt
        ("v3", dict(use_motion_mid_block=False, motion_max_seq_length=32)),  # v3_sd15_mm.ckpt: v2's names, no middle
    ],
)
def test_each_animatediff_version_loads_per_frame_with_its_layout(tmp_path, version, layout):
    with torch.random.fork_rng():
        torch.manual_seed(7)
        adapter = MotionAdapter(**(motion_adapter_config("tiny") | layout))
    path = tmp_path / f"mm_{version}.ckpt"
    torch.save(to_animatediff_layout(adapter) | {"global_step": 5000}, path)  # training's metadata beside it
    loaded = load_motion_adapter(path, num_attention_heads=HEADS)
    assert temporal_norm_of(loaded) == PER_FRAME
    assert {key: loaded.config[key] for key in layout} == layout
    assert loaded.state_dict().keys() == adapter.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[name], value) for name, value in adapter.state_dict().items())


def test_the_embedded_models_adapter_says_pooled_as_it_was_trained():
    folder = default_model_folder() / "motion_adapter"
    assert json.loads((folder / "config.json").read_text())["temporal_norm"] == POOLED
    assert temporal_norm_of(load_motion_adapter(folder)) == POOLED


def test_the_norm_changes_the_output_and_per_frame_is_animatediffs():
    """Per frame: each frame normalised on its own, as AnimateDiff's temporal transformer does (its frames
    folded into the batch); pooled: one set of statistics for the clip, as diffusers does."""
    norm = torch.nn.GroupNorm(4, 8, eps=1e-6)
    clip = (
        torch.randn(2, 8, 5, 3, 3, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 6.0)[:, None, None]
    )
    pooled = norm(clip)
    norm.__class__ = FrameGroupNorm
    per_frame = norm(clip)
    expected = torch.nn.functional.group_norm(clip.transpose(1, 2).flatten(0, 1), 4, norm.weight, norm.bias, 1e-6)
    torch.testing.assert_close(per_frame, expected.unflatten(0, (2, 5)).transpose(1, 2), atol=1e-6, rtol=1e-6)
    assert (per_frame - pooled).abs().max() > 0.1


@pytest.mark.parametrize(("start", "norm"), [("file", PER_FRAME), (None, POOLED)])
def test_stage_three_keeps_the_norm_it_starts_from(animatediff_file, monkeypatch, start, norm):
    """Fine-tuning AnimateDiff's file keeps its per-frame norm; the project's own zero-initialised start
    trains pooled, as the embedded model's module was trained."""
    loader = motion_stage.load_motion_adapter  # the tiny adapter has 4 heads, a real AnimateDiff file 8
    monkeypatch.setattr(motion_stage, "load_motion_adapter", lambda path: loader(path, num_attention_heads=HEADS))
    source = str(animatediff_file) if start else None
    config = SimpleNamespace(
        model=SimpleNamespace(motion_adapter=source, seed=0), train=SimpleNamespace(shared_noise=0)
    )
    stage = motion_stage.MotionStage(get_dummy_components(), config)
    assert temporal_norm_of(stage.model.unet) == norm
    assert temporal_norm_of(stage.exported()["motion_adapter"]) == norm


QUERY = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight"


def _damaged(original: dict, damage: str) -> dict:
    damaged = dict(original)
    if damage == "misshaped":
        damaged[QUERY] = damaged[QUERY][:, :-1].clone()
    elif damage == "missing":
        del damaged[QUERY]
    elif damage == "extra":
        damaged[QUERY.replace("to_q", "to_z")] = damaged[QUERY].clone()
    elif damage == "position-table":
        table = QUERY.replace("to_q.weight", "pos_encoder.pe")
        damaged[table] = damaged[table][:, :16].clone()
    return damaged


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("misshaped", f"1 misshaped (e.g. {QUERY} (32, 31) instead of (32, 32))"),
        ("missing", f"1 missing keys (e.g. {QUERY})"),
        ("extra", f"1 unexpected keys (e.g. {QUERY.replace('to_q', 'to_z')})"),
        ("position-table", "position tables of down_blocks.0.motion_modules.0.transformer_blocks.0 differ"),
    ],
)
def test_a_damaged_file_is_named_in_one_line(original, tmp_path, damage, words):
    path = tmp_path / "mm_damaged.ckpt"
    torch.save(_damaged(original, damage), path)
    with pytest.raises(InputError) as refused:
        load_motion_adapter(path, num_attention_heads=HEADS)
    message = str(refused.value)
    assert words in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a pickle"])
def test_an_unreadable_file_is_named_in_one_line(tmp_path, content):
    path = tmp_path / "mm_sd_v15_v2.ckpt"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a readable motion-module file") as refused:
        load_motion_adapter(path)
    assert "\n" not in str(refused.value)
    torch.save([torch.zeros(1)], path)  # readable, but no dict of tensors
    with pytest.raises(InputError, match="dict of tensors"):
        load_motion_adapter(path)


def test_the_cli_refuses_a_misshaped_file_without_a_traceback(original, tmp_path, capsys):
    """`--motion-adapter` with a damaged file: exit 2, one line naming the file, nothing written."""
    puppet = PuppetVideo(video_spec("test", 0, num_frames=2, width=64, height=64))
    write_image(tmp_path / "photo.png", puppet.frame(0).image)
    save_poses(puppet.poses(), tmp_path / "poses.json")
    bad = tmp_path / "mm_damaged.ckpt"
    torch.save(_damaged(original, "misshaped"), bad)
    before = sorted(path.name for path in tmp_path.iterdir())
    argv = ["animate", "--reference", str(tmp_path / "photo.png"), "--driving", str(tmp_path / "poses.json")]
    code = main([*argv, "--out", str(tmp_path / "o.mp4"), "--motion-adapter", str(bad), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "mm_damaged.ckpt does not match an AnimateDiff motion module: " in err and "misshaped" in err
    assert len([line for line in err.splitlines() if "mm_damaged.ckpt" in line]) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == before
