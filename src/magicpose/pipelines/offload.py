"""Memory bounded by design: the VAE decodes a few frames at a time, and an offload plan that moves no weight
inside the denoising loop.

The appearance pass reads the clean reference latent and the timestep, never the noisy latents, so the
reference bank of every step can be computed before the loop. Each network then comes to the GPU for one
phase of a call and leaves after it:

    VAE (encode the reference) -> appearance model (every step's bank, kept on the host)
    -> base UNet + pose ControlNet (the whole loop) -> VAE (decode)

Peak memory is the largest phase, not the sum of the networks, and the loop moves only each step's bank
(activations: about 35 MB in half precision at 512x768) to the GPU. diffusers' model CPU offload instead
moves the appearance model every step and the ControlNet every frame chunk. `benchmarks/bench_memory.py`
prints the peaks of both ways.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import torch

# Frames per VAE decode call: its activations grow with the batch (about 0.56 GiB per frame at 512x768
# in half precision), far above the denoising's. The VAE treats frames alone, so the pixels do not
# depend on it but for the last float bits some CPU kernels round differently at other batch sizes
# (identical at even chunk sizes here, within 4e-6 otherwise: tests/pipelines/test_memory_plan.py).
VAE_DECODE_FRAMES = 2

HOST = torch.device("cpu")


def decode_batch(frame_chunk_size: int) -> int:
    """Frames per VAE decode call for a sampling `frame_chunk_size`: a few at most, whatever the chunk."""
    return max(1, min(frame_chunk_size, VAE_DECODE_FRAMES))


class OffloadPlan:
    """Which networks wait on the host and when each comes to `device` (see the module docstring).

    `phase(*modules)` puts the given networks on the device for a block and sends them back after it.
    Without a plan (`pipeline.offload_plan is None`) every network stays where the user put it.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.moved_bytes = 0  # weights sent either way, for benchmarks

    def place(self, pipeline) -> None:
        """Everything on the host but the constant text context (a 236 KB buffer read every call)."""
        for name, module in pipeline.components.items():
            if isinstance(module, torch.nn.Module):
                module.to(self.device if name == "text_context" else HOST)

    @contextmanager
    def phase(self, *modules: torch.nn.Module | None) -> Iterator[None]:
        modules = [module for module in modules if module is not None]
        self._move(modules, self.device)
        try:
            yield
        finally:
            self._move(modules, HOST)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _move(self, modules: list[torch.nn.Module], device: torch.device) -> None:
        for module in modules:
            self.moved_bytes += sum(p.numel() * p.element_size() for p in module.parameters())
            module.to(device)

    def stage_bank(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A bank parked on the host between its computation and its step (pinned: the copy back overlaps)."""
        pin = self.device.type == "cuda"
        return {name: value.to(HOST).pin_memory() if pin else value.to(HOST) for name, value in features.items()}

    def fetch_bank(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: value.to(self.device, non_blocking=True) for name, value in features.items()}


def phase(plan: OffloadPlan | None, *modules):
    """`plan.phase(*modules)`, or nothing without a plan."""
    return nullcontext() if plan is None else plan.phase(*modules)


def reference_banks(model, reference_latents, timesteps: Iterable, context, plan: OffloadPlan | None) -> Iterator:
    """The appearance features of each step in turn (None without a reference).

    Without a plan each step's pass runs when its step asks for it (as it always has); with one, every
    step's pass runs now, with the appearance model on the device, and the banks wait on the host.
    """
    if reference_latents is None:
        return iter(lambda: None, object())  # endless Nones
    if plan is None:
        return (model.encode_reference(reference_latents, t, context) for t in timesteps)
    with plan.phase(model.appearance_control):
        banks = [plan.stage_bank(model.encode_reference(reference_latents, t, context)) for t in timesteps]
    return (plan.fetch_bank(bank) for bank in banks)
