"""Lets `diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` find MagicPose's
pipeline class: it only imports the installed magicpose package (pip install magicpose)."""

from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline  # noqa: F401
