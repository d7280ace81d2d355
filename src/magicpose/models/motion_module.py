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
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D, UNetMotionOutput
from diffusers.pipelines.free_noise_utils import SplitInferenceModule
from safetensors.torch import load_file

from magicpose.errors import InputError, MissingWeightsError
from magicpose.files import atomic_folder

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


class MagicPoseMotionUNet(UNetMotionModel):
    """`UNetMotionModel` that takes frames the way a 2D UNet does: (clips x F, C, h, w), clip-major.

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
    """The base UNet with the adapter's temporal layers inserted (weights copied; `unet` is untouched).

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


def extract_motion_adapter(motion_unet: UNetMotionModel) -> MotionAdapter:
    """The temporal layers of a motion UNet as a `MotionAdapter` (what stage 3 produces)."""
    config = motion_unet.config
    adapter = MotionAdapter(
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
    return adapter.to(device=motion_unet.device, dtype=motion_unet.dtype).eval()


def save_motion_adapter(adapter: MotionAdapter, folder: str | os.PathLike) -> Path:
    """`adapter.save_pretrained(folder)`, whole or not at all: written beside, then moved into place."""
    folder = Path(folder)
    with atomic_folder(folder, overwrite=True) as staging:
        adapter.save_pretrained(staging)
    return folder


def load_motion_adapter(
    path: str | os.PathLike, num_attention_heads: int = 8, norm_num_groups: int = 32
) -> MotionAdapter:
    """A `MotionAdapter` from a local diffusers folder or a single AnimateDiff file, offline.

    A folder is read by `MotionAdapter.from_pretrained`. A file (`mm_sd_v15_v2.ckpt`, or a
    `.safetensors`) in AnimateDiff's original key layout goes through diffusers'
    `convert_animatediff_checkpoint_to_diffusers`; its architecture is read from the tensors'
    shapes, except the head count and the norm groups, which the weights do not record (AnimateDiff
    v1-v3: 8 and 32, the defaults).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingWeightsError(f"{path} has no config.json; expected a MotionAdapter folder (save_pretrained)")
        return MotionAdapter.from_pretrained(path).eval()
    if not path.is_file():
        raise MissingWeightsError(f"motion module weights not found at {path}; pass an AnimateDiff .ckpt or a folder")
    if path.suffix not in _SINGLE_FILE_SUFFIXES:
        raise InputError(f"{path}: expected a folder or a file ending in one of {', '.join(_SINGLE_FILE_SUFFIXES)}")
    original = _read_state_dict(path)
    state_dict = convert_animatediff_state_dict(original)
    config = motion_adapter_config_from_state_dict(
        state_dict, num_attention_heads, norm_num_groups, max_seq_length=_position_table_length(original)
    )
    adapter = MotionAdapter(**config)
    missing, unexpected = adapter.load_state_dict(state_dict, strict=False)
    # The sinusoidal position tables are buffers rebuilt from the config (the conversion drops them).
    missing = [name for name in missing if not name.endswith("pos_embed.pe")]
    if missing or unexpected:
        raise InputError(
            f"{path} does not match an AnimateDiff motion module: {len(missing)} missing keys "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:2]})"
        )
    return adapter.eval()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(path)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return state_dict.get("state_dict", state_dict)


def convert_animatediff_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """AnimateDiff's original names (`...motion_modules.0.temporal_transformer.transformer_blocks.0.
    attention_blocks.0.to_q.weight`) to diffusers' `MotionAdapter` names; diffusers names pass through."""

    if not any(".temporal_transformer." in name for name in state_dict):
        return dict(state_dict)
    return convert_animatediff_checkpoint_to_diffusers(state_dict)


def _position_table_length(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Frames the temporal position table covers (AnimateDiff v1: 24, v2/v3: 32), if it was saved."""
    for name, value in state_dict.items():
        if name.endswith(("pos_encoder.pe", "pos_embed.pe")):
            return value.shape[1]
    return None


def motion_adapter_config_from_state_dict(
    state_dict: dict[str, torch.Tensor],
    num_attention_heads: int = 8,
    norm_num_groups: int = 32,
    max_seq_length: int | None = None,
) -> dict:
    """`MotionAdapter` config of diffusers-named motion weights, read from the names and shapes
    (`max_seq_length` from the position tables when not given, else AnimateDiff v2's 32)."""
    if not any("motion_modules" in name for name in state_dict):
        raise InputError("no motion-module weights found (no key contains 'motion_modules')")

    def count(prefix: str) -> int:
        indices = {name[len(prefix) :].split(".")[0] for name in state_dict if name.startswith(prefix)}
        return len(indices)

    blocks = count("down_blocks.")
    block_out_channels = tuple(
        state_dict[f"down_blocks.{i}.motion_modules.0.proj_in.weight"].shape[1] for i in range(blocks)
    )
    layers = {count(f"down_blocks.{i}.motion_modules.") for i in range(blocks)}
    if len(layers) != 1:
        raise InputError(f"motion modules with different layer counts per block ({sorted(layers)}) are not supported")
    max_seq_length = max_seq_length or _position_table_length(state_dict) or 32
    return dict(
        block_out_channels=block_out_channels,
        motion_layers_per_block=layers.pop(),
        motion_transformer_layers_per_block=count("down_blocks.0.motion_modules.0.transformer_blocks."),
        motion_num_attention_heads=num_attention_heads,
        motion_norm_num_groups=norm_num_groups,
        motion_max_seq_length=max_seq_length,
        use_motion_mid_block=any(name.startswith("mid_block.motion_modules.") for name in state_dict),
    )


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
