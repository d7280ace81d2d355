"""The memory and GPU benchmarks (issue 30): their counters on known cases, bench_memory's table and
bench_gpu's CPU run with the tiny preset (the run CI makes where no GPU is)."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components, get_dummy_inputs

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
MIB = 2**20


def benchmark_module(name: str):
    """A module of benchmarks/ (scripts, not a package: they import each other by file name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def run_benchmark(script: str, *args: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, env=environment, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rows(markdown: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("| ")
    ]


def test_live_bytes_counts_each_allocation_until_it_is_freed_and_attention_as_fused():
    memory_model = benchmark_module("memory_model")
    weight = torch.empty(256, 1024, device="meta")  # made outside: not an activation

    def work():
        a = torch.empty(256, 1024, device="meta")  # 1 MiB
        b = a * 2  # 2 MiB live
        view = b.t()  # a view: no new bytes
        del a
        c = view.contiguous() + weight.t()  # b, the contiguous copy, c: 3 MiB live
        return c

    peak, _ = memory_model.activation_peak(work)
    assert peak == 3 * MIB
    q = torch.empty(2, 8, 4096, 64, device="meta", dtype=torch.float16)
    peak, out = memory_model.activation_peak(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert out.shape == q.shape and peak == q.numel() * 2  # the output only, not the 2x8x4096x4096 scores


def test_the_denoising_loop_makes_no_host_synchronisation():
    host_syncs = benchmark_module("host_syncs")
    pipe = MagicPosePipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    data = get_dummy_inputs(frames=2)
    syncs = host_syncs.count_host_syncs(
        lambda: pipe.denoise(
            data["noisy_latents"][:1],
            data["reference_latents"],
            data["pose_images"],
            pipe.text_context(),
            num_inference_steps=2,
            guidance_interval=(100.0, 900.0),
        )
    )
    assert syncs.count == 0, dict(syncs.where)  # before issue 30: 4 for the first step, 6 per further step
    seen = host_syncs.count_host_syncs(lambda: torch.ones(2)[torch.tensor(1)].item())
    assert seen.count >= 1


@pytest.mark.slow
def test_bench_memory_shows_16_frames_at_512x768_within_8_gb_and_4_gib_with_offload():
    table = run_benchmark("bench_memory.py", "--sizes", "512x768", "--frames", "16", "--chunks", "16", "8")
    by_config = {(row[2], row[3]): row for row in rows(table) if row[0] == "512x768"}
    resident, offload = by_config[("16", "resident")], by_config[("8", "offload")]
    peak = float(resident[8].strip("*"))
    assert 5.5 < peak < 7.5 and resident[9] == "8 GB"  # measured 6.08 GiB
    assert float(resident[10].split()[0]) > 12.5  # a whole-chunk decode: 13.03 GiB, a 24 GB card
    assert float(offload[8].strip("*")) < 4 and offload[9] == "4 GiB cap"  # measured 3.30 GiB
    assert float(by_config[("16", "resident")][7]) < float(by_config[("16", "resident")][6])  # decode below denoise


@pytest.mark.slow
def test_bench_gpu_runs_on_the_cpu_with_the_tiny_preset(tmp_path):
    out = tmp_path / "bench_gpu.md"
    args = ["--preset", "tiny", "--device", "cpu", "--dtype", "float32", "--sizes", "32x32", "--frames", "2"]
    printed = run_benchmark("bench_gpu.py", *args, "--chunks", "2", "--steps", "1", "--out", str(out))
    report = out.read_text()
    assert report.strip() in printed
    matrix = [row for row in rows(report) if row[0] == "32x32"]
    assert [row[3] for row in matrix] == ["resident", "offload"]
    assert all(float(row[4]) > 0 for row in matrix)  # seconds per step
    assert float(matrix[0][11]) == 0 and float(matrix[1][11]) > 0  # weights moved: the offload plan's only
    assert re.search(r"host syncs \(dispatch count\): 0 for one step, 0 per further step", report)
    assert "fused attention kernels: aten::_scaled_dot_product_flash_attention_for_cpu" in report
