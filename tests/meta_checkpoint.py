"""Shape-only stand-ins for the full-size official checkpoint (meta tensors: no memory, no weights), for
the conversion tests and `benchmarks/bench_convert_memory.py`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from magicpose.models.official_checkpoint import instantiate


def component_shapes(name: str, config: dict) -> dict[str, torch.Size]:
    """Parameter shapes of a component built on the meta device: no memory, nothing downloaded."""
    with torch.device("meta"):
        model = instantiate(name, config)
    return {key: value.shape for key, value in model.state_dict().items()}


def meta_state_dict(full_keys_json: str | Path) -> dict[str, torch.Tensor]:
    """Meta tensors with the shapes and dtypes listed in the shared `full_keys.json`."""
    listing = json.loads(Path(full_keys_json).read_text())
    entries = listing["keys"] if isinstance(listing, dict) and "keys" in listing else listing
    if isinstance(entries, dict):
        entries = [dict(key=key, **value) for key, value in entries.items()]
    return {
        entry["key"]: torch.empty(
            entry["shape"], dtype=getattr(torch, entry["dtype"].removeprefix("torch.")), device="meta"
        )
        for entry in entries
    }
