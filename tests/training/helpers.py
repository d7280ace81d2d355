"""Tiny puppet-world configs for the training tests (32x32 images, puppet-preset architecture)."""

from __future__ import annotations

from pathlib import Path

from magicpose.training.config import TrainingConfig, config_from_dict

ROOT = Path(__file__).resolve().parents[2]


def training_configs() -> list[Path]:
    """The training configs shipped in configs/ (configs/accelerate holds `accelerate launch` configs)."""
    return sorted(path for path in (ROOT / "configs").rglob("*.yaml") if path.parent.name != "accelerate")


def tiny_config(stage: str, out: Path, **sections) -> TrainingConfig:
    raw = {
        "stage": stage,
        "model": {"preset": "puppet"},
        "data": {"size": 32, "puppet_frames": 12, "puppet_videos": 50},
        "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "seed": 3},
        "output": {
            "dir": str(out),
            "checkpoint_every": 2,
            "validate_every": 2,
            "validation_samples": 2,
            "validation_inference_steps": 2,
            "log_every": 1,
        },
    }
    for section, values in sections.items():
        if section == "stage":
            continue
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_dict(raw)
