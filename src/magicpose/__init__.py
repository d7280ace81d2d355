"""MagicPose: pose and facial-expression retargeting with a Stable Diffusion 1.5 plug-in.

Heavy classes are imported lazily so that `magicpose --help` stays fast; diffusers also resolves the
classes named in a pipeline folder's model_index.json ("magicpose", "AppearanceControlModel") here.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "AppearanceControlModel": "magicpose.models.appearance_control",
    "MagicPoseModel": "magicpose.models.magicpose_model",
    "TextContext": "magicpose.models.text_context",
    "MagicPosePipeline": "magicpose.pipelines.pipeline_magicpose",
    "MagicPosePipelineOutput": "magicpose.pipelines.pipeline_magicpose",
    "load": "magicpose.pipelines.assembly",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'magicpose' has no attribute {name!r}")
