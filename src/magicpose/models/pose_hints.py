"""The pose ControlNet's hint encoder run once per pose image per generation instead of once per step.

The hint encoder (`controlnet_cond_embedding`, eight convolutions from the pose image to the latent
size) reads only the pose images, which do not change across denoising steps: 0.7 % of a guided step at
SD-1.5 size (`benchmarks/bench_flops.py`). Its outputs are kept for the span of a `with` block, keyed by
the input's storage, place and version (the block holds the inputs, so their memory cannot be reused), at
320 x h x w values per frame (63 MB for 16 frames at 512x768 in half precision).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def reuse_pose_hints(pose_control: torch.nn.Module | None) -> Iterator[None]:
    """Inside the block, a pose image the ControlNet has encoded before gets the same embedding back."""
    embedding = getattr(pose_control, "controlnet_cond_embedding", None)
    if embedding is None:
        yield
        return
    own = embedding.__dict__.get("forward")  # accelerate's offload hooks replace forward the same way
    encode = embedding.forward
    kept: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(condition: torch.Tensor) -> torch.Tensor:
        # The storage, not the address: views of one pose batch match, and so do meta tensors (no address).
        key = (condition.untyped_storage()._cdata, condition.storage_offset(), condition.shape, condition.stride())
        key += (condition.dtype, condition.device, condition._version)
        if key not in kept:
            kept[key] = (condition, encode(condition))
        return kept[key][1]

    embedding.forward = forward
    try:
        yield
    finally:
        if own is None:
            del embedding.forward
        else:
            embedding.forward = own
