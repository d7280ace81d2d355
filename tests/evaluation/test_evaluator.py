"""The whole evaluation on two small videos, with small random networks in place of the published ones."""

import cv2
import numpy as np
import pytest

from magicpose.evaluation import adaface, face_cos, i3d, inception, lpips, resnet3d
from magicpose.evaluation.evaluator import HIGHER_IS_BETTER, METRICS, Networks, evaluate
from magicpose.evaluation.pairing import pair_frames
from magicpose.evaluation.report import format_table, write_json
from tests.evaluation.evaluation_helpers import noisy, randomize, smooth_frames
from tests.reference_data import reference_path


@pytest.fixture(scope="module")
def networks():
    aligner = face_cos.FaceAligner()
    yield Networks(
        inception=randomize(inception.FIDInceptionV3(resize_to=None)),
        lpips={"lpips": randomize(lpips.LPIPS("vgg")), "lpips-alex": randomize(lpips.LPIPS("alex"))},
        adaface=randomize(adaface.IRBackbone((1, 1, 1, 1))),
        face_aligner=aligner,
        resnet3d=randomize(resnet3d.ResNet3d((1, 1, 1, 1))),
        i3d=randomize(i3d.InceptionI3d()),
        fid_size=75,
        fid_vid_size=32,
        fvd_size=32,
    )
    aligner.close()


def write_videos(root, videos):
    for name, frames in videos.items():
        (root / name).mkdir(parents=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(root / name / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def folders(tmp_path_factory, request):
    from PIL import Image

    path = reference_path("real_media", "astronaut.png")
    face = np.asarray(Image.open(path).convert("RGB").resize((128, 128)))
    truth = {"dance": smooth_frames(34, size=48), "face": [np.roll(face, 2 * i, axis=1) for i in range(3)]}
    root = tmp_path_factory.mktemp("eval")
    write_videos(root / "gt", truth)
    for sigma in (4, 12):
        write_videos(root / f"gen{sigma}", {name: noisy(frames, sigma, seed=5) for name, frames in truth.items()})
    return root


@pytest.mark.parametrize("protocol", ["disco", "clean"])
def test_every_metric_worsens_with_more_noise(folders, networks, protocol):
    results = {}
    for sigma in (4, 12):
        videos, warnings = pair_frames(folders / f"gen{sigma}", folders / "gt")
        assert warnings == []
        results[sigma] = evaluate(videos, list(METRICS), protocol, networks, batch_size=8, progress=False)
    good, bad = results[4]["pooled"], results[12]["pooled"]
    assert good["frames"] == 37 and good["videos"] == 2
    assert good["face_pairs_scored"] >= 2  # the astronaut's face is found in the lightly noised frames
    for metric in METRICS:
        assert good[metric] is not None and bad[metric] is not None, metric
        if metric in HIGHER_IS_BETTER:
            assert good[metric] > bad[metric], metric
        else:
            assert good[metric] < bad[metric], metric
    video = results[4]["videos"]["dance"]
    assert video["frames"] == 34 and len(video["per_frame"]["ssim"]) == 34 and video["fid"] is not None
    # Frame-wise metrics pool over frames, not over video means.
    all_ssim = results[4]["videos"]["dance"]["per_frame"]["ssim"] + results[4]["videos"]["face"]["per_frame"]["ssim"]
    assert good["ssim"] == pytest.approx(np.mean(all_ssim))
    # disco: one sample per video; clean: the dance's two whole 16-frame clips (its last 2 frames dropped)
    # and the 3-frame face video, shorter than a clip, padded to one.
    expected_samples = {"disco": 2, "clean": 3}[protocol]
    assert good["fid-vid_samples"] == expected_samples


def test_identical_folders_score_perfectly(folders, networks):
    videos, _ = pair_frames(folders / "gt", folders / "gt")
    pooled = evaluate(videos, ["ssim", "psnr", "l1", "lpips", "fid"], "disco", networks, progress=False)["pooled"]
    assert pooled["ssim"] == pytest.approx(1.0) and pooled["psnr"] == 100.0 and pooled["l1"] == 0.0
    assert pooled["lpips"] == pytest.approx(0.0, abs=1e-6) and pooled["fid"] == pytest.approx(0.0, abs=1e-6)


def test_report_table_and_json(folders, networks, tmp_path):
    import json

    videos, _ = pair_frames(folders / "gen4", folders / "gt")
    results = evaluate(videos, ["ssim", "psnr", "fid-vid"], "clean", networks, progress=False)
    table = format_table(results)
    assert "ssim↑" in table and "fid-vid↓" in table and "ALL (2 videos)" in table and "dance" in table
    write_json(results, tmp_path / "out" / "results.json")
    loaded = json.loads((tmp_path / "out" / "results.json").read_text())
    assert loaded["pooled"]["ssim"] == pytest.approx(results["pooled"]["ssim"])
    assert loaded["videos"]["face"]["frame_indices"] == [0, 1, 2]
