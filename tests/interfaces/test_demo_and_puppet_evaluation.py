"""`magicpose demo` and `magicpose evaluate --puppet` end to end on a tiny random model folder."""

import json
import re

import numpy as np
import pytest

from magicpose.data.puppet.examples import retargeting_example
from magicpose.interfaces.cli import main
from magicpose.media import read_image, read_video
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "model"
    MagicPosePipeline(**get_dummy_components()).save_pretrained(folder)
    return folder


def test_retargeting_example_puts_the_reference_identity_into_the_other_dance():
    example = retargeting_example(identity=0, motion=1, frames=3, size=64)
    assert example.reference.shape == (64, 64, 3) and len(example.driving) == 3 and len(example.truth) == 3
    # the first truth frame shows the reference's scene (same corners) in another pose than the reference
    assert np.array_equal(example.truth[0][:4, :4], example.reference[:4, :4])
    assert not np.array_equal(example.truth[0], example.reference)
    with pytest.raises(ValueError, match="another puppet"):
        retargeting_example(identity=2, motion=2, frames=1, size=64)


@pytest.mark.slow
def test_demo_writes_the_video_the_grid_and_a_still(model, tmp_path, capsys):
    out = tmp_path / "outputs" / "demo.mp4"
    assert main(["demo", "--model", str(model), "--out", str(out), "--frames", "3", "--steps", "1"]) == 0
    frames, _ = read_video(out)
    grid, _ = read_video(tmp_path / "outputs" / "demo_grid.mp4")
    assert len(frames) == 3 and frames[0].shape == (32, 32, 3)
    assert len(grid) == 3 and grid[0].shape == (32, 4 * 32, 3)  # reference | skeleton | result | truth
    assert read_image(tmp_path / "outputs" / "demo.png").shape == (32, 4 * 32, 3)  # frames 0 (and 4, ...)
    assert "test puppet 0 dancing test motion 1" in capsys.readouterr().out


def test_demo_rejects_bad_arguments(model, tmp_path, capsys):
    assert main(["demo", "--model", str(model), "--out", str(tmp_path / "demo.avi")]) == 2
    assert (
        main(["demo", "--model", str(model), "--out", str(tmp_path / "d.mp4"), "--identity", "3", "--motion", "3"])
        == 2
    )
    assert main(["demo", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d.mp4")]) == 2
    errors = capsys.readouterr().err
    assert ".mp4" in errors and "different test puppets" in errors and "nowhere does not exist" in errors
    assert not list(tmp_path.glob("*.mp4"))


@pytest.mark.slow
def test_puppet_evaluation_prints_rows_targets_and_json(model, tmp_path, capsys):
    report = tmp_path / "puppet.json"
    arguments = [
        "evaluate",
        "--puppet",
        "--model",
        str(model),
        "--videos",
        "1",
        "--frames",
        "2",
        "--steps",
        "1",
        "--size",
        "32",
    ]
    assert main([*arguments, "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "masked_psnr" in out and "ControlNet-only baseline" in out
    assert "steps of DDIMScheduler from pure noise" in out  # the dummy model's settings
    saved = json.loads(report.read_text())
    assert saved["options"]["start_from_reference"] is False
    rows = saved["rows"]
    # each target line gives the model's figure and the verdict that figure earns
    verdicts = re.findall(r"^(\w+) (-?[\d.]+) \(target >= ([\d.]+)\): (met|missed)$", out, flags=re.M)
    assert {name for name, *_ in verdicts} == {"mask_iou", "masked_psnr"}
    for name, value, goal, verdict in verdicts:
        assert float(value) == pytest.approx(rows["model"][name], abs=5e-4)
        assert verdict == ("met" if float(value) >= float(goal) else "missed")
    margin = re.search(
        r"over the ControlNet-only baseline ([+-][\d.]+) dB \(target >= \+([\d.]+)\): (met|missed)", out
    )
    baseline = rows["ControlNet-only baseline (the model's own ControlNet)"]
    assert float(margin[1]) == pytest.approx(rows["model"]["masked_psnr"] - baseline["masked_psnr"], abs=5e-3)
    assert margin[3] == ("met" if float(margin[1]) >= float(margin[2]) else "missed")
    assert set(rows) == {
        "model",
        "ControlNet-only baseline (the model's own ControlNet)",
        "VAE reconstruction (ceiling)",
    }
    assert all(0.0 <= row["mask_iou"] <= 1.0 and np.isfinite(row["masked_psnr"]) for row in rows.values())
    # the baseline differs from the model: it has no appearance branch
    assert rows["model"] != rows["ControlNet-only baseline (the model's own ControlNet)"]

    assert main([*arguments, "--no-reference", "--no-hands", "--no-face", "--no-vae-ceiling"]) == 0
    out = capsys.readouterr().out
    assert "pose ControlNet only" in out and "without hands and face" in out and "target" not in out
    assert "ceiling" not in out

    options = ["--no-baseline", "--no-vae-ceiling", "--json", str(report)]
    assert main([*arguments, *options, "--start-from-reference", "--scheduler", "dpm++"]) == 0
    assert "steps of DPMSolverMultistepScheduler from the noised reference" in capsys.readouterr().out
    saved = json.loads(report.read_text())
    assert saved["scheduler"] == "DPMSolverMultistepScheduler" and saved["rows"]["model"] != rows["model"]
    with pytest.raises(SystemExit) as exit:  # argparse's own exit for a bad choice
        main([*arguments, *options, "--scheduler", "plms"])
    assert exit.value.code == 2 and "invalid choice: 'plms'" in capsys.readouterr().err


def test_evaluate_needs_folders_or_puppet(capsys):
    assert main(["evaluate"]) == 2
    assert "--puppet" in capsys.readouterr().err


@pytest.mark.slow
def test_puppet_evaluation_with_a_motion_module_on_consecutive_frames(model, tmp_path, capsys):
    from magicpose.models.motion_module import save_motion_adapter
    from tests.motion_helpers import build_motion_adapter

    adapter = save_motion_adapter(build_motion_adapter("tiny", seed=5, zero_init=False), tmp_path / "motion_adapter")
    report = tmp_path / "motion.json"
    arguments = [
        "evaluate",
        "--puppet",
        "--model",
        str(model),
        "--videos",
        "1",
        "--frames",
        "3",
        "--steps",
        "1",
        "--size",
        "32",
        "--no-baseline",
        "--no-vae-ceiling",
        "--frame-stride",
        "1",
    ]
    assert main([*arguments, "--json", str(report)]) == 0
    plain = json.loads(report.read_text())["rows"]["model"]
    assert main([*arguments, "--motion-adapter", str(adapter), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "with the motion module" in out and "(every 1)" in out and "background_flicker" in out
    saved = json.loads(report.read_text())
    assert saved["options"]["frame_stride"] == 1 and saved["motion_adapter"] == str(adapter)
    with_motion = saved["rows"]["model"]
    assert np.isfinite(with_motion["frame_difference_error"]) and with_motion != plain  # the temporal layers act
    assert main([*arguments, "--noise-per-frame", "--json", str(report)]) == 0
    assert "noise drawn per frame" in capsys.readouterr().out
    per_frame = json.loads(report.read_text())["rows"]["model"]
    assert per_frame != plain and per_frame["background_flicker"] != plain["background_flicker"]
    assert main([*arguments, "--frame-stride", "0"]) == 2
    assert "--frame-stride must be at least 1" in capsys.readouterr().err
    assert main([*arguments, "--guidance-interval", "500", "1000"]) == 0
    model_guidance = json.loads((model / "model_index.json").read_text())["guidance_scale"]  # the folder's recipe
    assert f"guidance {model_guidance:g} in (500, 1000]" in capsys.readouterr().out
    assert main([*arguments, "--guidance-interval", "600", "400"]) == 2
    assert "0 <= low < high <= 1000, got 600 400" in capsys.readouterr().err


@pytest.mark.slow
def test_a_model_folder_with_its_own_motion_module_uses_it_unless_told_not_to(model, tmp_path, capsys):
    import shutil

    from magicpose.errors import InputError
    from magicpose.models.motion_module import is_motion_unet, save_motion_adapter
    from magicpose.pipelines.assembly import MOTION_ADAPTER, add_motion_module, load_pipeline
    from tests.motion_helpers import build_motion_adapter

    folder = tmp_path / "with_motion"
    shutil.copytree(model, folder)
    save_motion_adapter(build_motion_adapter("tiny", seed=5, zero_init=False), folder / MOTION_ADAPTER)
    assert is_motion_unet(load_pipeline(folder).unet) and not is_motion_unet(load_pipeline(model).unet)
    assert not is_motion_unet(load_pipeline(folder, motion_module=False).unet)
    with pytest.raises(InputError, match="already has a motion module"):
        add_motion_module(load_pipeline(folder), folder / MOTION_ADAPTER)

    arguments = [
        "evaluate",
        "--puppet",
        "--model",
        str(folder),
        "--videos",
        "1",
        "--frames",
        "2",
        "--steps",
        "1",
        "--size",
        "32",
        "--no-baseline",
        "--no-vae-ceiling",
        "--frame-stride",
        "1",
    ]
    assert main(arguments) == 0
    assert "with the motion module motion_adapter/" in capsys.readouterr().out
    assert main([*arguments, "--no-motion-module"]) == 0
    assert "motion module" not in capsys.readouterr().out
    out = tmp_path / "demo.mp4"
    assert main(["demo", "--model", str(folder), "--out", str(out), "--frames", "2", "--steps", "1"]) == 0
    assert (
        main(
            ["demo", "--model", str(folder), "--out", str(out), "--frames", "2", "--steps", "1", "--no-motion-module"]
        )
        == 0
    )
