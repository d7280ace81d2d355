"""Training configuration: one YAML file per stage, validated, with `key=value` overrides.

    stage: pose
    model: {preset: puppet, vae: runs/puppet/vae/export/vae, ...}
    data: {source: puppet, size: 128, ...}
    train: {max_steps: 20000, batch_size: 4, learning_rate: 1.0e-5, ...}
    output: {dir: runs/puppet/stage2_pose, checkpoint_every: 500, ...}
    sampling: {scheduler: dpm++, num_inference_steps: 10, ...}   # what the exported pipeline samples with

Overrides use dotted keys (`train.max_steps=10`); values are parsed as YAML (`1e-4`, `true`, `null`).
Unknown keys and wrong types are errors that name the key, so a typo never trains with a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from magicpose.errors import InputError
from magicpose.pipelines.recipe import RECIPE_KEYS, check_recipe

STAGES = ("vae", "base_unet", "controlnet", "appearance", "pose", "motion")


@dataclass
class ModelConfig:
    """Where each component comes from. A path is a diffusers component folder; null builds it from
    `preset` (random weights, or for `appearance_control` a copy of the base UNet, the paper's init,
    and for `pose_control` a ControlNet made from the base UNet's encoder)."""

    preset: str = "puppet"  # architecture of components built from scratch: tiny | puppet | sd15
    seed: int = 0
    sd15: str | None = None  # an SD-1.5 diffusers folder: supplies unet, vae and the empty-prompt context
    vae: str | None = None
    unet: str | None = None
    appearance_control: str | None = None
    pose_control: str | None = None
    text_context: str | None = None
    motion_adapter: str | None = None  # stage 3 start: an AnimateDiff v2 .ckpt or a MotionAdapter folder


@dataclass
class DataConfig:
    source: str = "puppet"  # "puppet" (rendered on the fly) or a dataset folder (`magicpose data prepare`)
    split: str | None = "train"
    size: int = 128
    crop: str = "center"
    crop_scale: tuple[float, float] = (0.8, 1.0)
    face_mask_probability: float = 0.2  # paper Table 3's augmentation (official values, never applied there)
    hand_mask_probability: float = 0.5
    puppet_videos: int | None = None  # puppet world: number of training identities (null: the whole split)
    puppet_frames: int = 120
    puppet_size: int | None = (
        None  # puppet world: render size (null: `size`); larger + random crops = native-scale patches
    )
    num_workers: int = 0
    validation_source: str | None = None  # default: the puppet "val" split, or `source`
    validation_split: str | None = "val"


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_minutes: float | None = None  # wall-clock budget: stop, checkpoint and export once it is spent
    batch_size: int = 4  # per process
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant_with_warmup"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0  # official: no weight decay
    max_grad_norm: float | None = 1.0
    use_8bit_adam: bool = False
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    image_guidance_dropout: float = 0.0  # probability of dropping reference and pose (official: 0)
    ema_decay: float | None = (
        None  # EMA of the trained weights (e.g. 0.9999), checkpointed; validation and export use it
    )
    shared_noise: float = (
        0.0  # motion stage: fraction of the noise variance a clip's frames share (0: AnimateDiff's independent noise)
    )
    kl_weight: float = 1e-6  # VAE stage only
    seed: int = 42
    cpu: bool = False  # force CPU even where CUDA exists


@dataclass
class OutputConfig:
    dir: str = "runs/train"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    validate_every: int = 500  # 0: never
    validation_samples: int = 4
    validation_inference_steps: int | None = (
        None  # null: sampling.num_inference_steps (the grids sample as the export)
    )
    validation_guidance_scale: float | None = None  # null: sampling.guidance_scale
    log_every: int = 10


@dataclass
class SamplingConfig:
    """The sampling recipe a whole-pipeline export (stages appearance and pose) carries: the scheduler
    it saves in `scheduler/` and the rest in `model_index.json`, the defaults of `MagicPosePipeline.__call__`.
    The defaults are the official recipe (DDIM, 50 steps, guidance 7, from pure noise, guidance at every
    step). The validation grids of stages 1-3 sample with it too (`output.validation_inference_steps` and
    `output.validation_guidance_scale`, where set, override its steps and guidance there)."""

    scheduler: str = "ddim"  # one of recipe.SCHEDULER_NAMES
    num_inference_steps: int = 50
    guidance_scale: float = 7.0  # 1: no guidance
    start_from_reference: bool = False  # sample from the reference's latents noised to the first timestep
    guidance_interval: tuple[float, float] | None = None  # (low, high) training timesteps: guide only there
    window_frames: int = 16  # with a motion module: sliding-window length and overlap (AnimateDiff: 16, 4)
    window_overlap: int = 4


@dataclass
class TrainingConfig:
    stage: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainingConfig:
    """Read a YAML config, apply `section.key=value` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}; see configs/ for examples")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise InputError(f"{path} must hold a mapping of sections (stage, model, data, train, output, sampling)")
    for override in overrides:
        apply_override(raw, override)
    return config_from_dict(raw, where=str(path))


def apply_override(raw: dict, override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise InputError(f"override {override!r} must look like section.key=value (e.g. train.max_steps=100)")
    *sections, name = key.strip().split(".")
    target = raw
    for section in sections:
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise InputError(f"override {override!r}: {section} is not a section")
    target[name] = yaml.safe_load(value)


def config_from_dict(raw: dict, where: str = "config") -> TrainingConfig:
    unknown = set(raw) - {f.name for f in dataclasses.fields(TrainingConfig)}
    if unknown:
        raise InputError(
            f"{where}: unknown section(s) {sorted(unknown)}; expected stage, model, data, train, output, sampling"
        )
    sections = {}
    for section in dataclasses.fields(TrainingConfig):
        if section.name == "stage":
            continue
        values = raw.get(section.name) or {}
        if not isinstance(values, dict):
            raise InputError(f"{where}: section {section.name} must be a mapping")
        sections[section.name] = _build(
            section.type if isinstance(section.type, type) else _SECTIONS[section.name],
            values,
            f"{where}: {section.name}",
        )
    config = TrainingConfig(stage=raw.get("stage"), **sections)
    validate(config, where)
    return config


_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "output": OutputConfig,
    "sampling": SamplingConfig,
}


def _build(cls, values: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _coerce(value, hints[name], f"{where}.{name}") for name, value in values.items()})


def _coerce(value, hint, where: str):
    """Check `value` against a field's type hint (int, float, str, bool, tuple, optional)."""
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise InputError(f"{where} may not be null")
    if type(None) in args:
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(hint)):
            raise InputError(f"{where} must be a list of {len(typing.get_args(hint))} numbers, got {value!r}")
        return tuple(_coerce(v, t, where) for v, t in zip(value, typing.get_args(hint)))
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # PyYAML reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{where} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def validate(config: TrainingConfig, where: str = "config") -> None:
    if config.stage not in STAGES:
        raise InputError(f"{where}: stage must be one of {STAGES}, got {config.stage!r}")
    t, d, o, s = config.train, config.data, config.output, config.sampling
    checks = [
        (t.max_steps >= 1, "train.max_steps must be at least 1"),
        (t.batch_size >= 1, "train.batch_size must be at least 1"),
        (t.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps must be at least 1"),
        (t.learning_rate > 0, "train.learning_rate must be positive"),
        (t.mixed_precision in ("no", "fp16", "bf16"), "train.mixed_precision must be no, fp16 or bf16"),
        (0.0 <= t.image_guidance_dropout <= 1.0, "train.image_guidance_dropout must lie in [0, 1]"),
        (t.ema_decay is None or 0.0 < t.ema_decay < 1.0, "train.ema_decay must lie in (0, 1), or be null for no EMA"),
        (0.0 <= t.shared_noise <= 1.0, "train.shared_noise must lie in [0, 1]"),
        (0.0 <= d.face_mask_probability <= 1.0, "data.face_mask_probability must lie in [0, 1]"),
        (0.0 <= d.hand_mask_probability <= 1.0, "data.hand_mask_probability must lie in [0, 1]"),
        (d.size >= 16 and d.size % 8 == 0, "data.size must be a multiple of 8, at least 16"),
        (d.crop in ("center", "random"), "data.crop must be center or random"),
        (o.checkpoint_every >= 1, "output.checkpoint_every must be at least 1"),
        (o.keep_checkpoints >= 1, "output.keep_checkpoints must be at least 1"),
        (o.validate_every >= 0, "output.validate_every must be 0 (off) or positive"),
        (config.model.preset in ("tiny", "puppet", "sd15"), "model.preset must be tiny, puppet or sd15"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(f"{where}: {message}")
    # The pipeline's own check, so that a config that validates also samples (exports, validation grids).
    try:
        check_recipe(
            scheduler=s.scheduler,
            **{key: getattr(s, key) for key in RECIPE_KEYS},
            names={key: f"sampling.{key}" for key in (*RECIPE_KEYS, "scheduler")},
        )
        check_recipe(
            num_inference_steps=o.validation_inference_steps,
            guidance_scale=o.validation_guidance_scale,
            names={
                "num_inference_steps": "output.validation_inference_steps (null: sampling.num_inference_steps)",
                "guidance_scale": "output.validation_guidance_scale (null: sampling.guidance_scale)",
            },
        )
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
