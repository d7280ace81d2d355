"""Videos of any length with a motion module: overlapping windows whose epsilons are blended.

A motion UNet sees one clip at a time (AnimateDiff v2 has 32 temporal positions and was trained on
16 frames). At every denoising step the video is cut into windows of `window` frames that overlap by
`overlap`, each window is denoised as one clip, and every frame's epsilon is the weighted mean of the
windows that contain it (MagicAnimate and Moore-AnimateAnyone: 16 / 24 frames, overlap 4; MimicMotion
blends 72-frame tiles with triangular weights):

    eps_i = sum_w a_w(i) eps_w(i) / sum_w a_w(i)

The scheduler then steps all frames at once, so neighbouring windows agree more with every step.
The appearance branch does not depend on the frames: one pass per step serves every window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from magicpose.pipelines.image_guidance import image_guidance

WeightShape = Literal["ramp", "triangular"]


def sliding_windows(num_frames: int, window: int = 16, overlap: int = 4) -> list[range]:
    """Frame ranges of `window` frames, `window - overlap` apart, covering `num_frames` frames.

    The last window is aligned to the end of the video (it may overlap its neighbour by more than
    `overlap`), so every window is full length; a video shorter than a window is one window.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    if num_frames <= window:
        return [range(num_frames)]
    starts = list(range(0, num_frames - window + 1, window - overlap))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [range(start, start + window) for start in starts]


def window_weights(length: int, overlap: int, shape: WeightShape = "ramp") -> torch.Tensor:
    """Blending weight a(i) > 0 of each frame i of a window of `length` frames.

    "ramp" (cross-fade): 1 inside, rising as (k + 1) / (overlap + 1) over the first `overlap` frames and
    falling the same way over the last ones; two windows overlapping by exactly `overlap` frames then
    have weights summing to 1 there. "triangular" (MimicMotion): min(u, 2 - u) with
    u = 2 (i + 0.5) / length, peaking at the window's centre. Weights are never zero, so a frame seen by
    one window only keeps that window's epsilon after normalisation.
    """
    if length < 1 or overlap < 0:
        raise ValueError(f"need length >= 1 and overlap >= 0, got length={length}, overlap={overlap}")
    index = torch.arange(length, dtype=torch.float32)
    if shape == "triangular":
        u = (index + 0.5) * 2.0 / length
        return torch.minimum(u, 2.0 - u)
    if shape != "ramp":
        raise ValueError(f"unknown weight shape {shape!r}; expected 'ramp' or 'triangular'")
    rise = (index + 1.0) / (overlap + 1.0)
    return torch.minimum(torch.minimum(rise, rise.flip(0)), torch.ones_like(rise))


def frame_chunks(num_frames: int, size: int) -> list[range]:
    """Disjoint ranges of at most `size` frames covering `num_frames` (frames a 2-D UNet treats alone)."""
    return [range(start, min(start + size, num_frames)) for start in range(0, num_frames, size)]


def blend(
    predict: Callable[[range], torch.Tensor],
    groups: list[range],
    num_frames: int,
    overlap: int = 0,
    shape: WeightShape = "ramp",
) -> torch.Tensor:
    """`predict(frames) -> (len(frames), ...)` over groups of frames covering `num_frames`, per frame the
    weighted mean of the groups that hold it. Disjoint groups (chunks, or one window) are concatenated."""
    if sum(len(frames) for frames in groups) == num_frames:
        return torch.cat([predict(frames) for frames in groups])
    total = weight_sum = None
    for frames in groups:
        prediction = predict(frames)
        if total is None:
            # Accumulate in float32: half-precision sums of several windows would round visibly.
            total = prediction.new_zeros((num_frames, *prediction.shape[1:]), dtype=torch.float32)
            weight_sum = prediction.new_zeros((num_frames,), dtype=torch.float32)
        weights = window_weights(len(frames), overlap, shape).to(prediction.device, torch.float32)
        span = slice(frames.start, frames.stop)
        total[span] += prediction.float() * weights.view(-1, *([1] * (prediction.ndim - 1)))
        weight_sum[span] += weights
    return (total / weight_sum.view(-1, *([1] * (total.ndim - 1)))).to(prediction.dtype)


def blend_windows(
    predict: Callable[[range], torch.Tensor],
    num_frames: int,
    window: int = 16,
    overlap: int = 4,
    shape: WeightShape = "ramp",
) -> torch.Tensor:
    """Weighted mean over the sliding windows of `predict(frames) -> (len(frames), ...)`, per frame.

    A video no longer than a window is one clip: its prediction is returned as is.
    """
    return blend(predict, sliding_windows(num_frames, window, overlap), num_frames, overlap, shape)


def guided_step_epsilon(
    model: Callable[..., torch.Tensor],
    latents: torch.Tensor,
    timestep: torch.Tensor | int,
    context: torch.Tensor,
    pose_images: torch.Tensor | None,
    reference_features: dict[str, torch.Tensor] | None,
    guidance_scale: float,
    groups: list[range],
    overlap: int = 0,
    shape: WeightShape = "ramp",
    frame_chunk_size: int | None = None,
) -> torch.Tensor:
    """The one sampling step's epsilon, 2-D or windowed: image guidance per group of frames, blended.

    A group is one call of the model: a chunk of frames for a 2-D UNet (`frame_chunks`), one clip for a
    motion UNet (`sliding_windows`, overlapping by `overlap`). `model(x, t, context, pose_images=...,
    reference_features=...)` is the conditional branch, `model(x, t, context)` the plain base UNet;
    `pose_images=None` leaves the pose ControlNet out, `reference_features=None` the appearance branch.
    `frame_chunk_size`: frames per call of the layers that treat frames alone inside a group.
    """
    if pose_images is not None and pose_images.shape[0] != latents.shape[0]:
        raise ValueError(f"{pose_images.shape[0]} pose frames for {latents.shape[0]} latents")
    chunking = {"frame_chunk_size": frame_chunk_size} if frame_chunk_size else {}

    def guided(frames: range) -> torch.Tensor:
        x = latents[frames.start : frames.stop]
        poses = None if pose_images is None else pose_images[frames.start : frames.stop]
        return image_guidance(
            lambda: model(x, timestep, context, pose_images=poses, reference_features=reference_features, **chunking),
            lambda: model(x, timestep, context, **chunking),
            guidance_scale,
        )

    return blend(guided, groups, latents.shape[0], overlap, shape)


def denoise_in_windows(
    model: Callable[..., torch.Tensor],
    latents: torch.Tensor,
    timestep: torch.Tensor | int,
    context: torch.Tensor,
    pose_images: torch.Tensor,
    reference_features: dict[str, torch.Tensor],
    guidance_scale: float,
    window: int = 16,
    overlap: int = 4,
    shape: WeightShape = "ramp",
    frame_chunk_size: int | None = None,
) -> torch.Tensor:
    """Guided epsilon of every frame of a video at one denoising step, each sliding window one clip
    (`guided_step_epsilon` over `sliding_windows(len(latents), window, overlap)`).

    Args:
        model: a `MagicPoseModel` (or any callable with its signature); with a motion UNet inside, a
            batch of frames is one clip.
        latents: (N, 4, h, w) scaled model input x_t of the whole video.
        timestep: the step's timestep.
        context: (1, L, D) text context.
        pose_images: (N, 3, H, W) pose renderings in [0, 1].
        reference_features: `model.encode_reference(...)` at this timestep, shared by every window.
        guidance_scale: image guidance weight w (eps_u + w (eps_c - eps_u)); 1 skips eps_u.
        window, overlap, shape: see `sliding_windows` and `window_weights`.
        frame_chunk_size: frames per call of the layers that treat frames alone (`MagicPoseModel`);
            each window stays one clip for the temporal layers.
    Returns:
        (N, 4, h, w) blended epsilon.
    """
    groups = sliding_windows(latents.shape[0], window, overlap)
    return guided_step_epsilon(
        model,
        latents,
        timestep,
        context,
        pose_images,
        reference_features,
        guidance_scale,
        groups,
        overlap,
        shape,
        frame_chunk_size,
    )
