"""`magicpose evaluate` end to end: folders in, table and JSON out, weight files through the real loaders."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from magicpose.evaluation import inception, lpips
from magicpose.evaluation.weights import WEIGHT_FILES
from magicpose.interfaces.cli import main
from tests.evaluation.evaluation_helpers import noisy, randomize, smooth_frames


def make_folders(tmp_path, count):
    truth = smooth_frames(count, size=40)
    generated = noisy(truth, 10, seed=1)
    for i, (g, r) in enumerate(zip(generated, truth)):
        # Ground truth in per-video folders, generated frames flat: the pairing handles both.
        (tmp_path / "gt" / "clip_07").mkdir(parents=True, exist_ok=True)
        Image.fromarray(r).save(tmp_path / "gt" / "clip_07" / f"{i:03d}.png")
        (tmp_path / "gen").mkdir(exist_ok=True)
        Image.fromarray(g).save(tmp_path / "gen" / f"clip_07_{i:05d}.png")
    (tmp_path / "weights").mkdir()
    return tmp_path


@pytest.fixture
def folders(tmp_path):
    return make_folders(tmp_path, 5)


def run(folders, *extra):
    return main(
        [
            "evaluate",
            "--generated",
            str(folders / "gen"),
            "--ground-truth",
            str(folders / "gt"),
            "--weights-dir",
            str(folders / "weights"),
            *extra,
        ]
    )


def test_frame_metrics_table_and_json(folders, capsys):
    out = folders / "results.json"
    assert run(folders, "--metrics", "ssim", "psnr", "l1", "--json", str(out), "--protocol", "clean") == 0
    printed = capsys.readouterr().out
    assert "clip_07" in printed and "ALL (1 videos)" in printed and "psnr↑" in printed
    results = json.loads(out.read_text())
    assert results["protocol"] == "clean" and results["pooled"]["frames"] == 5
    assert 0 < results["pooled"]["ssim"] < 1 and results["videos"]["clip_07"]["frame_indices"] == [0, 1, 2, 3, 4]


def test_default_metrics_skip_missing_weights_with_a_warning(folders, capsys):
    assert run(folders) == 0
    captured = capsys.readouterr()
    for name in ("pt_inception-2015-12-05-6726825d.pth", "adaface_ir101_webface12m.ckpt", "i3d_pretrained_400.pt"):
        assert name in captured.err
    assert "skipping fid" in captured.err and "ssim" in captured.out and "fid↓" not in captured.out


def test_asked_for_metric_without_weights_is_an_error(folders, capsys):
    out = folders / "results.json"
    assert run(folders, "--metrics", "ssim", "face-cos", "--json", str(out)) == 2
    message = capsys.readouterr().err
    assert "adaface_ir101_webface12m.ckpt" in message and "github.com/mk-minchul/AdaFace" in message
    assert not out.exists()


def test_bad_folder_is_an_error(folders, capsys):
    assert main(["evaluate", "--generated", str(folders / "nope"), "--ground-truth", str(folders / "gt")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_fid_and_lpips_from_published_weight_files(tmp_path):
    # Two frames: the least FID needs, as the full-size Inception runs at 299x299 here.
    folders = make_folders(tmp_path, 2)
    weights = folders / "weights"
    torch.save(randomize(inception.FIDInceptionV3()).state_dict(), weights / WEIGHT_FILES["inception"].name)
    alex = randomize(lpips.LPIPS("alex"))
    torch.save(
        {f"features.{k}": v for k, v in alex.features.state_dict().items()}, weights / WEIGHT_FILES["alexnet"].name
    )
    (weights / "lpips").mkdir()
    torch.save(
        {f"lin{i}.model.1.weight": layer.model[1].weight.detach() for i, layer in enumerate(alex.lins)},
        weights / WEIGHT_FILES["lpips_alex"].name,
    )
    out = folders / "results.json"
    assert run(folders, "--metrics", "fid", "lpips-alex", "--json", str(out), "--batch-size", "1") == 0
    pooled = json.loads(out.read_text())["pooled"]
    assert pooled["fid"] > 0 and pooled["lpips-alex"] > 0
    assert np.isfinite(pooled["fid"])
