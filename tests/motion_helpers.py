"""Motion-module helpers only tests use: a random AnimateDiff-layout adapter at the tiny preset's size,
wiring a motion UNet by hand, and per-clip reference tokens."""

from __future__ import annotations

import torch
from diffusers import MotionAdapter, UNetMotionModel

from magicpose.models.motion_module import zero_init_motion_output
from magicpose.models.multi_source_attention import (
    MultiSourceAttnProcessor,
    ReferenceBank,
    ReferenceWriteProcessor,
    attach_reference_bank,
)

# AnimateDiff v2's layout (one temporal layer per block here, a middle one, 32 positions) at the "tiny"
# preset's size (32, 32, 64 channels).
TINY_MOTION_ADAPTER = dict(
    block_out_channels=(32, 32, 64),
    motion_layers_per_block=1,
    motion_num_attention_heads=4,
    motion_norm_num_groups=32,
    motion_max_seq_length=32,
    use_motion_mid_block=True,
)


def motion_adapter_config(preset: str = "tiny") -> dict:
    if preset != "tiny":
        raise ValueError(f"only the tiny preset has a test adapter, got {preset!r}")
    return dict(TINY_MOTION_ADAPTER)


def build_motion_adapter(preset: str = "tiny", seed: int = 0, zero_init: bool = True) -> MotionAdapter:
    """A randomly initialised adapter; `zero_init` zeroes each temporal block's output projection as
    AnimateDiff does before training, so that the motion UNet starts as the image model."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        adapter = MotionAdapter(**motion_adapter_config(preset))
    if zero_init:
        zero_init_motion_output(adapter)
    return adapter.eval()


def install_multi_source_attention(motion_unet: UNetMotionModel, appearance_control) -> ReferenceBank:
    """Multi-source attention between a motion UNet and the (2D) Appearance Control Model, wired by hand
    (`MagicPoseModel(motion_unet, ...)` does this itself); the temporal blocks must keep plain attention."""
    bank = attach_reference_bank(motion_unet, appearance_control)
    for name, processor in motion_unet.attn_processors.items():
        if "motion_modules" in name and isinstance(processor, (MultiSourceAttnProcessor, ReferenceWriteProcessor)):
            raise RuntimeError(f"temporal attention {name} got a reference processor")
    return bank


def repeat_reference_per_frame(features: dict[str, torch.Tensor], num_frames: int) -> dict[str, torch.Tensor]:
    """Reference tokens of B clips (one reference each) repeated for their B x F frames, clip-major."""
    return {name: tokens.repeat_interleave(num_frames, dim=0) for name, tokens in features.items()}


def to_animatediff_layout(adapter: MotionAdapter) -> dict[str, torch.Tensor]:
    """The adapter's tensors under the names AnimateDiff's own modules give them (VanillaTemporalModule.
    temporal_transformer, TemporalTransformerBlock.attention_blocks / norms / ff_norm), with a position
    table per attention block (VersatileAttention.pos_encoder.pe) where diffusers has one per block."""
    renames = [
        (".norm1.", ".norms.0."),
        (".norm2.", ".norms.1."),
        (".norm3.", ".ff_norm."),
        (".attn1.", ".attention_blocks.0."),
        (".attn2.", ".attention_blocks.1."),
    ]
    original = {}
    for name, value in adapter.state_dict().items():
        prefix, _, rest = name.partition(".motion_modules.")
        index, rest = rest.split(".", 1)
        block = f"{prefix}.motion_modules.{index}.temporal_transformer"
        if rest.endswith("pos_embed.pe"):
            for attention in (0, 1):
                table = rest.replace("pos_embed.pe", f"attention_blocks.{attention}.pos_encoder.pe")
                original[f"{block}.{table}"] = value.clone()
            continue
        for old, new in renames:
            rest = rest.replace(old, new)
        original[f"{block}.{rest}"] = value.clone()
    return original
