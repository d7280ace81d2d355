"""configs/sd15/stage3_motion.yaml, checked as the other SD-1.5 configs are (test_load_components): the
shipped file says what the paper's appendix C says and reads stage 2's export; on a tiny model in the
SD-1.5 layout it builds each network once, loads a motion module in AnimateDiff v2's own file layout, and
two training steps (bf16 autocast, gradient checkpointing, as configured) move the temporal layers only."""

from types import SimpleNamespace

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from diffusers import MotionAdapter, UNet2DConditionModel

import tests.training.test_load_components as load_components_tests
from magicpose.models.motion_module import motion_adapter_config_for_unet
from magicpose.training.config import load_config
from magicpose.training.stages import build_stage, trainable_parameters
from magicpose.training.trainer import make_optimizer
from tests.motion_helpers import to_animatediff_layout
from tests.training.helpers import ROOT

STAGE3 = ROOT / "configs" / "sd15" / "stage3_motion.yaml"
STAGE2 = ROOT / "configs" / "sd15" / "stage2_pose.yaml"
FRAMES = 16  # a clip, as ClipDataset cuts them and appendix C trains on
# The fixtures of the other SD-1.5 config checks: the tiny SD-1.5 folder and the construction counter.
sd15_folder = load_components_tests.sd15_folder
constructions = load_components_tests.constructions


def test_the_shipped_config_is_appendix_c_on_stage_2s_export():
    config, stage2 = load_config(STAGE3), load_config(STAGE2)
    assert config.stage == "motion" and config.model.preset == "sd15"
    assert config.model.sd15 == stage2.model.sd15
    for name in ("appearance_control", "pose_control"):  # what stage 2 trained, from its export
        assert getattr(config.model, name) == f"{stage2.output.dir}/export/{name}"
    assert config.model.motion_adapter.endswith("mm_sd_v15_v2.ckpt")  # AnimateDiff v2's file
    assert config.model.unet is None and config.model.vae is None  # SD-1.5's own, frozen
    t, gpus = config.train, load_config_from_file(str(ROOT / "configs" / "accelerate" / "multi_gpu_8.yaml"))
    assert t.max_steps == 30_000 and t.batch_size * t.gradient_accumulation_steps * gpus.num_processes == 8
    assert t.learning_rate == 1e-4 and t.mixed_precision == "bf16" and t.gradient_checkpointing
    assert config.data.size == 512 and config.data.face_mask_probability == config.data.hand_mask_probability == 0


@pytest.fixture()
def animatediff_v2_file(sd15_folder, tmp_path):
    """A motion module for the tiny SD-1.5 folder's UNet in AnimateDiff v2's layout (8 heads, a middle
    block, 32 positions), random (not zero-initialised, so that every temporal weight gets a gradient),
    saved with AnimateDiff's own key names as `mm_sd_v15_v2.ckpt` is."""
    unet_config = UNet2DConditionModel.load_config(sd15_folder / "sd15" / "unet")  # builds no UNet
    layout = motion_adapter_config_for_unet(SimpleNamespace(config=SimpleNamespace(**unet_config)), 8)
    assert layout["motion_num_attention_heads"] == 8 and layout["use_motion_mid_block"]
    with torch.random.fork_rng():
        torch.manual_seed(21)
        adapter = MotionAdapter(**layout)
    path = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save(to_animatediff_layout(adapter), path)
    return path, adapter.state_dict()


def _stage3_config(folder, tmp_path, motion_file):
    """The shipped config with its paths pointed at the tiny folders; every other setting as shipped."""
    return load_config(
        STAGE3,
        [
            f"model.sd15={folder / 'sd15'}",
            f"model.appearance_control={folder / 'stage1' / 'appearance_control'}",  # as a stage-2 export
            f"model.pose_control={folder / 'openpose'}",
            f"model.motion_adapter={motion_file}",
            f"output.dir={tmp_path / 'run'}",
        ],
    )


def test_stage_3_on_sd15_builds_each_network_once_and_loads_the_animatediff_file(
    sd15_folder,
    constructions,
    animatediff_v2_file,
    tmp_path,
    monkeypatch,
):
    motion_file, adapter_weights = animatediff_v2_file
    counted = load_components_tests.COUNTED | {"MagicPoseMotionAdapter", "MagicPoseMotionUNet"}
    monkeypatch.setattr(load_components_tests, "COUNTED", counted)
    stage = build_stage(_stage3_config(sd15_folder, tmp_path, motion_file))
    assert constructions == {
        "UNet2DConditionModel": 1,
        "AppearanceControlModel": 1,
        "ControlNetModel": 1,
        "AutoencoderKL": 1,
        "CLIPTextModel": 1,
        "TextContext": 1,
        "MagicPoseMotionAdapter": 1,  # read from the file
        "MagicPoseMotionUNet": 1,  # the SD-1.5 UNet with the temporal layers in it
    }
    # the temporal layers are the file's weights (not a zero-initialised adapter), and only they train
    motion = {name: value for name, value in stage.model.unet.state_dict().items() if ".motion_modules." in name}
    learned = {name: value for name, value in adapter_weights.items() if not name.endswith("pos_embed.pe")}
    assert len(learned) > 0 and {name for name in learned} <= set(motion)
    assert all(torch.equal(motion[name], value) for name, value in learned.items())
    trained = {name for name, p in stage.named_parameters() if p.requires_grad}
    assert trained == {f"model.unet.{name}" for name in learned}
    assert stage.model.unet.is_gradient_checkpointing and stage.model.pose_control.is_gradient_checkpointing


def test_two_stage_3_steps_move_the_temporal_layers_and_nothing_else(sd15_folder, animatediff_v2_file, tmp_path):
    config = _stage3_config(sd15_folder, tmp_path, animatediff_v2_file[0])
    stage = build_stage(config)
    parameters = trainable_parameters(stage)
    optimizer = make_optimizer(parameters, config.train)  # AdamW at the config's 1e-4
    before = {name: value.clone() for name, value in stage.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(2):
        # One clip of 16 frames; the tiny VAE halves the side and the ControlNet's hint encoder divides by 8.
        batch = {
            "reference": torch.rand(1, 3, 16, 16, generator=generator) * 2 - 1,
            "target": torch.rand(1, FRAMES, 3, 16, 16, generator=generator) * 2 - 1,
            "pose_image": torch.rand(1, FRAMES, 3, 64, 64, generator=generator),
        }
        with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed_precision: bf16, as accelerate runs it
            loss = stage(batch, generator)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    after = stage.state_dict()
    # the temporal layers' weights (their position tables are fixed buffers), by name, not by requires_grad
    temporal = {name for name in before if ".motion_modules." in name and not name.endswith("pos_embed.pe")}
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert len(before) > len(temporal) > 0
    assert changed - temporal == set(), sorted(changed - temporal)[:5]  # base UNet, appearance, ControlNet, VAE...
    assert temporal - changed == set(), sorted(temporal - changed)[:5]  # every temporal weight moved
    # what the stage exports is the trained temporal layers, as a MotionAdapter
    exported = stage.exported()["motion_adapter"].state_dict()
    assert all(torch.equal(exported[name.removeprefix("model.unet.")], after[name]) for name in temporal)
