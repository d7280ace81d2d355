"""Image classifier-free guidance (paper §3.4; Ho & Salimans 2022, Eq. 6)."""

from __future__ import annotations

from typing import Callable

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
