"""`magicpose data`: prepare puppets, preview pictures, clear errors."""

from __future__ import annotations

from magicpose.data.layout import LayoutDataset
from magicpose.interfaces.cli import main
from magicpose.media import read_image


def test_prepare_puppet_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "puppets"
    code = main(
        ["data", "prepare", "puppet", str(out), "--split", "val", "--videos", "2", "--frames", "3", "--size", "48"]
    )
    assert code == 0
    videos = LayoutDataset(out, split="val")
    assert len(videos) == 2 and videos[0].num_frames == 3 and videos[0].sample(2).image.shape == (48, 48, 3)
    assert "2 puppet videos" in capsys.readouterr().out


def test_preview_writes_the_pictures(tmp_path):
    assert main(["data", "preview", "--out", str(tmp_path), "--size", "48"]) == 0
    sheet = read_image(tmp_path / "puppet_identities.png")
    strip = read_image(tmp_path / "puppet_motion.png")
    assert sheet.shape[0] > 2 * 48 and strip.shape[0] == 2 * 48 + 2
    assert sheet.std() > 20  # pictures, not blank canvases


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    assert main(["data", "prepare", "videos", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert (
        main(
            ["data", "prepare", "puppet", str(tmp_path / "p"), "--split", "test", "--start", "99999", "--videos", "5"]
        )
        == 2
    )
