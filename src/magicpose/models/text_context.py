"""The cross-attention context of all three networks.

The official code always conditions on the CLIP text embedding of the empty prompt "" (the reference
image enters only through the attention bank), so it is computed once and stored as a small component;
inference then needs no text encoder. A text prompt still works where a tokenizer and text encoder exist.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

# CLIP's tokenizer (openai/clip-vit-large-patch14, SD-1.5's) turns "" padded to 77 into
# <|startoftext|> followed by <|endoftext|> repeated (its pad token is <|endoftext|>).
CLIP_START_OF_TEXT = 49406
CLIP_END_OF_TEXT = 49407
CLIP_MAX_LENGTH = 77


def empty_prompt_token_ids(max_length: int = CLIP_MAX_LENGTH) -> torch.Tensor:
    """Token ids of "" as SD-1.5's FrozenCLIPEmbedder tokenises it (padding="max_length")."""
    return torch.tensor([[CLIP_START_OF_TEXT] + [CLIP_END_OF_TEXT] * (max_length - 1)])


@torch.no_grad()
def encode_prompt(text_encoder, prompt: str = "", tokenizer=None) -> torch.Tensor:
    """CLIP `last_hidden_state` of `prompt`, (1, 77, D), as the official FrozenCLIPEmbedder computes it."""
    if prompt == "" and tokenizer is None:
        ids = empty_prompt_token_ids(text_encoder.config.max_position_embeddings)
    elif tokenizer is None:
        raise ValueError("a text prompt needs a tokenizer; only the empty prompt can be encoded without one")
    else:
        ids = tokenizer(
            prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
    return text_encoder(ids.to(text_encoder.device)).last_hidden_state


class TextContext(ModelMixin, ConfigMixin):
    """A fixed context tensor (1, length, dim), saved and loaded as a diffusers component folder."""

    @register_to_config
    def __init__(self, length: int = CLIP_MAX_LENGTH, dim: int = 768):
        super().__init__()
        self.register_buffer("embedding", torch.zeros(1, length, dim))

    @classmethod
    def from_tensor(cls, embedding: torch.Tensor) -> TextContext:
        if embedding.ndim == 2:
            embedding = embedding[None]
        context = cls(length=embedding.shape[1], dim=embedding.shape[2])
        context.embedding.copy_(embedding.detach().float())
        return context

    def forward(self, batch_size: int = 1) -> torch.Tensor:
        return self.embedding.expand(batch_size, -1, -1)
