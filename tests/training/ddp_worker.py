"""Run under `torchrun --nproc_per_node 2`: a few stage-2 steps on the CPU (gloo), recording per rank
which samples it trained on and a checksum of its trainable weights at every forward pass."""

import json
import os
import sys

import torch

from magicpose.training.stages import MagicPoseStage
from magicpose.training.trainer import train
from tests.training.helpers import tiny_config

out, record = sys.argv[1], []
forward = MagicPoseStage.forward


def recording(self, batch, generator):
    weights = torch.cat([p.detach().flatten() for p in self.parameters() if p.requires_grad])
    record.append(
        {
            "samples": [[int(v), *map(int, f)] for v, f in zip(batch["video"], batch["frames"])],
            "weights": weights.double().sum().item(),
            "abs": weights.double().abs().sum().item(),
        }
    )
    return forward(self, batch, generator)


MagicPoseStage.forward = recording
train(tiny_config("pose", out, train={"max_steps": 3, "cpu": True}, output={"validate_every": 0}))
with open(os.path.join(out, f"record-{os.environ['RANK']}.json"), "w") as file:
    json.dump(record, file)
