"""Training of every MagicPose stage with accelerate (see docs/training.md)."""

from magicpose.training.config import TrainingConfig, load_config
from magicpose.training.trainer import train

__all__ = ["TrainingConfig", "load_config", "train"]
