"""Two CPU processes (torchrun, gloo): each rank trains on different samples, the weights stay equal."""

import json
from pathlib import Path

import pytest

from tests.processes import torchrun

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ranks_see_different_data_and_stay_in_sync(tmp_path):
    result = torchrun(str(ROOT / "tests" / "training" / "ddp_worker.py"), str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / f"record-{rank}.json").read_text()) for rank in range(2)]
    assert len(records[0]) == len(records[1]) == 3
    for step0, step1 in zip(*records):
        assert not {tuple(s) for s in step0["samples"]} & {tuple(s) for s in step1["samples"]}
        assert abs(step0["weights"] - step1["weights"]) <= 1e-6 * max(1.0, step0["abs"])
        assert abs(step0["abs"] - step1["abs"]) <= 1e-6 * step0["abs"]
    assert records[0][0]["abs"] != records[0][-1]["abs"]  # they did train
    state = __import__("torch").load(tmp_path / "checkpoints" / "step-000003" / "state.pt", weights_only=False)
    assert state["world_size"] == 2
    assert (tmp_path / "checkpoints" / "step-000003" / "rng-rank1.pt").is_file()
    assert (tmp_path / "export" / "model_index.json").is_file()
