"""The reference tokens' K/V projections, computed once for the reference and broadcast, change no epsilon.

`MultiSourceAttnProcessor` projects the reference tokens once for the stored reference batch and
broadcasts them to the frames.
Every result is compared with the straightforward form written out here: concatenate
[own ; reference] per frame, project, attend.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.multi_source_attention import MultiSourceAttnProcessor, reference_key_mask
from tests.dummy_components import get_dummy_components, get_dummy_inputs

TOLERANCE = 1e-6


class ConcatenateThenProject:
    """The multi-source attention of Eq. 3 as the official code computes it, on the same bank."""

    def __init__(self, bank, name):
        self.bank = bank
        self.name = name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        reference = self.bank.features.get(self.name)
        if reference is None:
            return AttnProcessor2_0()(attn, hidden_states)
        batch, own_length, _ = hidden_states.shape
        reference = reference.expand(batch, -1, -1) if reference.shape[0] == 1 else reference
        sources = torch.cat([hidden_states, reference.to(hidden_states.dtype)], dim=1)
        heads = attn.heads
        query, key, value = attn.to_q(hidden_states), attn.to_k(sources), attn.to_v(sources)
        head_dim = key.shape[-1] // heads
        query, key, value = (x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value))
        mask = None
        if self.bank.sample_mask is not None:
            mask = reference_key_mask(self.bank.sample_mask, own_length, sources.shape[1])
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out))


@contextlib.contextmanager
def concatenate_then_project(model):
    """The base UNet's attn1 layers run `ConcatenateThenProject` inside the block."""
    original = model.unet.attn_processors
    model.unet.set_attn_processor(
        {
            name: ConcatenateThenProject(p.bank, p.name) if isinstance(p, MultiSourceAttnProcessor) else p
            for name, p in original.items()
        }
    )
    try:
        yield
    finally:
        model.unet.set_attn_processor(original)


def both(model, *args, **kwargs):
    """(ours, straightforward) epsilon of the same call."""
    ours = model(*args, **kwargs)
    with concatenate_then_project(model):
        expected = model(*args, **kwargs)
    return ours, expected


def assert_close(ours, expected):
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max() <= TOLERANCE * max(1.0, expected.abs().max())


@pytest.fixture(scope="module")
def components():
    return get_dummy_components()


@pytest.fixture()
def model(components):
    model = MagicPoseModel(components["unet"], components["appearance_control"], components["pose_control"])
    model.bank.disable()
    return model


def reference_projections(model):
    """Calls of the first attn1 layer's `to_k` on reference tokens (of the stored reference batch)."""
    attn = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    calls = []

    def hook(module, args, output):
        tokens = args[0]
        if tokens.data_ptr() in {reference.data_ptr() for reference in model.bank.features.values()}:
            calls.append(tokens.shape[0])

    return calls, attn.to_k.register_forward_hook(hook)


@pytest.mark.parametrize("frames", [1, 4])
def test_one_reference_for_n_frames(model, frames):
    inputs = get_dummy_inputs(frames=frames)
    with torch.no_grad():
        ours, expected = both(
            model,
            inputs["noisy_latents"],
            300,
            inputs["context"],
            reference_latents=inputs["reference_latents"],
            pose_images=inputs["pose_images"],
        )
    assert_close(ours, expected)


def test_one_reference_per_frame(model):
    inputs = get_dummy_inputs(frames=4)
    references = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, expected = both(
            model,
            inputs["noisy_latents"],
            torch.tensor([900, 600, 300, 20]),
            inputs["context"],
            reference_latents=references,
            pose_images=inputs["pose_images"],
        )
    assert_close(ours, expected)


@pytest.mark.parametrize("reference_batch", [1, 4])
def test_sample_mask(model, reference_batch):
    inputs = get_dummy_inputs(frames=4)
    references = torch.randn(reference_batch, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([True, False, True, False])
    with torch.no_grad():
        ours, expected = both(
            model,
            inputs["noisy_latents"],
            400,
            inputs["context"],
            reference_latents=references,
            pose_images=inputs["pose_images"],
            condition_mask=mask,
        )
    assert_close(ours, expected)


def test_projected_once_for_the_reference_not_per_frame(model):
    inputs = get_dummy_inputs(frames=4)
    with torch.no_grad():
        calls, hook = reference_projections(model)
        try:
            model(
                inputs["noisy_latents"],
                300,
                inputs["context"],
                reference_latents=inputs["reference_latents"],
                pose_images=inputs["pose_images"],
            )
        finally:
            hook.remove()
    assert calls == [1]  # one projection of a batch of 1 serves the 4 frames


def test_gradients_flow_to_the_appearance_branch(model):
    """Training: reference tokens require grad; a no-grad call on the same tokens first must not be reused."""
    inputs = get_dummy_inputs(frames=2)
    x, context = inputs["noisy_latents"], inputs["context"]
    references = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([True, False])
    parameter = model.appearance_control.down_blocks[0].attentions[0].transformer_blocks[0].norm1.weight

    def gradient():
        model.appearance_control.zero_grad(set_to_none=True)
        with torch.enable_grad():
            features = model.encode_reference(references, 300, context)
            with torch.no_grad():
                model(x, 300, context, reference_features=features, condition_mask=mask)
            model(x, 300, context, reference_features=features, condition_mask=mask).square().mean().backward()
        return parameter.grad.clone()

    flags = [p.requires_grad for p in model.appearance_control.parameters()]  # the module's fixture keeps its own
    model.appearance_control.requires_grad_(True)
    try:
        ours = gradient()
        with concatenate_then_project(model):
            expected = gradient()
    finally:
        for p, flag in zip(model.appearance_control.parameters(), flags):
            p.requires_grad_(flag)
        model.appearance_control.zero_grad(set_to_none=True)
    assert ours.abs().max() > 0
    assert_close(ours, expected)
