"""Trained components -> folders the rest of the project loads.

Stages 1 and 2 write a whole pipeline folder (`load_pipeline` reads it). The prerequisite stages write
per-component folders (`OUT/export/vae`, `unet` + `text_context`, `pose_control`) that the next stage's
config names in its `model:` section.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

PIPELINE_PARTS = ("unet", "appearance_control", "pose_control", "vae", "text_context")


@torch.no_grad()
def calibrate_vae_scale(vae, images: torch.Tensor) -> float:
    """SD's convention: scaling_factor = 1 / std of the latents, so the diffusion sees unit variance."""
    latents = vae.encode(images.to(vae.device, vae.dtype)).latent_dist.mode()
    return float(1.0 / latents.float().std().clamp_min(1e-6))


def export_components(parts: dict, out: str | Path) -> Path:
    """Write the stage's components: a pipeline folder when all parts are there, else one folder each."""
    from magicpose.pipelines.assembly import save_pipeline_atomically

    out = Path(out)
    parts = {name: module.float() if hasattr(module, "float") else module for name, module in parts.items() if module is not None}
    if all(name in parts for name in PIPELINE_PARTS):
        from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
        from magicpose.pipelines.schedulers import official_ddim_scheduler

        pipeline = MagicPosePipeline(**{name: parts[name] for name in PIPELINE_PARTS}, scheduler=official_ddim_scheduler())
        return save_pipeline_atomically(pipeline, out, overwrite=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, module in parts.items():
            module.save_pretrained(temporary / name)
        if out.exists():
            shutil.rmtree(out)
        temporary.rename(out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out
