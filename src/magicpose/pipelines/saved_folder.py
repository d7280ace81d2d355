"""How a saved MagicPose folder names its pipeline class, so that diffusers' generic loader finds it.

`DiffusionPipeline.from_pretrained` resolves a pipeline that is not in diffusers from model_index.json's
`_class_name` written as [file, class] and a `<file>.py` beside it (diffusers' custom pipelines); here that
file only imports the installed magicpose package's class, and diffusers asks for `trust_remote_code=True`
before running it. `MagicPosePipeline.from_pretrained` never runs it (`own_class_name`).
"""

from __future__ import annotations

import json
from pathlib import Path

CUSTOM_PIPELINE = ["magicpose", "MagicPosePipeline"]
CUSTOM_PIPELINE_FILE = (
    '"""Lets `diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` find MagicPose\'s\n'
    'pipeline class: it only imports the installed magicpose package (pip install magicpose)."""\n\n'
    "from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline  # noqa: F401\n"
)


def name_pipeline_class(folder: str | Path) -> None:
    """Point a folder's model_index.json at magicpose's pipeline class the way diffusers resolves custom ones."""
    folder = Path(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = CUSTOM_PIPELINE
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (folder / f"{CUSTOM_PIPELINE[0]}.py").write_text(CUSTOM_PIPELINE_FILE)


def own_class_name(config: dict, class_name: str) -> dict:
    """A loaded model_index naming magicpose's pipeline as [file, class], with the plain class name instead:
    loading through the class itself needs neither the file nor trust in it."""
    if config.get("_class_name") == CUSTOM_PIPELINE:
        config["_class_name"] = class_name
    return config
