"""Validation grids sample as exported models do: from the noised reference for the MagicPose stages."""

import torch

from magicpose.pipelines.schedulers import official_ddim_scheduler
from magicpose.training.validation import ddim_sample


def test_ddim_sample_from_a_start_adds_exactly_that_start():
    # With eps = 0, DDIM only rescales: x_prev = sqrt(a_prev / a_t) x_t (Song et al. 2021, Eq. 12). From a start,
    # x_T = sqrt(a_T) start + sqrt(1 - a_T) noise (DDPM Eq. 4), so the result is the pure-noise one scaled by
    # sqrt(1 - a_T) plus sqrt(a_final) start, a_final = alphas_cumprod[0].
    start = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    zero_eps = lambda x, t: torch.zeros_like(x)  # noqa: E731
    from_noise = ddim_sample(zero_eps, start.shape, 4, "cpu", torch.float32)
    from_start = ddim_sample(zero_eps, start.shape, 4, "cpu", torch.float32, start=start)
    scheduler = official_ddim_scheduler()
    scheduler.set_timesteps(4)
    first_alpha, final_alpha = scheduler.alphas_cumprod[scheduler.timesteps[0]], scheduler.alphas_cumprod[0]
    assert torch.allclose(from_start - (1 - first_alpha).sqrt() * from_noise, final_alpha.sqrt() * start, atol=1e-4)
