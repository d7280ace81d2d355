"""Image classifier-free guidance (paper §3.4; Ho & Salimans 2022, Eq. 6)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def guided_epsilon(eps_conditional: torch.Tensor, eps_unconditional: torch.Tensor, scale: float) -> torch.Tensor:
    """eps = eps_u + w (eps_c - eps_u): w = 1 is the conditional model, w > 1 pushes further from eps_u."""
    return eps_unconditional + scale * (eps_conditional - eps_unconditional)


def image_guidance(
    conditional: Callable[[], torch.Tensor], unconditional: Callable[[], torch.Tensor], scale: float
) -> torch.Tensor:
    """Guided epsilon; the unconditional branch (the plain base UNet in MagicPose: no reference, no pose,
    so no ControlNet call either) is not evaluated when `scale == 1`."""
    eps_conditional = conditional()
    if scale == 1.0:
        return eps_conditional
    return guided_epsilon(eps_conditional, unconditional(), scale)


def guidance_scale_at(timestep, scale: float, interval: tuple[float, float] | None = None) -> float:
    """The guidance weight at one sampling timestep: `scale` for timesteps t with low < t <= high,
    1 (the conditional model alone) elsewhere; everywhere when `interval` is None.

    Guidance limited to an interval of noise levels (Kynkäänniemi et al. 2024, "Applying Guidance in a
    Limited Interval Improves Sample and Distribution Quality in Diffusion Models", Sec. 3): it is
    needed in the middle of sampling, harmful at the noisiest levels and useless at the cleanest,
    where outside the interval the unconditional branch need not run at all.
    """
    if interval is None:
        return scale
    low, high = interval  # checked with the rest of the recipe (recipe.check_recipe)
    return scale if low < float(timestep) <= high else 1.0
