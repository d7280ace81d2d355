"""Every training stage can fit one tiny batch: with the same noise and timesteps at every step (one
generator seed), its loss falls by at least the stated factor in a few dozen steps. A stage whose
gradients do not reach what it trains, or reach it wrongly, stays near its first loss.

The factors are measured (20 steps, puppet preset at 32x32, CPU, float32) and floored a little below.
The appearance stage falls least: it trains only the tokens the frozen, random base UNet attends to.
"""

import pytest
import torch

from magicpose.training.config import STAGES
from magicpose.training.data import validation_batch
from magicpose.training.stages import STAGE_CLASSES, build_stage, trainable_parameters
from tests.training.helpers import tiny_config

STEPS = 20
# stage: (learning rate, first loss / last loss at least; measured with 1 and 2 threads alike)
FIT = {
    "vae": (1e-3, 12.5),  # measured 15.8
    "base_unet": (1e-3, 23.0),  # measured 28.6
    "controlnet": (1e-2, 4.0),  # measured 5.05
    "appearance": (3e-2, 1.2),  # measured 1.28
    "pose": (1e-2, 3.3),  # measured 4.14
    "motion": (1e-2, 3.1),  # measured 3.92
}


def test_every_stage_has_an_overfit_check():
    assert set(FIT) == set(STAGE_CLASSES) == set(STAGES)  # what configs may name is what build_stage builds


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIT))
def test_the_stage_overfits_one_batch(tmp_path, name):
    learning_rate, factor = FIT[name]
    clips = name == "motion"
    config = tiny_config(name, tmp_path, data={"puppet_frames": 20} if clips else {})
    torch.manual_seed(0)
    stage = build_stage(config)
    batch = validation_batch(config, 1 if clips else 2, clips=clips)
    optimizer = torch.optim.AdamW(trainable_parameters(stage), lr=learning_rate)
    losses = []
    for _ in range(STEPS):
        loss = stage(batch, torch.Generator().manual_seed(0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[0] / losses[-1] >= factor, [round(value, 4) for value in losses]
