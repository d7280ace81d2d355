"""benchmarks/bench_samplers.py: its helpers, and its CI preset run on the embedded model."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_samplers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_samplers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_psnr_is_infinite_for_equal_frames_and_pooled_over_frames(bench):
    frames = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    assert math.isinf(bench.psnr(frames, frames))
    off_by_one = frames.copy()
    off_by_one[0] += 1  # one frame of three off by 1 everywhere: mean squared error 1/3
    assert bench.psnr(off_by_one, frames) == pytest.approx(10 * math.log10(3 * 255.0**2))


def test_settings_start_with_the_reference_and_list_it_once(bench):
    chosen = bench.settings([5, 50], ("ddim", "unipc"), ("dpm++", 10), [(500.0, 1000.0)])
    assert [setting.label for setting in chosen] == [
        "ddim@50",
        "ddim@5",
        "unipc@5",
        "unipc@50",
        "dpm++@10 guided in (500, 1000]",
    ]


@pytest.mark.slow
def test_quick_preset_converges_and_scores_the_held_out_puppet(bench, capsys):
    threads = torch.get_num_threads()
    try:
        rows = {row.setting.label: row for row in bench.main(["--quick"])}
    finally:
        torch.set_num_threads(threads)  # the script runs on one thread; the rest of the suite on all
    printed = capsys.readouterr().out
    assert list(rows) == ["ddim@50", "dpm++@5", "dpm++@25", "dpm++@10 guided in (500, 1000]"]
    # The reference against itself is exact; more DPM-Solver++ steps land closer to it (measured:
    # 5 steps 29.3 dB, 25 steps 38.9 dB on this frame).
    assert math.isinf(rows["ddim@50"].psnr_to_reference)
    assert rows["dpm++@25"].psnr_to_reference > rows["dpm++@5"].psnr_to_reference + 5
    assert rows["dpm++@5"].psnr_to_reference > 27
    # Four network passes a guided step (appearance model, ControlNet, two UNet passes), three unguided:
    # the 10 steps of the model's own recipe are 901, 811, ..., 91, five of them above 500.
    assert rows["ddim@50"].network_calls == 200
    assert rows["dpm++@5"].network_calls == 20
    assert rows["dpm++@10 guided in (500, 1000]"].network_calls == 5 * 4 + 5 * 3
    for row in rows.values():
        assert row.masked_psnr > 18.5  # measured 19.2-20.0 dB on this frame
        assert row.mask_iou > 0.53  # measured 0.565-0.618
        assert row.seconds_per_frame > 0
    assert "| DDIM (reference) | 50 | all | inf |" in printed
    assert "| DPM-Solver++(2M) | 10 | (500, 1000] |" in printed
