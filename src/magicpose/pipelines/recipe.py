"""A model's sampling recipe: the settings a model folder saves beside its scheduler, and their bounds.

The one check of them: the pipeline, the CLI, the app and the training config (`sampling.*`) all call
`check_recipe`, so a value one accepts the others accept too. Light on purpose (no torch, no diffusers):
`magicpose --help` and reading a training config use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from magicpose.errors import InputError

RECIPE_KEYS = (
    "num_inference_steps",
    "guidance_scale",
    "guidance_interval",
    "start_from_reference",
    "window_frames",
    "window_overlap",
)
# The samplers a user can pick by name; `pipelines.schedulers.SCHEDULERS` maps each to its diffusers class.
SCHEDULER_NAMES = ("ddim", "dpm++", "unipc", "euler-a")
MAX_STEPS = 1000  # the noise schedule's length
MAX_GUIDANCE = 30.0  # far above any useful scale (official 7); larger ones saturate every pixel

# How a message names each setting where the caller gives no names of its own.
PLAIN_NAMES = {
    "scheduler": "scheduler",
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "guidance_interval": "guidance interval",
    "window_frames": "window",
    "window_overlap": "window overlap",
}


def check_recipe(
    num_inference_steps=None,
    guidance_scale=None,
    guidance_interval=None,
    start_from_reference=None,  # any truth value: nothing to check
    window_frames=None,
    window_overlap=None,
    scheduler=None,
    *,
    names: Mapping[str, str] = PLAIN_NAMES,
) -> None:
    """Raise `InputError` (a ValueError) naming the first sampling setting out of range; None is not checked.

    `names` says how the message names each setting (a training config says `sampling.guidance_scale`).
    """
    if scheduler is not None and scheduler not in SCHEDULER_NAMES:
        raise InputError(f"{names['scheduler']} must be one of {', '.join(SCHEDULER_NAMES)}, got {scheduler!r}")
    if num_inference_steps is not None and not 1 <= num_inference_steps <= MAX_STEPS:
        raise InputError(f"{names['num_inference_steps']} must be from 1 to {MAX_STEPS}, got {num_inference_steps}")
    if guidance_scale is not None and not (math.isfinite(guidance_scale) and 0 <= guidance_scale <= MAX_GUIDANCE):
        raise InputError(
            f"{names['guidance_scale']} must be from 0 to {MAX_GUIDANCE:g} (official 7; 1 = off), got {guidance_scale}"
        )
    if guidance_interval is not None:
        low, high = guidance_interval
        if not 0 <= low < high <= MAX_STEPS:
            raise InputError(
                f"{names['guidance_interval']} must be [low, high] training timesteps with "
                f"0 <= low < high <= {MAX_STEPS}, got {low:g} {high:g}"
            )
    if window_frames is not None and window_frames < 1:
        raise InputError(f"{names['window_frames']} must be at least 1 frame, got {window_frames}")
    if window_overlap is not None and not 0 <= window_overlap < (window_frames or 16):
        raise InputError(
            f"{names['window_overlap']} must be from 0 to the window length - 1 ({(window_frames or 16) - 1}), "
            f"got {window_overlap}"
        )
