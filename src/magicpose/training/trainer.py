"""The training loop, every stage, one process or many (accelerate).

    magicpose train configs/puppet/stage2_pose.yaml [--resume] [train.max_steps=100 ...]
    accelerate launch --multi_gpu --num_processes 8 -m magicpose.interfaces.cli train CONFIG.yaml

`train` reads top to bottom: set up (accelerate, the stage, optimizer, LR schedule, data), restore a
checkpoint, then per step: gradient-accumulated micro-batches -> clip -> optimizer step (-> EMA), with
logging, checkpoints and validation grids; at the end, the export. Each named step below is one of these.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from magicpose.errors import InputError
from magicpose.training.checkpointing import (
    TrainingDiverged,
    changed_settings,
    latest_checkpoint,
    load_checkpoint,
    load_ema,
    save_checkpoint,
)
from magicpose.training.config import TrainConfig, TrainingConfig
from magicpose.training.data import StepBatches, batches, training_dataset, validation_batch
from magicpose.training.stages import build_stage, trainable_parameters
from magicpose.training.validation import save_validation_grid, validation_recipe


def train(config: TrainingConfig, resume: bool = False, stop_after: int | None = None) -> Path:
    """Run (or continue) a stage; returns the export folder. `stop_after` ends the run after that step
    with a checkpoint and no export, as an interruption at a checkpoint would, and returns the
    checkpoint: tests use it to check that resume is exact."""
    run = set_up(config, resume)
    data = training_batches(run)
    held_out = validation_batch(config, config.output.validation_samples, clips=run.model.clips) if run.main else None
    progress = tqdm(
        total=run.t.max_steps, initial=run.step, desc=config.stage, disable=not run.main, dynamic_ncols=True
    )
    with stop_requests() as requested:
        while run.step < run.t.max_steps:
            loss, seconds = optimizer_step(run, data)
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4f}", samples_s=f"{run.samples_per_step / seconds:.1f}")
            log(run, loss, seconds)
            interrupted, out_of_time = stop_requested(run, requested.signal is not None)
            if interrupted:
                progress.close()
                raise TrainingInterrupted(requested.signal or signal.SIGINT, run.step, save(run))
            if (checkpoint := end_of_step(run, held_out, stop_after, out_of_time)) is not None:
                progress.close()
                return checkpoint
    progress.close()
    return finish(run)


def end_of_step(run: Run, held_out: dict | None, stop_after: int | None, out_of_time: bool) -> Path | None:
    """Checkpoint and validate where due; a path when the run stops here (`stop_after`, or out of time)."""
    config = run.config
    stopping = stop_after is not None and run.step >= stop_after
    if run.step % config.output.checkpoint_every == 0 or run.step == run.t.max_steps or out_of_time or stopping:
        checkpoint = save(run)
    if run.main and config.output.validate_every and run.step % config.output.validate_every == 0:
        validate(run, held_out)
    if stopping:
        run.accelerator.end_training()
        return checkpoint
    if out_of_time:
        run.accelerator.print(
            f"train.max_minutes={run.t.max_minutes} spent: stopping at step {run.step} of {run.t.max_steps}"
        )
        return finish(run)
    return None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: raised once the step under way has finished and its checkpoint is saved."""

    def __init__(self, signal_number: int, step: int, checkpoint: Path):
        super().__init__(signal_number)
        self.signal_number, self.step, self.checkpoint = int(signal_number), step, checkpoint


class stop_requests:
    """SIGINT and SIGTERM ask the loop to stop after the step under way (a checkpoint of a half-done step
    could not resume exactly); a second one stops at once. The previous handlers come back afterwards."""

    signals = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.signal, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                self.previous[number] = signal.signal(number, self.request)
        return self

    def request(self, number, frame):
        if self.signal is not None:
            raise KeyboardInterrupt(number)
        self.signal = number
        print(f"\nstopping after this step and saving a checkpoint ({signal.Signals(number).name}; again to abort)")

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


@dataclass
class Run:
    """Everything a run holds between steps."""

    config: TrainingConfig
    accelerator: Accelerator
    stage: torch.nn.Module  # as accelerate prepared it (DDP-wrapped on several processes)
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    generator: torch.Generator  # noise, timesteps, dropout: per rank, checkpointed
    ema: EMAModel | None = None
    step: int = 0
    started: float = 0.0

    @property
    def t(self) -> TrainConfig:
        return self.config.train

    @property
    def out(self) -> Path:
        return Path(self.config.output.dir)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def model(self):
        """The stage itself (not its DDP wrapper)."""
        return self.accelerator.unwrap_model(self.stage)

    @property
    def samples_per_step(self) -> int:
        return self.t.batch_size * self.t.gradient_accumulation_steps * self.accelerator.num_processes

    def state(self) -> tuple:
        """What a checkpoint holds besides the step, the config and the EMA, in `save_checkpoint`'s order."""
        return self.stage, self.optimizer, self.lr_scheduler, self.generator


def set_up(config: TrainingConfig, resume: bool) -> Run:
    """Accelerate, the stage, AdamW and the LR schedule; with `resume`, the newest checkpoint restored."""
    out, t = Path(config.output.dir), config.train
    accelerator = Accelerator(
        mixed_precision=t.mixed_precision,
        cpu=t.cpu,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    checkpoint = latest_checkpoint(out)
    if resume and checkpoint is None:
        raise InputError(f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume")
    if not resume and checkpoint is not None:
        raise InputError(
            f"{out} already holds checkpoints; pass --resume to continue, or set output.dir=ANOTHER_FOLDER"
        )
    torch.manual_seed(t.seed)
    stage = build_stage(config)  # returns its loss, so DDP wraps one module whatever the stage
    parameters = trainable_parameters(stage)
    optimizer = make_optimizer(parameters, t)
    lr_scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=t.lr_warmup_steps, num_training_steps=t.max_steps
    )
    stage, optimizer = accelerator.prepare(stage, optimizer)  # the LR schedule steps once per optimizer step, by us
    generator = torch.Generator().manual_seed(t.seed * 1_000 + accelerator.process_index)
    run = Run(config, accelerator, stage, parameters, optimizer, lr_scheduler, generator)
    if resume:
        run.step = load_checkpoint(accelerator, checkpoint, *run.state())
        accelerator.print(f"resumed from {checkpoint} (step {run.step})")
        changes = changed_settings(checkpoint, config.to_dict())
        if changes and run.main:
            warnings.warn(
                "resuming with settings that differ from the checkpoint's, so the run is no longer the one it "
                "continues: " + "; ".join(changes),
                stacklevel=2,
            )
    if t.ema_decay:
        run.ema = EMAModel(parameters, decay=t.ema_decay)  # starts at the weights trained from
        if resume and not load_ema(checkpoint, run.ema):
            accelerator.print(f"{checkpoint} holds no EMA: the average starts at its weights")
    if run.main:
        accelerator.init_trackers(config.stage)
    run.started = time.perf_counter()
    return run


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


def training_batches(run: Run) -> Iterator[dict]:
    """This rank's micro-batches from the run's step on: each rank takes its own slice of every step's
    samples, and the batches of step k do not depend on where the run started (training/data.py)."""
    dataset = training_dataset(run.config, clips=run.model.clips)
    sampler = StepBatches(
        len(dataset),
        run.t.batch_size,
        run.accelerator.process_index,
        run.accelerator.num_processes,
        run.t.seed,
        start=run.step * run.t.gradient_accumulation_steps,
    )
    return batches(dataset, sampler, run.config.data.num_workers)


def optimizer_step(run: Run, data: Iterator[dict]) -> tuple[float, float]:
    """One step: the accumulated micro-batches, gradient clipping, the optimizer, LR schedule and EMA.
    Returns the loss averaged over micro-batches and ranks, and the seconds the step took."""
    started, t, accelerator = time.perf_counter(), run.t, run.accelerator
    step_loss = torch.zeros((), device=accelerator.device)
    for micro in range(t.gradient_accumulation_steps):
        batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in next(data).items()}
        last = micro == t.gradient_accumulation_steps - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(run.stage):  # all-reduce once per step
            loss = run.stage(batch, run.generator)
            stop_if_diverged(run, loss)
            accelerator.backward(loss / t.gradient_accumulation_steps)
        step_loss += loss.detach().float() / t.gradient_accumulation_steps
    if t.max_grad_norm:
        accelerator.clip_grad_norm_(run.parameters, t.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    if run.ema is not None:
        run.ema.step(run.parameters)
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return accelerator.reduce(step_loss, "mean").item(), time.perf_counter() - started


def stop_if_diverged(run: Run, loss: torch.Tensor) -> None:
    """Stop every rank, saving nothing, when the loss is not finite on any of them."""
    if _any_rank(run.accelerator, not bool(torch.isfinite(loss.detach()).all())):
        raise TrainingDiverged(
            f"the loss became {loss.item()} at step {run.step + 1}; stopped without saving. Last good "
            f"checkpoint: {latest_checkpoint(run.out) or 'none'}. Lower train.learning_rate, use "
            "mixed_precision=bf16 or no, then continue with --resume"
        )


def stop_requested(run: Run, interrupted: bool) -> tuple[bool, bool]:
    """Whether any rank was interrupted, and whether `train.max_minutes` is spent on any rank, in one
    exchange per step, so that every rank stops at the same step."""
    out_of_time = run.t.max_minutes is not None and time.perf_counter() - run.started > 60 * run.t.max_minutes
    flags = torch.tensor([[float(interrupted), float(out_of_time)]], device=run.accelerator.device)
    anywhere = run.accelerator.gather(flags).amax(dim=0) > 0
    return bool(anywhere[0]), bool(anywhere[1])


def log(run: Run, loss: float, seconds: float) -> None:
    if run.step % run.config.output.log_every == 0 or run.step == run.t.max_steps:
        values = {
            "loss": loss,
            "lr": run.lr_scheduler.get_last_lr()[0],
            "samples_per_second": run.samples_per_step / seconds,
            "seconds_per_step": seconds,
        }
        run.accelerator.log(values, step=run.step)


def save(run: Run) -> Path:
    """The checkpoint of this step (every rank takes part); the newest `output.keep_checkpoints` stay."""
    return save_checkpoint(
        run.accelerator,
        run.out,
        run.step,
        *run.state(),
        run.config.to_dict(),
        run.config.output.keep_checkpoints,
        run.ema,
    )


def validate(run: Run, held_out: dict) -> None:
    """The grid of the current weights (the EMA's where the run keeps one) at OUT/validation/step-N.png."""
    path = run.out / "validation" / f"step-{run.step:06d}.png"
    with _averaged(run.ema, run.parameters):
        save_validation_grid(run.model, held_out, path, validation_recipe(run.config.sampling, run.config.output))


def finish(run: Run) -> Path:
    """The export (of the EMA weights where the run keeps them) at OUT/export; returns that folder."""
    export = run.out / "export"
    if run.ema is not None:
        run.ema.copy_to(run.parameters)
    if run.main:
        run.model.export(export, run.config)
        print(f"exported {run.config.stage} to {export}")
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
    return export


def _any_rank(accelerator: Accelerator, flag: bool) -> bool:
    """True when the flag is set on any rank (so that every rank decides the same)."""
    value = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.gather(value).max() > 0)


@contextlib.contextmanager
def _averaged(ema: EMAModel | None, parameters):
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
