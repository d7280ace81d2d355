"""The default model: a small MagicPose trained on the puppet world, shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from magicpose.errors import MissingWeightsError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_model"

# Sampling settings for the default model (with its DPM-Solver++ scheduler, from the noised reference),
# chosen on the puppet val split (docs/default_model.md); the official model's are 50 DDIM steps and
# guidance 7.
DEFAULT_MODEL_STEPS = 10
DEFAULT_MODEL_GUIDANCE = 3.0
DEFAULT_MODEL_SCHEDULER = "dpm++"  # a name of magicpose.pipelines.schedulers.SCHEDULERS; also what training exports


def default_model_folder() -> Path:
    if not (DEFAULT_MODEL / "model_index.json").is_file():
        raise MissingWeightsError(
            f"no default model is installed at {DEFAULT_MODEL}; pass --model FOLDER (a MagicPose model folder) "
            "or --official model_state-*.th"
        )
    return DEFAULT_MODEL
