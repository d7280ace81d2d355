"""Multi-Source Self-Attention (MagicPose paper, Eq. 3), as diffusers attention processors.

    Attention(Q, K, V) = softmax(Q [K1; K2]^T / sqrt(d)) [V1; V2]

In the official implementation (BRIEF §1), Q, K1, V1 are the base UNet's projections of its own
tokens and K2, V2 are the *base UNet's* `to_k`/`to_v` applied to the Appearance Control Model's
tokens at the same layer: the tensor that enters that model's attn1, i.e. `norm1(x)`. In diffusers
the input of a processor on `attn1` is exactly that normalised hidden state, so the appearance
branch's processor stores its input and the base UNet's processor reads it; no `forward` is patched.

The two processors share a `ReferenceBank`, keyed by the attention layer's name in its UNet (both
UNets have the same architecture, hence the same names).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


class ReferenceBank:
    """Reference tokens `norm1(x)` of every attn1 layer of the Appearance Control Model.

    `features` is replaced (never cleared in place) by each new reference pass, so that activation
    checkpointing, which re-runs the base UNet's blocks during backward, reads the same tensors as
    the forward pass did.
    """

    def __init__(self):
        self.features: dict[str, torch.Tensor] = {}
        self.writing = False
        # Per-sample switch for image-guidance dropout in training: False rows attend to themselves only.
        self.sample_mask: torch.Tensor | None = None

    def start_writing(self) -> None:
        self.features = {}
        self.sample_mask = None
        self.writing = True

    def stop_writing(self) -> None:
        self.writing = False

    def disable(self) -> None:
        """Read nothing: the base UNet becomes the plain frozen UNet (image guidance's unconditional branch)."""
        self.features = {}
        self.sample_mask = None
        self.writing = False

    def __len__(self) -> int:
        return len(self.features)


class ReferenceWriteProcessor(AttnProcessor2_0):
    """On the Appearance Control Model's attn1: store the input tokens, then plain self-attention."""

    def __init__(self, bank: ReferenceBank, name: str):
        super().__init__()
        self.bank = bank
        self.name = name

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.bank.writing:
            self.bank.features[self.name] = hidden_states
        return super().__call__(attn, hidden_states, *args, **kwargs)


class MultiSourceAttnProcessor:
    """On the base UNet's attn1: queries from its own tokens, keys/values over [own ; reference] tokens.

    With an empty bank this is exactly diffusers' self-attention. A reference batch of 1 is broadcast
    to every frame of the batch, which is how one appearance pass serves a whole video; its keys and
    values are projected once for that batch of 1, not once per frame.
    """

    def __init__(self, bank: ReferenceBank, name: str):
        self.bank = bank
        self.name = name
        self.self_attention = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        reference = self.bank.features.get(self.name)
        if reference is None:
            return self.self_attention(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if hidden_states.ndim != 3 or attention_mask is not None or attn.spatial_norm is not None:
            raise ValueError("multi-source attention expects token inputs (B, L, C) without an attention mask")

        batch, own_length, _ = hidden_states.shape
        # to_k and to_v are per-token maps: projecting [own ; reference] is projecting each part. The
        # reference tokens are projected for the stored batch (1 for a whole video), then broadcast,
        # instead of once per frame.
        reference = reference.to(hidden_states.dtype)
        key = torch.cat([attn.to_k(hidden_states), broadcast_reference(attn.to_k(reference), batch, self.name)], dim=1)
        value = torch.cat(
            [attn.to_v(hidden_states), broadcast_reference(attn.to_v(reference), batch, self.name)], dim=1
        )

        total_length = key.shape[1]
        heads = attn.heads
        query = attn.to_q(hidden_states)
        head_dim = key.shape[-1] // heads
        query = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, heads, head_dim).transpose(1, 2)

        mask = None
        if self.bank.sample_mask is not None:
            mask = reference_key_mask(self.bank.sample_mask, own_length, total_length)

        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def broadcast_reference(reference: torch.Tensor, batch: int, name: str = "") -> torch.Tensor:
    """Match the reference tokens' batch to the frames' batch (1 reference for N frames, or N for N)."""
    if reference.shape[0] == batch:
        return reference
    if reference.shape[0] == 1:
        return reference.expand(batch, -1, -1)
    raise ValueError(
        f"reference batch {reference.shape[0]} does not match {batch} frames at {name}: pass one reference "
        "for all frames or one per frame"
    )


def reference_key_mask(sample_mask: torch.Tensor, own_length: int, total_length: int) -> torch.Tensor:
    """Boolean SDPA mask (B, 1, 1, L_own + L_ref): rows whose sample_mask is False cannot see reference keys."""
    batch = sample_mask.shape[0]
    mask = torch.ones(batch, 1, 1, total_length, dtype=torch.bool, device=sample_mask.device)
    mask[:, :, :, own_length:] = sample_mask.view(batch, 1, 1, 1).bool()
    return mask


def is_spatial_self_attention(processor_name: str) -> bool:
    """attn1 of a spatial transformer block (AnimateDiff's temporal blocks also have an attn1: skip them)."""
    return processor_name.endswith("attn1.processor") and "motion_modules" not in processor_name


def attach_reference_bank(base_unet, appearance_unet) -> ReferenceBank:
    """Connect the two UNets through one bank, reusing the one already installed on both if any.

    Reusing matters: several wrappers (a stage-1 and a stage-2 model, a pipeline and a trainer) may
    share the same UNets, and processors left pointing at another wrapper's bank would read stale tokens.
    """
    banks = {
        id(processor.bank): processor.bank
        for unet in (base_unet, appearance_unet)
        for processor in unet.attn_processors.values()
        if isinstance(processor, (ReferenceWriteProcessor, MultiSourceAttnProcessor))
    }
    if len(banks) == 1:
        bank = next(iter(banks.values()))
        readers = _count(base_unet, MultiSourceAttnProcessor, bank)
        writers = _count(appearance_unet, ReferenceWriteProcessor, bank)
        if readers == writers == _count_spatial_self_attention(base_unet) > 0:
            return bank
    bank = ReferenceBank()
    readers = install_reference_processors(base_unet, bank, "base")
    writers = install_reference_processors(appearance_unet, bank, "appearance")
    if readers != writers:
        raise ValueError(f"base UNet has {readers} self-attention layers but the appearance model has {writers}")
    return bank


def _count(unet, processor_class, bank: ReferenceBank) -> int:
    return sum(isinstance(p, processor_class) and p.bank is bank for p in unet.attn_processors.values())


def _count_spatial_self_attention(unet) -> int:
    return sum(is_spatial_self_attention(name) for name in unet.attn_processors)


def install_reference_processors(unet, bank: ReferenceBank, role: str) -> int:
    """Put the write ('appearance') or read ('base') processor on every spatial attn1; returns how many.

    Every other attention layer keeps diffusers' SDPA processor.
    """
    processor_class = {"appearance": ReferenceWriteProcessor, "base": MultiSourceAttnProcessor}[role]
    processors = {}
    count = 0
    for name, current in unet.attn_processors.items():
        if is_spatial_self_attention(name):
            processors[name] = processor_class(bank, name.removesuffix(".processor"))
            count += 1
        elif isinstance(current, (ReferenceWriteProcessor, MultiSourceAttnProcessor)):
            processors[name] = AttnProcessor2_0()
        else:
            processors[name] = current
    unet.set_attn_processor(processors)
    return count
