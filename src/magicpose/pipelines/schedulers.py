"""The samplers a user can pick by name; each walks the model's own noise schedule (`models.noise_schedule`)."""

from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    SchedulerMixin,
    UniPCMultistepScheduler,
)

from magicpose.models.noise_schedule import OFFICIAL_DDIM_SPACING

# The class of each sampler a user can pick by name (`--scheduler`), in the order of the one list of
# names (`recipe.SCHEDULER_NAMES`: light, for --help and configs); all run the model's own noise schedule.
SCHEDULERS = {
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,  # DPM-Solver++(2M), Lu et al. 2022
    "unipc": UniPCMultistepScheduler,
    "euler-a": EulerAncestralDiscreteScheduler,
}


def scheduler_named(name: str, config) -> SchedulerMixin:
    """The sampler `name` over the noise schedule in `config` (another scheduler's config). "ddim" is
    the official DDIM (leading spacing, offset 1, last alpha not 1) whatever `config` says of those."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    if name == "ddim":
        return DDIMScheduler.from_config(config, **OFFICIAL_DDIM_SPACING)
    return SCHEDULERS[name].from_config(config)


def step_timestep(scheduler: SchedulerMixin, timestep, number):
    """The timestep to hand `scheduler.step`: DDIM indexes its host tables with it, so it gets the Python
    number (a device tensor there is a host sync per lookup); the others keep the tensor (Euler refuses
    integers) and index by step after the first one."""
    return number if isinstance(scheduler, DDIMScheduler) else timestep
