"""A model on held-out puppets: self-reenactment of test-split videos, scored against ground truth.

As in the TikTok protocol, the reference is the first frame of a video and the driving poses are the
video's own later frames, so every generated frame has a ground truth. The puppet world adds what real
data lacks: the person mask, the part map and the empty scene, hence masked PSNR/SSIM, person-mask
IoU and identity colour error (`magicpose.evaluation.puppet_metrics`), next to the paper's
SSIM/PSNR/L1 (`magicpose.evaluation.frame_metrics`, DisCo protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from magicpose.evaluation import frame_metrics, puppet_metrics

METRICS = (
    "masked_psnr", "masked_ssim", "mask_iou", "identity_colour_error", "ssim", "psnr", "l1",
)  # fmt: skip


@dataclass
class PuppetEvaluation:
    """Per-frame scores (one dict per generated frame) and their means."""

    per_frame: list[dict[str, float]] = field(default_factory=list)

    def mean(self) -> dict[str, float]:
        return {name: float(np.nanmean([row[name] for row in self.per_frame])) for name in METRICS}


def score_frame(generated: np.ndarray, truth, background: np.ndarray) -> dict[str, float]:
    """All metrics of one generated RGB uint8 frame against a `PuppetFrame` and the empty scene:
    the puppet metrics (per-region colour errors averaged into one) and the paper's DisCo-protocol ones."""
    puppet = puppet_metrics.puppet_frame_scores(generated, truth.image, truth.mask, truth.parts, background)
    colour_errors = [value for name, value in puppet.items() if name.startswith("colour_")]
    return {
        "masked_psnr": puppet["masked_psnr"],
        "masked_ssim": puppet["masked_ssim"],
        "mask_iou": puppet["mask_iou"],
        "identity_colour_error": float(np.mean(colour_errors)) if colour_errors else float("nan"),
        "ssim": frame_metrics.ssim(generated, truth.image, protocol="disco"),
        "psnr": frame_metrics.psnr(generated, truth.image, protocol="disco"),
        "l1": frame_metrics.l1(generated, truth.image, protocol="disco"),
    }


def evaluate_on_puppets(
    pipeline,
    *,
    videos: int = 8,
    frames_per_video: int = 8,
    size: int = 128,
    num_inference_steps: int = 25,
    guidance_scale: float = 7.0,
    seed: int = 42,
    split: str = "test",
    hands: bool = True,
    face: bool = True,
    frame_stride: int = 3,
    progress: bool = True,
) -> PuppetEvaluation:
    """Generate `frames_per_video` frames for each of the first `videos` videos of `split` and score them.

    `hands=False` / `face=False` drop those parts from the driving skeletons (the paper's test of the
    masking augmentation: poses whose hands or face were not detected).
    """
    from magicpose.data.puppet.world import PuppetVideo, video_spec
    from magicpose.poses.render import draw_openpose

    condition_side = size // pipeline.vae_scale_factor * pipeline.pose_scale_factor
    scale = condition_side / size
    result = PuppetEvaluation()
    for index in tqdm(range(videos), desc=f"puppet {split} videos", unit="video", disable=not progress):
        video = PuppetVideo(video_spec(split, index, width=size, height=size, num_frames=1 + frames_per_video * frame_stride))
        reference = video.frame(0).image
        targets = [video.frame(1 + k * frame_stride) for k in range(frames_per_video)]
        conditions = [
            draw_openpose(t.pose.transformed(scale, np.zeros(2)), condition_side, condition_side, hands=hands, face=face)
            for t in targets
        ]
        output = pipeline(
            reference, conditions, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            generator=torch.Generator().manual_seed(seed), height=size, width=size, output_type="np",
        )  # fmt: skip
        background = video.background
        for generated, target in zip(output.frames, targets):
            result.per_frame.append(score_frame((generated * 255).round().astype(np.uint8), target, background))
    return result
