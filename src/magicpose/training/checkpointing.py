"""Atomic training checkpoints and exact resume.

    OUT/checkpoints/step-000500/
        trainable.safetensors    the parameters being trained (frozen ones come from the config)
        optimizer.pt             optimizer state (moments, step counts)
        state.pt                 step, LR schedule, RNG states of the main process, the config
        rng-rank{r}.pt           each rank's noise generator and torch/numpy/python RNG states
        ema.pt                   the moving average of the trained weights (runs with train.ema_decay)

Every process writes into `.step-000500.partial`; after a barrier the main process renames it, so a
checkpoint folder either exists whole or not at all, and resume takes the newest whole one.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from magicpose.errors import InputError

_NAME = re.compile(r"^step-(\d{6,})$")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and the last good checkpoint was kept."""


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def latest_checkpoint(out: str | Path) -> Path | None:
    found = sorted(
        (p for p in checkpoint_dir(out).glob("step-*") if _NAME.match(p.name) and p.is_dir()), key=lambda p: p.name
    )
    return found[-1] if found else None


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {name for name, p in module.named_parameters() if p.requires_grad}
    return {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items() if name in names}


def rng_state(generator: torch.Generator) -> dict:
    state = {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    accelerator, out, step: int, module, optimizer, lr_scheduler, generator, config: dict, keep: int, ema=None
) -> Path:
    """Write step `step` atomically (all ranks call this); keep the newest `keep` checkpoints."""
    root = checkpoint_dir(out)
    final = root / f"step-{step:06d}"
    partial = root / f".step-{step:06d}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(generator), partial / f"rng-rank{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        save_file(trainable_state(accelerator.unwrap_model(module)), partial / "trainable.safetensors")
        torch.save(optimizer.state_dict(), partial / "optimizer.pt")
        if ema is not None:
            torch.save(ema.state_dict(), partial / "ema.pt")
        torch.save(
            {
                "step": step,
                "lr_scheduler": lr_scheduler.state_dict(),
                "config": config,
                "world_size": accelerator.num_processes,
            },
            partial / "state.pt",
        )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        for old in sorted(p for p in root.glob("step-*") if _NAME.match(p.name))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, folder: Path, module, optimizer, lr_scheduler, generator) -> int:
    """Restore everything `save_checkpoint` wrote but the EMA (`load_ema`); returns the step to continue from."""
    state = torch.load(folder / "state.pt", weights_only=False)
    if state["world_size"] != accelerator.num_processes:
        raise InputError(
            f"{folder} was written by {state['world_size']} processes, this run has "
            f"{accelerator.num_processes}; resume with the same number to continue exactly"
        )
    model = accelerator.unwrap_model(module)
    missing = set(trainable_state(model)) - set(weights := load_file(folder / "trainable.safetensors"))
    if missing:
        raise InputError(f"{folder} does not match this stage's model (missing {sorted(missing)[:3]} ...)")
    model.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    restore_rng(torch.load(folder / f"rng-rank{accelerator.process_index}.pt", weights_only=False), generator)
    return int(state["step"])


# Settings a resumed run may change without losing exactness: how long it runs, how it reports and saves.
FREE_TO_CHANGE = ("train.max_steps", "train.max_minutes", "data.num_workers", "output.")
# Settings the restored optimizer and LR schedule carry: a new value in the config has no effect.
RESTORED = ("train.learning_rate", "train.lr_scheduler", "train.lr_warmup_steps", "train.adam_", "train.weight_decay")


def _leaves(tree: dict, prefix: str = "") -> dict:
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def changed_settings(folder: Path, config: dict) -> list[str]:
    """The settings of `config` that differ from those the checkpoint was written with, as
    "key: old -> new" (with a note where the checkpoint's own value stays in force)."""
    saved = torch.load(folder / "state.pt", weights_only=False).get("config") or {}
    old, new = _leaves(saved), _leaves(config)
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key) or key.startswith(FREE_TO_CHANGE):
            continue
        note = (
            " (the checkpoint's value stays: the optimizer and LR schedule are restored)"
            if key.startswith(RESTORED)
            else ""
        )
        changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}{note}")
    return changes


def load_ema(folder: Path, ema) -> bool:
    """Restore the moving average where the checkpoint has one (a run that turns EMA on when resuming
    keeps the average it started at the restored weights)."""
    if not (folder / "ema.pt").is_file():
        return False
    ema.load_state_dict(torch.load(folder / "ema.pt", weights_only=False))
    return True
