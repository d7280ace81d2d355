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
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    FusedAttnProcessor2_0,
    SlicedAttnProcessor,
    XFormersAttnProcessor,
)


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


class ReferenceWriteProcessor:
    """On the Appearance Control Model's attn1: store the input tokens, then run the layer's own processor
    (whatever a user set: SDPA, sliced, xformers, fused...), which the wrapper keeps as `inner`."""

    def __init__(self, bank: ReferenceBank, name: str, inner=None):
        self.bank = bank
        self.name = name
        self.inner = inner if inner is not None else AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.bank.writing:
            self.bank.features[self.name] = hidden_states
        return self.inner(attn, hidden_states, *args, **kwargs)


class MultiSourceAttnProcessor:
    """On the base UNet's attn1: queries from its own tokens, keys/values over [own ; reference] tokens.

    With an empty bank this is the layer's own processor (`inner`, whatever a user set), untouched.
    With a reference, the attention kernel follows `inner`: SDPA in one go (diffusers' default, the
    classic and the fused processors), in slices of the batch x heads (attention slicing, for low
    memory) or xformers. A reference batch of 1 is broadcast to every frame of the batch, which is how
    one appearance pass serves a whole video; its keys and values are projected once for that batch of
    1, not once per frame.
    """

    def __init__(self, bank: ReferenceBank, name: str, inner=None):
        inner = inner if inner is not None else AttnProcessor2_0()
        if not isinstance(inner, MULTI_SOURCE_KERNELS):
            raise ValueError(
                f"the attention processor {type(inner).__name__} on {name} cannot attend to the reference: "
                "MagicPose's multi-source attention runs with AttnProcessor2_0 (the default), AttnProcessor, "
                "attention slicing (enable_attention_slicing), xformers or fused projections; set one of those"
            )
        self.bank = bank
        self.name = name
        self.inner = inner

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        reference = self.bank.features.get(self.name)
        if reference is None:
            return self.inner(
                attn,
                hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask,
                **kwargs,
            )
        if hidden_states.ndim != 3 or attention_mask is not None or attn.spatial_norm is not None:
            raise ValueError("multi-source attention expects token inputs (B, L, C) without an attention mask")

        batch, own_length, _ = hidden_states.shape
        if isinstance(self.inner, FusedAttnProcessor2_0):
            query, own_key, own_value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, own_key, own_value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        # to_k and to_v are per-token maps: projecting [own ; reference] is projecting each part. The
        # reference tokens are projected for the stored batch (1 for a whole video), then broadcast,
        # instead of once per frame.
        reference = reference.to(hidden_states.dtype)
        key = torch.cat([own_key, broadcast_reference(attn.to_k(reference), batch, self.name)], dim=1)
        value = torch.cat([own_value, broadcast_reference(attn.to_v(reference), batch, self.name)], dim=1)

        heads = attn.heads
        head_dim = key.shape[-1] // heads
        query, key, value = (x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value))
        mask = None
        if self.bank.sample_mask is not None:
            mask = reference_key_mask(self.bank.sample_mask, own_length, key.shape[2])
        out = self.attend(attn, query, key, value, mask)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor

    def attend(self, attn: Attention, query, key, value, mask) -> torch.Tensor:
        """softmax(Q K^T * scale) V of (B, heads, L, d) tensors with the kernel `inner` stands for."""
        if isinstance(self.inner, XFormersAttnProcessor) and mask is None:
            import xformers.ops  # optional: present whenever diffusers installed an XFormersAttnProcessor

            out = xformers.ops.memory_efficient_attention(
                *(x.transpose(1, 2) for x in (query, key, value)), op=self.inner.attention_op, scale=attn.scale
            )
            return out.transpose(1, 2)
        if isinstance(self.inner, SlicedAttnProcessor):
            # Slices of batch x heads, as diffusers' SlicedAttnProcessor: the score matrix of one slice at a time.
            batch, heads = query.shape[:2]
            flat = [x.flatten(0, 1) for x in (query, key, value)]
            flat_mask = None if mask is None else mask.expand(batch, heads, 1, -1).flatten(0, 1)
            out = torch.empty_like(flat[0])
            for start in range(0, batch * heads, self.inner.slice_size):
                part = slice(start, start + self.inner.slice_size)
                out[part] = F.scaled_dot_product_attention(
                    *(x[part] for x in flat),
                    attn_mask=None if flat_mask is None else flat_mask[part],
                    scale=attn.scale,
                )
            return out.unflatten(0, (batch, heads))
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attn.scale)


# Processors whose attention MultiSourceAttnProcessor can compute over [own ; reference] tokens.
MULTI_SOURCE_KERNELS = (
    AttnProcessor2_0,
    AttnProcessor,
    FusedAttnProcessor2_0,
    SlicedAttnProcessor,
    XFormersAttnProcessor,
)


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
    """Connect the two UNets through one bank, reusing the one already installed on them if any.

    Called before every use, so it also adopts what a user set since (`enable_attention_slicing`,
    `set_attn_processor`, xformers, fused projections): the new processor becomes the `inner` of the
    layer's reader or writer, and `disable_*` (which sets diffusers' default) is adopted the same way.
    Reusing the bank matters: several wrappers (a stage-1 and a stage-2 model, a pipeline and a trainer)
    may share the same UNets, and processors left pointing at another wrapper's bank would read stale tokens.
    """
    banks = {
        id(processor.bank): processor.bank
        for unet in (base_unet, appearance_unet)
        for processor in unet.attn_processors.values()
        if isinstance(processor, (ReferenceWriteProcessor, MultiSourceAttnProcessor))
    }
    bank = next(iter(banks.values())) if len(banks) == 1 else ReferenceBank()
    readers = install_reference_processors(base_unet, bank, "base")
    writers = install_reference_processors(appearance_unet, bank, "appearance")
    if readers != writers:
        raise ValueError(f"base UNet has {readers} self-attention layers but the appearance model has {writers}")
    return bank


def detach_reference_bank(*unets) -> None:
    """Give every layer back the processor its reference processor wraps, so that between two uses the
    UNets hold only the user's processors and diffusers' own processor methods (`set_default_attn_processor`
    checks that it knows every processor) work on them; `attach_reference_bank` wraps them again."""
    for unet in unets:
        processors = unet.attn_processors
        if any(isinstance(p, (ReferenceWriteProcessor, MultiSourceAttnProcessor)) for p in processors.values()):
            unet.set_attn_processor(
                {
                    name: p.inner if isinstance(p, (ReferenceWriteProcessor, MultiSourceAttnProcessor)) else p
                    for name, p in processors.items()
                }
            )


def install_reference_processors(unet, bank: ReferenceBank, role: str) -> int:
    """Put the write ('appearance') or read ('base') processor on every spatial attn1, around the processor
    the layer has; returns how many. Every other layer keeps (or gets back) its own processor, and
    `set_attn_processor` runs only when something changes."""
    processor_class = {"appearance": ReferenceWriteProcessor, "base": MultiSourceAttnProcessor}[role]
    other_role = MultiSourceAttnProcessor if role == "appearance" else ReferenceWriteProcessor
    processors = {}
    count = 0
    changed = False
    for name, current in unet.attn_processors.items():
        own = current.inner if isinstance(current, (ReferenceWriteProcessor, MultiSourceAttnProcessor)) else current
        if is_spatial_self_attention(name):
            count += 1
            # Ours already, or a processor of the user's own that reads this bank itself: left as it is.
            if getattr(current, "bank", None) is bank and not isinstance(current, other_role):
                processors[name] = current
                continue
            processors[name] = processor_class(bank, name.removesuffix(".processor"), own)
        else:
            processors[name] = own
        changed = changed or processors[name] is not current
    if changed:
        unet.set_attn_processor(processors)
    return count
