import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.multi_source_attention import MultiSourceAttnProcessor, ReferenceWriteProcessor
from tests.dummy_components import get_dummy_components, get_dummy_inputs


@pytest.fixture(scope="module")
def components():
    return get_dummy_components()


@pytest.fixture(scope="module")
def model(components):
    return MagicPoseModel(components["unet"], components["appearance_control"], components["pose_control"])


def test_processors_on_every_self_attention_layer_and_only_there(model):
    for unet, role in ((model.unet, MultiSourceAttnProcessor), (model.appearance_control, ReferenceWriteProcessor)):
        processors = unet.attn_processors
        self_attention = [name for name in processors if name.endswith("attn1.processor")]
        assert len(self_attention) == 7  # 2 down, 1 mid, 4 up transformer blocks in the tiny UNet
        assert all(isinstance(processors[name], role) for name in self_attention)
        assert all(type(p) is AttnProcessor2_0 for name, p in processors.items() if name.endswith("attn2.processor"))


def test_without_reference_and_pose_it_is_the_plain_base_unet(components, model):
    inputs = get_dummy_inputs()
    with torch.no_grad():
        ours = model(inputs["noisy_latents"], 500, inputs["context"])
        # the same UNet with diffusers' own processors
        unet = type(components["unet"]).from_config(components["unet"].config)
        unet.load_state_dict(components["unet"].state_dict())
        expected = unet(inputs["noisy_latents"], 500, inputs["context"].expand(3, -1, -1)).sample
    assert torch.equal(ours, expected)


def test_one_reference_for_n_frames_equals_one_copy_per_frame_and_runs_once(model):
    inputs = get_dummy_inputs(frames=4)
    calls = []
    hook = model.appearance_control.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            shared = model(
                inputs["noisy_latents"],
                300,
                inputs["context"],
                reference_latents=inputs["reference_latents"],
                pose_images=inputs["pose_images"],
            )
            assert calls == [1]  # one appearance pass, batch 1, for 4 frames
            copies = model(
                inputs["noisy_latents"],
                300,
                inputs["context"],
                reference_latents=inputs["reference_latents"].expand(4, -1, -1, -1),
                pose_images=inputs["pose_images"],
            )
    finally:
        hook.remove()
    assert torch.allclose(shared, copies, atol=1e-5, rtol=1e-5)


def test_reference_changes_the_output(model):
    inputs = get_dummy_inputs()
    with torch.no_grad():
        plain = model(inputs["noisy_latents"], 300, inputs["context"])
        with_reference = model(
            inputs["noisy_latents"], 300, inputs["context"], reference_latents=inputs["reference_latents"]
        )
    assert (plain - with_reference).abs().max() > 1e-3


def test_condition_mask_rows_are_exactly_unconditional(model):
    inputs = get_dummy_inputs(frames=3)
    mask = torch.tensor([True, False, True])
    with torch.no_grad():
        mixed = model(
            inputs["noisy_latents"],
            300,
            inputs["context"],
            reference_latents=inputs["reference_latents"],
            pose_images=inputs["pose_images"],
            condition_mask=mask,
        )
        conditional = model(
            inputs["noisy_latents"],
            300,
            inputs["context"],
            reference_latents=inputs["reference_latents"],
            pose_images=inputs["pose_images"],
        )
        unconditional = model(inputs["noisy_latents"], 300, inputs["context"])
    assert torch.allclose(mixed[1], unconditional[1], atol=1e-5)
    assert torch.allclose(mixed[mask], conditional[mask], atol=1e-5)


def test_per_frame_timesteps_with_one_reference_match_per_frame_references(model):
    inputs = get_dummy_inputs(frames=2)
    steps = torch.tensor([900, 100])
    with torch.no_grad():
        out = model(inputs["noisy_latents"], steps, inputs["context"], reference_latents=inputs["reference_latents"])
        alone = [
            model(
                inputs["noisy_latents"][i : i + 1],
                int(step),
                inputs["context"],
                reference_latents=inputs["reference_latents"],
            )
            for i, step in enumerate(steps)
        ]
        swapped = model(
            inputs["noisy_latents"][1:], 900, inputs["context"], reference_latents=inputs["reference_latents"]
        )
    # every frame equals the frame run alone at its own timestep (and the two timesteps do differ in effect)
    for i in range(len(steps)):
        assert torch.allclose(out[i : i + 1], alone[i], atol=1e-5), i
    assert (swapped - alone[1]).abs().max() > 1e-3


def test_two_wrappers_on_the_same_networks_share_one_bank(components):
    first = MagicPoseModel(components["unet"], components["appearance_control"], components["pose_control"])
    second = MagicPoseModel(components["unet"], components["appearance_control"])
    assert first.bank is second.bank
    inputs = get_dummy_inputs()
    with torch.no_grad():
        second(inputs["noisy_latents"], 300, inputs["context"], reference_latents=inputs["reference_latents"])
        after = first(inputs["noisy_latents"], 300, inputs["context"])
        fresh = MagicPoseModel(components["unet"], components["appearance_control"])(
            inputs["noisy_latents"], 300, inputs["context"]
        )
    assert torch.equal(after, fresh)  # no stale reference tokens leak into the unconditional branch


def test_mismatched_reference_batch_is_a_clear_error(model):
    inputs = get_dummy_inputs(frames=3)
    with pytest.raises(ValueError, match="one reference for all frames or one per frame"):
        model(inputs["noisy_latents"], 300, inputs["context"], reference_latents=torch.randn(2, 4, 16, 16))
