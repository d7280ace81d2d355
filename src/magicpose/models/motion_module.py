"""The motion module of MagicPose (paper, appendix C): AnimateDiff v2 temporal layers in the base UNet.

The frozen base UNet becomes a diffusers `UNetMotionModel` (`from_unet2d`) holding a `MotionAdapter`,
so real AnimateDiff v2 weights load (a diffusers folder, or the original `mm_sd_v15_v2.ckpt`). The
Appearance Control Model stays a 2D UNet: its stored attn1 tokens (one reference, or one per frame)
are broadcast to every frame of a clip by the multi-source attention, whose processors sit on the
spatial attn1 layers only (`is_spatial_self_attention` skips the temporal blocks).

Frames travel as the 2D UNet's batch, (clips x F, C, h, w), clip-major: `MagicPoseMotionUNet` folds
them into diffusers' (clips, C, F, h, w) layout, so `MagicPoseModel`, the Pose ControlNet residuals
(one per frame) and the reference bank see the same shapes as with a 2D UNet.

Stage 3 trains the temporal layers only; the rest of the network is frozen.

The temporal norm is a recorded property of an adapter (`temporal_norm` in its config): AnimateDiff's
temporal transformer normalises each frame with its own statistics ("per_frame"), diffusers'
`AnimateDiffTransformer3D` pools them over the clip ("pooled"). Weights compute what they were trained
with: AnimateDiff's files per frame, the project's own stage-3 adapters (trained pooled) pooled.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch

# ModelMixin must be importable from this module: diffusers' pipeline loader finds a component's loading
# methods through the base classes its library module exposes (as for appearance_control).
from diffusers import ModelMixin, MotionAdapter, UNet2DConditionModel, UNetMotionModel  # noqa: F401
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D, UNetMotionOutput
from diffusers.pipelines.free_noise_utils import SplitInferenceModule

from magicpose.errors import InputError, MissingWeightsError
from magicpose.files import atomic_folder
from magicpose.models.animatediff_file import check_fits, motion_adapter_config_from_state_dict, read_motion_file

# Original AnimateDiff files are torch pickles (or safetensors) of the motion modules alone.
_SINGLE_FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")


def motion_adapter_config_for_unet(unet, num_attention_heads: int = 8) -> dict:
    """The AnimateDiff layout fitted to any UNet's blocks (at SD-1.5 size: exactly AnimateDiff v2)."""
    channels = tuple(unet.config.block_out_channels)
    heads = next(h for h in range(num_attention_heads, 0, -1) if all(c % h == 0 for c in channels))
    return dict(
        block_out_channels=channels,
        motion_layers_per_block=unet.config.layers_per_block,
        motion_num_attention_heads=heads,
        motion_norm_num_groups=unet.config.norm_num_groups,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )


PER_FRAME, POOLED = "per_frame", "pooled"
TEMPORAL_NORMS = (PER_FRAME, POOLED)


class FrameGroupNorm(torch.nn.GroupNorm):
    """GroupNorm with the statistics of each frame of a (B, C, F, h, w) clip, as AnimateDiff's temporal
    transformer computes them (it folds the frames into the batch before its norm)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.ndim != 5:
            return super().forward(hidden_states)
        frames = hidden_states.transpose(1, 2)
        return super().forward(frames.flatten(0, 1)).unflatten(0, frames.shape[:2]).transpose(1, 2)


def set_temporal_norm(module, norm: str):
    """Make every temporal transformer of `module` (an adapter or a motion UNet) normalise `norm`
    ("per_frame" or "pooled") and record it in the module's config; parameters are kept as they are."""
    if norm not in TEMPORAL_NORMS:
        raise InputError(f"unknown temporal_norm {norm!r} in the motion adapter's config; use one of {TEMPORAL_NORMS}")
    norm_class = FrameGroupNorm if norm == PER_FRAME else torch.nn.GroupNorm
    for block in module.modules():
        if isinstance(block, AnimateDiffTransformer3D):
            block.norm.__class__ = norm_class  # the same parameters and state; only the statistics' extent changes
    module.register_to_config(temporal_norm=norm)
    return module


def temporal_norm_of(module) -> str:
    """The temporal norm `module` records; pooled where it records none (diffusers' own computation)."""
    return getattr(module.config, "temporal_norm", POOLED)


class _RecordedTemporalNorm:
    """`from_config` (and so `from_pretrained`) that applies the config's `temporal_norm` (default pooled)."""

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs=False, **kwargs):
        config = dict(config or {})
        norm = kwargs.pop("temporal_norm", config.pop("temporal_norm", POOLED))
        built = super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)
        set_temporal_norm(built[0] if return_unused_kwargs else built, norm)
        return built


class MagicPoseMotionAdapter(_RecordedTemporalNorm, MotionAdapter):
    """diffusers' `MotionAdapter` whose config records its temporal norm (`set_temporal_norm`)."""


def zero_init_motion_output(module: torch.nn.Module) -> torch.nn.Module:
    """Zero `proj_out` of every temporal transformer (AnimateDiff's `zero_initialize=True`).

    Each block computes x + proj_out(...), so with a zero projection it is the identity and the
    frames do not interact: the motion UNet equals the 2D UNet frame by frame.
    """
    with torch.no_grad():
        for block in module.modules():
            if isinstance(block, AnimateDiffTransformer3D):
                block.proj_out.weight.zero_()
                block.proj_out.bias.zero_()
    return module


class MagicPoseMotionUNet(_RecordedTemporalNorm, UNetMotionModel):
    """`UNetMotionModel` that takes frames the way a 2D UNet does: (clips x F, C, h, w), clip-major,
    with its adapter's temporal norm (`temporal_norm` in its config).

    This lets the motion UNet replace the base `UNet2DConditionModel` in `MagicPoseModel` unchanged:
    timesteps (one per frame, equal within a clip), the context and the ControlNet residuals keep
    their per-frame batch. A 5D sample (clips, C, F, h, w) goes straight to diffusers.
    """

    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor,
        *args,
        num_frames: int | None = None,
        return_dict: bool = True,
        **kwargs,
    ):
        """As `UNetMotionModel.forward`; with a 4D sample, `num_frames` frames make a clip (default:
        the whole batch is one clip) and the result is (clips x F, C, h, w)."""
        if sample.ndim == 5:
            return super().forward(sample, timestep, encoder_hidden_states, *args, return_dict=return_dict, **kwargs)
        frames = sample.shape[0]
        num_frames = num_frames or frames
        if frames % num_frames:
            raise ValueError(f"{frames} frames do not split into clips of {num_frames}")
        clips = frames // num_frames
        if num_frames > self.config.motion_max_seq_length:
            raise ValueError(
                f"clips of {num_frames} frames exceed the motion module's {self.config.motion_max_seq_length} "
                "positions; denoise long videos in windows (magicpose.pipelines.windows)"
            )
        clip_timesteps = _one_timestep_per_clip(timestep, clips, num_frames, sample.device)
        if encoder_hidden_states.shape[0] == 1 and frames > 1:
            encoder_hidden_states = encoder_hidden_states.expand(frames, *encoder_hidden_states.shape[1:])
        video = sample.unflatten(0, (clips, num_frames)).transpose(1, 2)
        out = super().forward(video, clip_timesteps, encoder_hidden_states, *args, return_dict=False, **kwargs)[0]
        out = out.transpose(1, 2).flatten(0, 1)
        return UNetMotionOutput(sample=out) if return_dict else (out,)


# Spatial layers of a motion UNet and the keyword inputs that carry one row per frame (diffusers' motion
# blocks call them by keyword, which is what SplitInferenceModule splits).
_PER_FRAME_LAYERS = {
    "resnets": ["input_tensor", "temb"],
    "attentions": ["hidden_states", "encoder_hidden_states"],
    "downsamplers": ["hidden_states"],
    "upsamplers": ["hidden_states"],
}


@contextlib.contextmanager
def frames_per_call(motion_unet: UNetMotionModel, frames: int | None) -> Iterator[None]:
    """Run the motion UNet's spatial layers on at most `frames` frames at a time, for the duration.

    Resnets, spatial transformers and resamplers treat each frame on its own, so splitting their
    batch changes no value; the temporal layers still see whole clips. This bounds activation memory
    when a window of 16 frames does not fit (diffusers' FreeNoise split inference, temporal part).
    The wrappers are removed on exit, so the state dict keeps its names.
    """
    if not frames or not is_motion_unet(motion_unet):
        yield
        return
    wrapped = []
    for block in [*motion_unet.down_blocks, motion_unet.mid_block, *motion_unet.up_blocks]:
        for attribute, inputs in _PER_FRAME_LAYERS.items():
            layers = getattr(block, attribute, None)
            for index in range(len(layers or ())):
                wrapped.append((layers, index, layers[index]))
                layers[index] = SplitInferenceModule(layers[index], frames, 0, inputs)
    try:
        yield
    finally:
        for layers, index, layer in wrapped:
            layers[index] = layer


def _one_timestep_per_clip(timestep, clips: int, num_frames: int, device) -> torch.Tensor:
    """The motion UNet embeds one timestep per clip; per-frame timesteps must agree within a clip."""
    timestep = torch.as_tensor(timestep, device=device)
    if timestep.numel() == 1:
        return timestep.reshape(1).expand(clips)
    if timestep.numel() != clips * num_frames:
        raise ValueError(f"{timestep.numel()} timesteps for {clips} clips of {num_frames} frames")
    per_clip = timestep.reshape(clips, num_frames)
    if not bool((per_clip == per_clip[:, :1]).all()):
        raise ValueError("the frames of one clip must share a timestep (the motion module denoises clips)")
    return per_clip[:, 0]


def build_motion_unet(unet: UNet2DConditionModel, adapter: MotionAdapter) -> MagicPoseMotionUNet:
    """The base UNet with the adapter's temporal layers inserted (weights copied; `unet` is untouched),
    normalising as the adapter records (`temporal_norm_of`).

    The result is frozen and in eval mode like the base UNet; `set_motion_training` opens the temporal
    layers for stage 3.
    """
    # from_unet2d casts with `.to(dtype)`, which diffusers warns about even when no module must stay float32
    cast_logger = logging.getLogger("diffusers.models.modeling_utils")
    level = cast_logger.level
    cast_logger.setLevel(logging.ERROR)
    try:
        motion_unet = MagicPoseMotionUNet.from_unet2d(unet, adapter)  # casts to the UNet's dtype
    finally:
        cast_logger.setLevel(level)
    set_temporal_norm(motion_unet, temporal_norm_of(adapter))
    return motion_unet.to(unet.device).requires_grad_(False).eval()


def is_motion_unet(unet) -> bool:
    """Whether `unet` has temporal layers (frames of a clip interact, so it must see whole clips)."""
    return isinstance(unet, UNetMotionModel)


# Stage 3 (paper, appendix C): "fine-tuned on 16-frame clips with everything else frozen".
def set_motion_training(model: torch.nn.Module) -> list[str]:
    """Freeze everything in `model` but the temporal layers of its motion UNet; returns the trained names.

    `model` is a `MagicPoseModel` around a motion UNet, or the motion UNet itself.
    """
    unet = getattr(model, "unet", model)
    if not is_motion_unet(unet):
        raise ValueError("stage 3 ('motion') needs a motion UNet: build one with build_motion_unet(unet, adapter)")
    model.requires_grad_(False)
    for name, module in unet.named_modules():
        if name.endswith("motion_modules"):
            module.requires_grad_(True)
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def extract_motion_adapter(motion_unet: UNetMotionModel) -> MagicPoseMotionAdapter:
    """The temporal layers of a motion UNet as an adapter with its temporal norm (what stage 3 produces)."""
    config = motion_unet.config
    adapter = MagicPoseMotionAdapter(
        block_out_channels=tuple(config.block_out_channels),
        motion_layers_per_block=config.layers_per_block,
        motion_transformer_layers_per_block=config.temporal_transformer_layers_per_block,
        motion_transformer_layers_per_mid_block=config.temporal_transformer_layers_per_mid_block,
        motion_num_attention_heads=config.motion_num_attention_heads,
        motion_norm_num_groups=config.norm_num_groups,
        motion_max_seq_length=config.motion_max_seq_length,
        use_motion_mid_block=config.use_motion_mid_block,
    )
    motion_state = {name: value for name, value in motion_unet.state_dict().items() if "motion_modules" in name}
    adapter.load_state_dict(motion_state, strict=True)
    set_temporal_norm(adapter, temporal_norm_of(motion_unet))
    return adapter.to(device=motion_unet.device, dtype=motion_unet.dtype).eval()


def save_motion_adapter(adapter: MotionAdapter, folder: str | os.PathLike) -> Path:
    """`adapter.save_pretrained(folder)`, whole or not at all: written beside, then moved into place."""
    folder = Path(folder)
    with atomic_folder(folder, overwrite=True) as staging:
        adapter.save_pretrained(staging)
    return folder


def load_motion_adapter(
    path: str | os.PathLike, num_attention_heads: int = 8, norm_num_groups: int = 32
) -> MagicPoseMotionAdapter:
    """A motion adapter from a local diffusers folder or a single AnimateDiff file, offline.

    A folder is read by `from_pretrained`, with the temporal norm its config records (pooled where it
    records none, as diffusers computes). A file (`mm_sd_v15_v2.ckpt`, or a `.safetensors`) in AnimateDiff's
    own key layout runs per frame, as AnimateDiff does; its architecture is read from the tensors' shapes,
    except the head count and the norm groups, which the weights do not record (AnimateDiff v1-v3: 8 and
    32, the defaults). A file that does not fit is refused in one line (`animatediff_file.check_fits`).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingWeightsError(f"{path} has no config.json; expected a MotionAdapter folder (save_pretrained)")
        return MagicPoseMotionAdapter.from_pretrained(path).eval()
    if not path.is_file():
        raise MissingWeightsError(f"motion module weights not found at {path}; pass an AnimateDiff .ckpt or a folder")
    if path.suffix not in _SINGLE_FILE_SUFFIXES:
        raise InputError(f"{path}: expected a folder or a file ending in one of {', '.join(_SINGLE_FILE_SUFFIXES)}")
    state_dict, animatediff_names = read_motion_file(path)
    config = motion_adapter_config_from_state_dict(state_dict, num_attention_heads, norm_num_groups)
    try:
        adapter = MagicPoseMotionAdapter(**config)
    except (ValueError, RuntimeError) as error:  # e.g. channels the norm groups do not divide
        raise InputError(f"{path} does not describe an AnimateDiff motion module ({error})") from error
    check_fits(adapter.state_dict(), state_dict, path, animatediff_names)
    adapter.load_state_dict(state_dict, strict=False)  # every key checked above; absent position tables stay
    set_temporal_norm(adapter, PER_FRAME if animatediff_names else POOLED)
    return adapter.eval()


# A motion UNet's block types and the 2-D ones `from_unet2d` replaced.
_BASE_BLOCK_TYPES = {
    "CrossAttnDownBlockMotion": "CrossAttnDownBlock2D",
    "DownBlockMotion": "DownBlock2D",
    "CrossAttnUpBlockMotion": "CrossAttnUpBlock2D",
    "UpBlockMotion": "UpBlock2D",
}


def base_unet_of(motion_unet: UNetMotionModel) -> UNet2DConditionModel:
    """The 2-D UNet inside a motion UNet, sharing its weights (nothing is copied): what a pipeline folder
    stores in `unet/` beside `motion_adapter/`, so every loader rebuilds the same motion UNet."""
    config = dict(motion_unet.config)
    config["down_block_types"] = [_BASE_BLOCK_TYPES[block] for block in config["down_block_types"]]
    config["up_block_types"] = [_BASE_BLOCK_TYPES[block] for block in config["up_block_types"]]
    # from_unet2d put the 2-D UNet's attention_head_dim (its head count, a diffusers naming quirk) here
    config["attention_head_dim"], config["num_attention_heads"] = config["num_attention_heads"], None
    expected, optional = UNet2DConditionModel._get_signature_keys(UNet2DConditionModel)
    config = {key: value for key, value in config.items() if key in expected | optional}
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    spatial = {name: value for name, value in motion_unet.state_dict().items() if "motion_modules" not in name}
    unet.load_state_dict(spatial, strict=True, assign=True)
    return unet.eval()


def tie_motion_adapter(adapter: MotionAdapter, motion_unet: UNetMotionModel) -> MotionAdapter:
    """Make `adapter` hold the motion UNet's temporal layers themselves (one copy in memory, and the
    adapter always has the weights the UNet samples and trains with)."""
    pairs = [*zip(adapter.down_blocks, motion_unet.down_blocks), *zip(adapter.up_blocks, motion_unet.up_blocks)]
    if adapter.mid_block is not None:
        pairs.append((adapter.mid_block, motion_unet.mid_block))
    for adapter_block, unet_block in pairs:
        adapter_block.motion_modules = unet_block.motion_modules
    return adapter
