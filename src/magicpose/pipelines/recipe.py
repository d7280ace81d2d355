"""A model's sampling recipe: the settings a model folder saves beside its scheduler, and their bounds."""

from __future__ import annotations

import math

from magicpose.errors import InputError

RECIPE_KEYS = (
    "num_inference_steps",
    "guidance_scale",
    "guidance_interval",
    "start_from_reference",
    "window_frames",
    "window_overlap",
)
MAX_STEPS = 1000  # the noise schedule's length
MAX_GUIDANCE = 30.0  # far above any useful scale (official 7); larger ones saturate every pixel


def check_recipe(
    num_inference_steps=None,
    guidance_scale=None,
    guidance_interval=None,
    start_from_reference=None,
    window_frames=None,
    window_overlap=None,
) -> None:
    """Raise `InputError` (a ValueError) naming the first sampling setting out of range; None is not checked."""
    if num_inference_steps is not None and not 1 <= num_inference_steps <= MAX_STEPS:
        raise InputError(f"steps must be from 1 to {MAX_STEPS}, got {num_inference_steps}")
    if guidance_scale is not None and not (math.isfinite(guidance_scale) and 0 <= guidance_scale <= MAX_GUIDANCE):
        raise InputError(f"guidance must be from 0 to {MAX_GUIDANCE:g} (official 7; 1 = off), got {guidance_scale}")
    if guidance_interval is not None:
        low, high = guidance_interval
        if not 0 <= low < high:
            raise InputError(f"guidance interval LOW HIGH needs 0 <= LOW < HIGH, got {low:g} {high:g}")
    if window_frames is not None and window_frames < 1:
        raise InputError(f"window must be at least 1 frame, got {window_frames}")
    if window_overlap is not None and not 0 <= window_overlap < (window_frames or 16):
        raise InputError(f"window overlap must be from 0 to the window length - 1, got {window_overlap}")
