"""Architectures of the MagicPose components at a few sizes, built with random weights.

`sd15` is the real size (SD-1.5 UNets, 8x VAE, 77x768 context); `tiny` is the official oracle's reduced
configuration (32 base channels), used by tests and CPU benchmarks. Nothing here loads weights.
"""

from __future__ import annotations

import copy

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.noise_schedule import official_ddim_scheduler
from magicpose.models.official_checkpoint import diffusers_configs, load_ldm_config
from magicpose.models.text_context import TextContext

_TINY_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=2,  # diffusers' legacy name for the number of heads
    cross_attention_dim=32,
    norm_num_groups=32,
)
_TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=32,
    scaling_factor=0.18215,
)

# `puppet`: 128x128 images of the puppet world, trained from scratch on 2 CPU cores. A 4x VAE gives
# 32x32 latents; the ControlNet hint encoder downsamples 4x too (log2(4) + 1 channel entries) so the
# pose image has the image's size. About 1.5M parameters per UNet: a stage-2 step at batch 4 takes
# about 0.6 s on 2 cores. The context is a fixed zero token (there is no text).
_PUPPET_UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=2,
    cross_attention_dim=32,
    norm_num_groups=32,
)
_PUPPET_VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(16, 32, 64),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    sample_size=128,
    scaling_factor=1.0,  # the VAE stage measures the latents' spread and stores 1/std here at export
)
_PUPPET_HINT_CHANNELS = (16, 32, 64)


def component_configs(preset: str) -> dict[str, dict]:
    """Diffusers configs of unet, appearance_control, pose_control and vae, plus the context shape."""
    if preset == "tiny":
        unet = dict(_TINY_UNET)
        vae = dict(_TINY_VAE)
        context = dict(length=77, dim=32)
    elif preset == "puppet":
        unet = dict(_PUPPET_UNET)
        vae = dict(_PUPPET_VAE)
        context = dict(length=1, dim=_PUPPET_UNET["cross_attention_dim"], zeros=True)
    elif preset == "sd15":
        configs = diffusers_configs(load_ldm_config())
        unet, vae = configs["unet"], configs["vae"]
        context = dict(length=77, dim=768)
    else:
        raise ValueError(f"unknown preset {preset!r}; expected 'tiny', 'puppet' or 'sd15'")
    pose = {key: value for key, value in unet.items() if key not in ("sample_size", "out_channels", "up_block_types")}
    pose["conditioning_channels"] = 3
    if preset == "puppet":
        pose["conditioning_embedding_out_channels"] = _PUPPET_HINT_CHANNELS
    return {
        "unet": unet,
        "appearance_control": copy.deepcopy(unet),
        "pose_control": pose,
        "vae": vae,
        "context": context,
    }


def build_components(
    preset: str = "tiny", seed: int = 0, device: str | torch.device | None = None, zero_init_controlnet: bool = True
) -> dict:
    """Randomly initialised unet, appearance_control, pose_control, vae, text_context and scheduler.

    Initialisation follows the official recipe's shape: the appearance branch starts as a copy of the
    base UNet and the ControlNet from the UNet's encoder, its zero convolutions zero unless
    `zero_init_controlnet=False` (tests want the pose path to have an effect from the start).
    """

    configs = component_configs(preset)
    with torch.random.fork_rng(), torch.device(device or "cpu"):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**configs["unet"])
        appearance = AppearanceControlModel.from_unet(unet)
        hint = configs["pose_control"].get("conditioning_embedding_out_channels")
        pose = ControlNetModel.from_unet(
            unet, conditioning_channels=3, **({"conditioning_embedding_out_channels": hint} if hint else {})
        )
        if not zero_init_controlnet:
            for parameter in pose.parameters():
                if parameter.ndim > 1 and not parameter.any():
                    torch.nn.init.normal_(parameter, std=parameter[0].numel() ** -0.5)
        vae = AutoencoderKL(**configs["vae"])
        shape = (1, configs["context"]["length"], configs["context"]["dim"])
        context = TextContext.from_tensor(
            torch.zeros(shape) if configs["context"].get("zeros") else torch.randn(shape)
        )
    return {
        "unet": unet.eval(),
        "appearance_control": appearance.eval(),
        "pose_control": pose.eval(),
        "vae": vae.eval(),
        "text_context": context,
        "scheduler": official_ddim_scheduler(),
    }
