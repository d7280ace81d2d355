"""The Appearance Control Model (paper §3.2): a trainable full copy of the base UNet.

It runs on the clean VAE latent of the reference image, at the same timestep as the noisy latent,
and its only product is the tokens its attn1 layers store in the `ReferenceBank`. Its epsilon
head (`conv_norm_out`, `conv_out`) is never used, so the official checkpoint has no weights for
it and this class drops it.
"""

from __future__ import annotations

import inspect

import torch

# ModelMixin must be importable from this module: diffusers' pipeline loader finds a component's
# load method by looking up the base classes in the module named in model_index.json.
from diffusers import ModelMixin, UNet2DConditionModel  # noqa: F401


class AppearanceControlModel(UNet2DConditionModel):
    """`UNet2DConditionModel` without its output head; `forward` returns the last decoder features."""

    # The parent's __init__ registers the config, so saving and loading as a folder work unchanged.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_norm_out = None
        self.conv_act = None
        self.conv_out = torch.nn.Identity()

    # ConfigMixin reads the accepted config keys from the __init__ signature: expose the parent's.
    __init__.__signature__ = inspect.signature(UNet2DConditionModel.__init__)

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, copy_weights: bool = True) -> AppearanceControlModel:
        """Same architecture as `unet`; with `copy_weights` initialised from it (stage 1's starting point)."""
        config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        model = cls(**config)
        if copy_weights:
            state = {k: v for k, v in unet.state_dict().items() if not k.startswith(("conv_norm_out.", "conv_out."))}
            model.load_state_dict(state, strict=True)
        # `.to(dtype)` makes diffusers warn about float32-kept modules; skip the cast when there is none
        return model.to(device=unet.device, dtype=unet.dtype) if unet.dtype != model.dtype else model.to(unet.device)
