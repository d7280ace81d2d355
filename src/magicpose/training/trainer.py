"""The training loop, every stage, one process or many (accelerate).

    magicpose train configs/puppet/stage2_pose.yaml [--resume] [train.max_steps=100 ...]
    accelerate launch --multi_gpu --num_processes 8 -m magicpose.interfaces.cli train CONFIG.yaml

Read top to bottom: set up accelerate, build the stage, optimizer and LR schedule, restore a
checkpoint, then per step: gradient-accumulated micro-batches -> clip -> optimizer step (-> EMA), with
logging, checkpoints, validation grids and, at the end, the export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from magicpose.errors import InputError
from magicpose.training.checkpointing import (
    TrainingDiverged,
    latest_checkpoint,
    load_checkpoint,
    load_ema,
    save_checkpoint,
)
from magicpose.training.config import TrainConfig, TrainingConfig
from magicpose.training.data import StepBatches, batches, training_dataset, validation_batch
from magicpose.training.stages import CLIP_STAGES, VaeStage, build_stage, trainable_parameters


def make_optimizer(parameters, train: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (official: no weight decay); bitsandbytes' 8-bit AdamW where asked for and installed."""
    options = dict(lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2), weight_decay=train.weight_decay)
    if train.use_8bit_adam:
        try:
            import bitsandbytes

            return bitsandbytes.optim.AdamW8bit(parameters, **options)
        except ImportError:
            warnings.warn(
                "train.use_8bit_adam: bitsandbytes is not installed; using torch AdamW "
                "(pip install bitsandbytes on a CUDA machine for 8-bit Adam)",
                stacklevel=2,
            )
    return torch.optim.AdamW(parameters, **options)


def _any_rank(accelerator, flag: bool) -> bool:
    """True when the flag is set on any rank (so that every rank stops at the same step)."""
    value = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.gather(value).max() > 0)


def _all_finite(accelerator, loss: torch.Tensor) -> bool:
    """True when every rank's loss is finite (all ranks must agree to stop together)."""
    return not _any_rank(accelerator, not bool(torch.isfinite(loss.detach()).all()))


def train(config: TrainingConfig, resume: bool = False, stop_after: int | None = None) -> Path:
    """Run (or continue) a stage; returns the export folder. `stop_after` ends the run after that
    step as an interruption would (no export): tests use it to check that resume is exact."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from diffusers.optimization import get_scheduler

    out = Path(config.output.dir)
    t = config.train
    accelerator = Accelerator(
        mixed_precision=t.mixed_precision,
        cpu=t.cpu,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    main = accelerator.is_main_process
    if not resume and latest_checkpoint(out) is not None:
        raise InputError(
            f"{out} already holds checkpoints; pass --resume to continue, or set output.dir=ANOTHER_FOLDER"
        )

    # Model, optimizer, schedule. Stage modules return their loss, so DDP wraps one module per stage.
    torch.manual_seed(t.seed)
    stage = build_stage(config)
    parameters = trainable_parameters(stage)
    optimizer = make_optimizer(parameters, t)
    lr_scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=t.lr_warmup_steps, num_training_steps=t.max_steps
    )
    stage, optimizer = accelerator.prepare(stage, optimizer)  # the LR schedule steps once per optimizer step, by us
    generator = torch.Generator().manual_seed(t.seed * 1_000 + accelerator.process_index)  # noise, t, dropout

    step = 0
    if resume:
        checkpoint = latest_checkpoint(out)
        if checkpoint is None:
            raise InputError(f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume")
        step = load_checkpoint(accelerator, checkpoint, stage, optimizer, lr_scheduler, generator)
        accelerator.print(f"resumed from {checkpoint} (step {step})")
    ema = None
    if t.ema_decay:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(parameters, decay=t.ema_decay)  # starts at the weights trained from (restored on resume)
        if resume and not load_ema(checkpoint, ema):
            accelerator.print(f"{checkpoint} holds no EMA: the average starts at its weights")

    # Data: each rank takes its own slice of every step's samples (see training/data.py).
    dataset = training_dataset(config, clips=config.stage in CLIP_STAGES)
    sampler = StepBatches(
        len(dataset),
        t.batch_size,
        accelerator.process_index,
        accelerator.num_processes,
        t.seed,
        start=step * t.gradient_accumulation_steps,
    )
    data = batches(dataset, sampler, config.data.num_workers)
    held_out = (
        validation_batch(config, config.output.validation_samples, clips=config.stage in CLIP_STAGES) if main else None
    )

    if main:
        accelerator.init_trackers(config.stage)
    samples_per_step = t.batch_size * t.gradient_accumulation_steps * accelerator.num_processes
    progress = tqdm(total=t.max_steps, initial=step, desc=config.stage, disable=not main, dynamic_ncols=True)
    run_started = time.perf_counter()
    while step < t.max_steps:
        started = time.perf_counter()
        step_loss = torch.zeros((), device=accelerator.device)
        for micro in range(t.gradient_accumulation_steps):
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in next(data).items()}
            last = micro == t.gradient_accumulation_steps - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(stage):  # all-reduce once per step
                loss = stage(batch, generator)
                if not _all_finite(accelerator, loss):
                    good = latest_checkpoint(out)
                    raise TrainingDiverged(
                        f"the loss became {loss.item()} at step {step + 1}; stopped without saving. Last good "
                        f"checkpoint: {good or 'none'}. Lower train.learning_rate, use mixed_precision=bf16 or no, "
                        "then continue with --resume"
                    )
                accelerator.backward(loss / t.gradient_accumulation_steps)
            step_loss += loss.detach().float() / t.gradient_accumulation_steps
        if t.max_grad_norm:
            accelerator.clip_grad_norm_(parameters, t.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        if ema is not None:
            ema.step(parameters)
        optimizer.zero_grad(set_to_none=True)
        step += 1
        out_of_time = t.max_minutes is not None and _any_rank(
            accelerator, time.perf_counter() - run_started > 60 * t.max_minutes
        )

        loss_value = accelerator.reduce(step_loss, "mean").item()
        seconds = time.perf_counter() - started
        progress.update(1)
        progress.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{samples_per_step / seconds:.1f}")
        if step % config.output.log_every == 0 or step == t.max_steps:
            accelerator.log(
                {
                    "loss": loss_value,
                    "lr": lr_scheduler.get_last_lr()[0],
                    "samples_per_second": samples_per_step / seconds,
                    "seconds_per_step": seconds,
                },
                step=step,
            )
        if step % config.output.checkpoint_every == 0 or step == t.max_steps or out_of_time:
            save_checkpoint(
                accelerator,
                out,
                step,
                stage,
                optimizer,
                lr_scheduler,
                generator,
                config.to_dict(),
                config.output.keep_checkpoints,
                ema,
            )
        if main and config.output.validate_every and step % config.output.validate_every == 0:
            with _averaged(ema, parameters):
                _validate(
                    accelerator.unwrap_model(stage), held_out, out / "validation" / f"step-{step:06d}.png", config
                )
        if stop_after is not None and step >= stop_after:
            progress.close()
            accelerator.end_training()
            return out / "export"
        if out_of_time:
            accelerator.print(f"train.max_minutes={t.max_minutes} spent: stopping at step {step} of {t.max_steps}")
            break
    progress.close()

    export = out / "export"
    if ema is not None:
        ema.copy_to(parameters)  # what the run exports is the average
    if main:
        _export(
            accelerator.unwrap_model(stage),
            _calibration_batch(config) if config.stage == "vae" else held_out,
            export,
            config.sampling,
        )
        print(f"exported {config.stage} to {export}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return export


@contextlib.contextmanager
def _averaged(ema, parameters):
    """The EMA weights in place of the trained ones for the duration (nothing without EMA)."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


def _calibration_batch(config: TrainingConfig) -> dict:
    """Whole frames as the diffusion stages will see them (puppet_size, not training patches), for the
    VAE's latent statistics."""
    data = dataclasses.replace(config.data, size=config.data.puppet_size or config.data.size)
    return validation_batch(dataclasses.replace(config, data=data), 32)


def _validate(stage, batch: dict, path: Path, config: TrainingConfig) -> None:
    from magicpose.training.validation import save_validation_grid, validation_recipe

    save_validation_grid(stage, batch, path, validation_recipe(config.sampling, config.output))


def _export(stage, held_out: dict, out: Path, sampling=None) -> None:
    from magicpose.training.export import calibrate_vae_latents, export_components

    if isinstance(stage, VaeStage):
        stage.vae.register_to_config(scaling_factor=calibrate_vae_latents(stage.vae, held_out["target"]))
    export_components(stage.exported(), out, sampling)
