"""The noise schedule the model was trained with, and the official DDIM walk over it.

The schedule is a property of the model (its UNet predicts noise for these betas), so it lives with the
models; the samplers a user may pick over it are in `magicpose.pipelines.schedulers`.
"""

from __future__ import annotations

from diffusers import DDIMScheduler

# ldm's "linear" schedule is diffusers' "scaled_linear": betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2.
OFFICIAL_SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
)
# How `DDIMSampler_ReferenceOnly` walks that schedule (official_ddim_scheduler's docstring).
OFFICIAL_DDIM_SPACING = dict(clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


def official_ddim_scheduler() -> DDIMScheduler:
    """DDIM as `DDIMSampler_ReferenceOnly` runs it (eta 0 is passed at sampling time).

    Timesteps are `range(0, 1000, 1000 // S) + 1` in reverse ("leading" spacing, offset 1: 981 ... 1 for
    S = 50), and the last step's previous alpha is alphas_cumprod[0] = 0.99915, not 1
    (`set_alpha_to_one=False`). The update is Song et al. 2021, Eq. 12 with sigma = 0:
    x_prev = sqrt(a_prev) * (x - sqrt(1 - a_t) * eps) / sqrt(a_t) + sqrt(1 - a_prev) * eps.
    """
    return DDIMScheduler(**OFFICIAL_SCHEDULE, **OFFICIAL_DDIM_SPACING)
