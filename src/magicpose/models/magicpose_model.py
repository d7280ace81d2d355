"""One module that wires the MagicPose networks: frozen base UNet, Appearance Control Model, Pose ControlNet.

    eps = UNet_base(x_t, t, c; bank = AppearanceControl(z_ref, t, c), residuals = PoseControlNet(x_t, t, c, pose))

as the official implementation runs it (BRIEF §1): the appearance branch sees the *clean* reference
latent at the *same* timestep t; the pose residuals are added to the base UNet's skip connections and
middle block at scale 1; the text context c (the empty prompt's CLIP embedding) goes to all three.
Without reference and pose this is the plain base UNet, the unconditional branch of image guidance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.motion_module import frames_per_call
from magicpose.models.multi_source_attention import (
    MultiSourceAttnProcessor,
    ReferenceBank,
    attach_reference_bank,
    detach_reference_bank,
)

ReferenceFeatures = dict[str, torch.Tensor]
Stage = Literal["appearance", "pose"]


class MagicPoseModel(torch.nn.Module):
    """Epsilon prediction of N frames from noisy latents, a reference latent, pose images and a context.

    The module holds the three networks (a single module to hand to accelerate/DDP when training) and
    installs the multi-source attention processors on them; the pipeline builds it around its components.
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        appearance_control: AppearanceControlModel | None,
        pose_control: ControlNetModel | None = None,
    ):
        super().__init__()
        self.unet = unet
        self.appearance_control = appearance_control
        self.pose_control = pose_control
        self._held = False  # inside `attached`
        # Without an appearance branch (the base UNet, or it with the pose ControlNet) nothing writes to the bank.
        self.bank = (
            _bank_read_by(unet) if appearance_control is None else attach_reference_bank(unet, appearance_control)
        )
        # Nothing here freezes: the networks keep the requires_grad flags they came with (a pipeline wraps
        # the very modules a training stage trains). Training sets them: `set_training_stage`.

    @property
    def networks(self) -> tuple:
        return self.unet, self.appearance_control, self.pose_control

    def connect(self) -> ReferenceBank:
        """Wrap the reference processors around whatever attention processors the UNets hold now (a user
        may have set others since: slicing, xformers, fused projections); a no-op when nothing changed."""
        if self.appearance_control is not None and not self._held:
            self.bank = attach_reference_bank(self.unet, self.appearance_control)
        return self.bank

    @contextlib.contextmanager
    def attached(self) -> Iterator[ReferenceBank]:
        """The reference processors on the UNets for a block (a sampling call), the user's own processors
        given back after it: between calls diffusers' processor methods see only processors they know."""
        bank = self.connect()
        self._held = True  # connected for the whole block: the calls inside skip the processor walk
        try:
            yield bank
        finally:
            self._held = False
            if self.appearance_control is not None:
                detach_reference_bank(self.unet, self.appearance_control)

    def encode_reference(
        self, reference_latents: torch.Tensor, timesteps: torch.Tensor | int, encoder_hidden_states: torch.Tensor
    ) -> ReferenceFeatures:
        """Run the appearance branch once; returns the attn1 input tokens of every layer, by layer name."""
        self.connect()
        batch = reference_latents.shape[0]
        if encoder_hidden_states.shape[0] > batch == 1:
            encoder_hidden_states = encoder_hidden_states[:1]  # one reference: every frame has the same context
        self.bank.start_writing()
        try:
            self.appearance_control(
                reference_latents,
                _timesteps_for(timesteps, batch, reference_latents.device),
                encoder_hidden_states=_expand_batch(encoder_hidden_states, batch),
                return_dict=False,
            )
        finally:
            self.bank.stop_writing()
        return self.bank.features

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        reference_latents: torch.Tensor | None = None,
        pose_images: torch.Tensor | None = None,
        reference_features: ReferenceFeatures | None = None,
        condition_mask: torch.Tensor | None = None,
        frame_chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Predict epsilon for a batch of N frames.

        Args:
            noisy_latents: (N, 4, h, w) noisy latents x_t.
            timesteps: scalar or (N,) diffusion timesteps.
            encoder_hidden_states: (1 or N, L, D) text context (the empty prompt's embedding).
            reference_latents: (1 or N, 4, h, w) clean reference latents (VAE scale applied). One
                reference for N frames at one timestep runs the appearance branch once.
            pose_images: (N, 3, H, W) OpenPose renderings in [0, 1].
            reference_features: output of `encode_reference`, to reuse one appearance pass for several
                batches of frames at the same timestep (the pipeline's frame chunks).
            condition_mask: (N,) bool; False rows get neither reference nor pose (image-guidance dropout
                in training): exactly the plain base UNet for those rows.
            frame_chunk_size: at most this many frames per call of the pose ControlNet and of a motion
                UNet's spatial layers (a motion UNet's clip stays whole); the result does not depend on it.
        Returns:
            (N, 4, h, w) epsilon.
        """
        self.connect()
        batch = noisy_latents.shape[0]
        context = _expand_batch(encoder_hidden_states, batch)
        timesteps = _timesteps_for(timesteps, batch, noisy_latents.device)

        if reference_features is None and reference_latents is not None:
            if reference_latents.shape[0] not in (1, batch):
                raise ValueError(
                    f"{reference_latents.shape[0]} reference latents for {batch} frames: pass one reference "
                    "for all frames or one per frame"
                )
            if reference_latents.shape[0] == 1 and batch > 1 and not bool((timesteps == timesteps[0]).all()):
                reference_latents = reference_latents.expand(batch, -1, -1, -1)
            one_step = timesteps[:1] if reference_latents.shape[0] == 1 else timesteps
            reference_features = self.encode_reference(reference_latents, one_step, encoder_hidden_states)
        if reference_features is None:
            self.bank.disable()
        else:
            self.bank.features = reference_features
            self.bank.sample_mask = condition_mask

        down_residuals = mid_residual = None
        if pose_images is not None:
            if self.pose_control is None:
                raise ValueError("pose images were given but this model has no pose ControlNet")
            down_residuals, mid_residual = self._pose_residuals(
                noisy_latents, timesteps, context, pose_images, frame_chunk_size
            )
            if condition_mask is not None:
                keep = condition_mask.to(noisy_latents.dtype).view(-1, 1, 1, 1)
                down_residuals = [residual * keep for residual in down_residuals]
                mid_residual = mid_residual * keep

        with frames_per_call(self.unet, frame_chunk_size):
            return self.unet(
                noisy_latents,
                timesteps,
                encoder_hidden_states=context,
                down_block_additional_residuals=down_residuals,
                mid_block_additional_residual=mid_residual,
                return_dict=False,
            )[0]

    def _pose_residuals(self, latents, timesteps, context, pose_images, frame_chunk_size: int | None):
        """The pose ControlNet's residuals, `frame_chunk_size` frames per call (it treats frames alone)."""
        size = frame_chunk_size or latents.shape[0]
        chunks = [
            self.pose_control(x, t, encoder_hidden_states=c, controlnet_cond=p, return_dict=False)
            for x, t, c, p in zip(*(tensor.split(size) for tensor in (latents, timesteps, context, pose_images)))
        ]
        if len(chunks) == 1:
            return chunks[0]
        down = [torch.cat(level) for level in zip(*(chunk[0] for chunk in chunks))]
        return down, torch.cat([chunk[1] for chunk in chunks])

    # Training stages (paper §3.3). The base UNet is frozen in every stage.
    def set_training_stage(self, stage: Stage) -> list[str]:
        """Set requires_grad for stage 1 ('appearance') or stage 2 ('pose'); returns the trainable names.

        Stage 1 trains the appearance branch alone; stage 2 trains it jointly with the whole Pose
        ControlNet. Layers of the appearance branch whose output nothing reads (everything after the
        last stored attn1 input) stay frozen: they get no gradient, and DDP needs every trained
        parameter to get one.
        """
        if stage not in ("appearance", "pose"):
            raise ValueError(f"unknown training stage {stage!r}; expected 'appearance' or 'pose'")
        self.requires_grad_(False)
        self.appearance_control.requires_grad_(True)
        for module in _unread_appearance_modules(self.appearance_control):
            module.requires_grad_(False)
        if stage == "pose":
            if self.pose_control is None:
                raise ValueError("stage 2 ('pose') needs a pose ControlNet")
            self.pose_control.requires_grad_(True)
        return [name for name, parameter in self.named_parameters() if parameter.requires_grad]


def _unread_appearance_modules(appearance: AppearanceControlModel) -> Iterator[torch.nn.Module]:
    """Modules run after the appearance model's last bank write: the last transformer block past norm1,
    and its transformer's output projection."""
    last_up_block = appearance.up_blocks[-1]
    if not getattr(last_up_block, "attentions", None):
        return  # a decoder ending without attention: every layer is read (nothing to freeze)
    last = last_up_block.attentions[-1].transformer_blocks[-1]
    for name, child in last.named_children():
        if name != "norm1":
            yield child
    yield last_up_block.attentions[-1].proj_out


def _bank_read_by(unet) -> ReferenceBank:
    """The bank an earlier wiring left the base UNet's processors reading (so that `disable` reaches
    them), else a new one."""
    banks = [p.bank for p in unet.attn_processors.values() if isinstance(p, MultiSourceAttnProcessor)]
    return banks[0] if banks else ReferenceBank()


def _expand_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(f"expected a batch of 1 or {batch}, got {tensor.shape[0]}")


def _timesteps_for(timesteps: torch.Tensor | int | float, batch: int, device: torch.device) -> torch.Tensor:
    timesteps = torch.as_tensor(timesteps, device=device)
    if timesteps.ndim == 0:
        timesteps = timesteps[None]
    return _expand_batch(timesteps, batch)
