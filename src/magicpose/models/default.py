"""The default model: a small MagicPose trained on the puppet world, shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from magicpose.errors import MissingWeightsError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_model"

# What a user animating their own photo with it should know (printed by `animate`, shown by the app).
EMBEDDED_MODEL_NOTE = (
    "this is the embedded puppet model, trained only on synthetic puppets at 128x128 to show the method "
    "working: a real photo comes back as a blurry puppet-like figure. For people, use real weights: "
    "`magicpose convert model_state-110000.th models/magicpose` and pass --model models/magicpose "
    "(README, 'Weights')"
)


def default_model_folder() -> Path:
    if not (DEFAULT_MODEL / "model_index.json").is_file():
        raise MissingWeightsError(
            f"no default model is installed at {DEFAULT_MODEL}; pass --model FOLDER (a MagicPose model folder) "
            "or --official model_state-*.th"
        )
    return DEFAULT_MODEL
