"""The AnimateDiff motion module inside MagicPose: exactness at zero init, temporal mixing, stage 3, loading."""

import pytest
import torch

from magicpose.errors import InputError, MissingWeightsError
from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.motion_module import (
    MagicPoseMotionUNet,
    build_motion_unet,
    extract_motion_adapter,
    is_motion_unet,
    load_motion_adapter,
    save_motion_adapter,
    set_motion_training,
)
from magicpose.models.multi_source_attention import MultiSourceAttnProcessor
from tests.dummy_components import get_dummy_components
from tests.motion_helpers import (
    build_motion_adapter,
    install_multi_source_attention,
    motion_adapter_config,
    repeat_reference_per_frame,
    to_animatediff_layout,
)

FRAMES = 3


@pytest.fixture(scope="module")
def components():
    return get_dummy_components()


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    return {
        "noisy_latents": torch.randn(FRAMES, 4, 8, 8, generator=generator),
        "reference_latents": torch.randn(1, 4, 8, 8, generator=generator),
        "pose_images": torch.rand(FRAMES, 3, 64, 64, generator=generator),
        "context": torch.randn(1, 77, 32, generator=generator),
    }


def _model(components, unet):
    return MagicPoseModel(unet, components["appearance_control"], components["pose_control"])


def _eps(model, inputs, latents=None, **overrides):
    kwargs = dict(reference_latents=inputs["reference_latents"], pose_images=inputs["pose_images"]) | overrides
    with torch.no_grad():
        return model(inputs["noisy_latents"] if latents is None else latents, 500, inputs["context"], **kwargs)


def test_zero_initialised_motion_module_gives_the_image_model_per_frame(components, inputs):
    """AnimateDiff starts from a zero output projection: the motion UNet is then the 2D UNet, frame by
    frame, with the reference bank and the pose residuals working as before."""
    expected = _eps(_model(components, components["unet"]), inputs)
    motion_unet = build_motion_unet(components["unet"], build_motion_adapter("tiny", zero_init=True))
    model = _model(components, motion_unet)
    assert is_motion_unet(model.unet)
    actual = _eps(model, inputs)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    # The comparison is not vacuous: the reference and the pose change the prediction.
    assert (actual - _eps(model, inputs, reference_latents=None, pose_images=None)).abs().max() > 1e-2


@pytest.fixture(scope="module")
def live_motion_model(components):
    """A motion UNet whose temporal layers are not zero (as after training, or with AnimateDiff weights)."""
    return _model(
        components, build_motion_unet(components["unet"], build_motion_adapter("tiny", seed=3, zero_init=False))
    )


def test_frames_of_a_clip_interact_through_the_temporal_layers(live_motion_model, inputs):
    base = _eps(live_motion_model, inputs)
    changed = inputs["noisy_latents"].clone()
    changed[1] += 1.0
    moved = _eps(live_motion_model, inputs, latents=changed)
    assert (moved[0] - base[0]).abs().max() > 1e-4  # frame 0 sees frame 1
    # A clip is a clip: splitting the batch into single-frame clips gives different (uncoupled) frames.
    single = torch.cat(
        [
            _eps(
                live_motion_model,
                inputs,
                latents=inputs["noisy_latents"][i : i + 1],
                pose_images=inputs["pose_images"][i : i + 1],
            )
            for i in range(FRAMES)
        ]
    )
    assert (single - base).abs().max() > 1e-4


def test_multi_source_attention_sits_on_spatial_layers_only(live_motion_model):
    processors = live_motion_model.unet.attn_processors
    readers = {name for name, p in processors.items() if isinstance(p, MultiSourceAttnProcessor)}
    assert readers and not any("motion_modules" in name for name in readers)
    assert (
        install_multi_source_attention(live_motion_model.unet, live_motion_model.appearance_control)
        is live_motion_model.bank
    )


def test_frame_batch_layout_matches_diffusers_clip_layout(live_motion_model, inputs):
    """(clips x F, C, h, w) clip-major in, the same out, as diffusers' (clips, C, F, h, w) call."""
    unet = live_motion_model.unet
    live_motion_model.bank.disable()
    frames = torch.randn(2 * FRAMES, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    context = inputs["context"].expand(2 * FRAMES, -1, -1)
    timesteps = torch.tensor([900] * FRAMES + [100] * FRAMES)
    with torch.no_grad():
        ours = unet(frames, timesteps, context, num_frames=FRAMES, return_dict=False)[0]
        video = frames.unflatten(0, (2, FRAMES)).transpose(1, 2)
        theirs = (
            torch.cat(
                [unet(video[i : i + 1], t, context[:FRAMES], return_dict=False)[0] for i, t in enumerate((900, 100))]
            )
            .transpose(1, 2)
            .flatten(0, 1)
        )
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="share a timestep"):
        unet(frames, torch.arange(2 * FRAMES), context, num_frames=FRAMES)
    with pytest.raises(ValueError, match="do not split"):
        unet(frames, 10, context, num_frames=4)


def test_one_reference_per_clip_is_repeated_for_its_frames(live_motion_model, inputs):
    references = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        features = live_motion_model.encode_reference(references, 500, inputs["context"])
    per_frame = repeat_reference_per_frame(features, FRAMES)
    name = next(iter(features))
    assert per_frame[name].shape[0] == 2 * FRAMES
    torch.testing.assert_close(per_frame[name][FRAMES], features[name][1])


def test_stage_three_trains_the_temporal_layers_only(inputs):
    components = get_dummy_components()  # its own: set_motion_training freezes the other networks
    adapter = build_motion_adapter("tiny", zero_init=True)
    model = _model(components, build_motion_unet(components["unet"], adapter))
    names = set(set_motion_training(model))
    assert len(names) == sum(1 for _ in adapter.parameters())
    assert all(name.startswith("unet.") and ".motion_modules." in name for name in names)
    eps = model(
        inputs["noisy_latents"],
        500,
        inputs["context"],
        reference_latents=inputs["reference_latents"],
        pose_images=inputs["pose_images"],
    )
    eps.square().mean().backward()
    parameters = dict(model.named_parameters())
    assert all(parameters[name].grad is not None for name in names)
    # From a zero output projection only the projections get a gradient at the first step (AnimateDiff).
    assert any(parameters[name].grad.abs().sum() > 0 for name in names if name.endswith("proj_out.weight"))
    assert all(p.grad is None for name, p in parameters.items() if name not in names)
    with pytest.raises(ValueError, match="motion UNet"):
        set_motion_training(_model(components, components["unet"]))


def test_adapter_round_trip_through_a_folder(live_motion_model, tmp_path, inputs):
    adapter = extract_motion_adapter(live_motion_model.unet)
    folder = save_motion_adapter(adapter, tmp_path / "motion_adapter")
    save_motion_adapter(adapter, folder)  # overwriting an existing folder leaves one whole copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion_adapter"]
    loaded = load_motion_adapter(folder)
    for name, value in adapter.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, atol=0, rtol=0)


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_original_animatediff_file_loads(tmp_path, suffix):
    adapter = build_motion_adapter("tiny", seed=11, zero_init=False)
    original = to_animatediff_layout(adapter)
    assert "mid_block.motion_modules.0.temporal_transformer.norm.bias" in original  # diffusers' v2 marker key
    path = tmp_path / f"mm_tiny_v2{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(original, path)
    else:
        torch.save(original, path)
    loaded = load_motion_adapter(path, num_attention_heads=motion_adapter_config("tiny")["motion_num_attention_heads"])
    expected = motion_adapter_config("tiny")
    as_read = {key: tuple(value) if isinstance(value, list) else value for key, value in loaded.config.items()}
    assert {key: as_read[key] for key in expected} == expected  # architecture read from the weights
    assert loaded.config.temporal_norm == "per_frame"  # AnimateDiff's file: AnimateDiff's computation
    for name, value in adapter.state_dict().items():  # the position tables included
        torch.testing.assert_close(loaded.state_dict()[name], value, atol=0, rtol=0)


def test_bad_motion_weights_are_clear_errors(tmp_path):
    with pytest.raises(MissingWeightsError):
        load_motion_adapter(tmp_path / "nowhere.ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="config.json"):
        load_motion_adapter(tmp_path / "empty")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "not_motion.ckpt")
    with pytest.raises(InputError, match="motion_modules"):
        load_motion_adapter(tmp_path / "not_motion.ckpt")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(InputError, match="expected a folder"):
        load_motion_adapter(tmp_path / "weights.txt")


def test_long_clips_are_refused_with_a_pointer_to_windows(live_motion_model, inputs):
    unet: MagicPoseMotionUNet = live_motion_model.unet
    too_long = unet.config.motion_max_seq_length + 1
    with pytest.raises(ValueError, match="windows"):
        unet(torch.zeros(too_long, 4, 8, 8), 10, inputs["context"])


@pytest.mark.slow
def test_stage_three_training_step_moves_only_the_temporal_layers():
    """The trainer's stage-3 module (clip batches): a loss, gradients on the motion modules alone."""
    from types import SimpleNamespace

    from magicpose.training.motion_stage import MotionStage

    config = SimpleNamespace(
        model=SimpleNamespace(motion_adapter=None, seed=0), train=SimpleNamespace(shared_noise=0.0)
    )
    components = get_dummy_components()  # its own: the stage freezes and opens its networks' parameters
    stage = MotionStage(components, config)
    generator = torch.Generator().manual_seed(0)
    batch = {
        # The tiny VAE downsamples by 2 and the ControlNet's hint encoder by 8: 8x8 latents.
        "reference": torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1,
        "target": torch.rand(2, 3, 3, 16, 16, generator=generator) * 2 - 1,
        "pose_image": torch.rand(2, 3, 3, 64, 64, generator=generator),
    }
    loss = stage(batch, torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss)
    trained = {name for name, p in stage.named_parameters() if p.requires_grad}
    assert trained and all(".motion_modules." in name for name in trained)
    assert all(p.grad is None for name, p in stage.named_parameters() if name not in trained)
    assert any(p.grad.abs().sum() > 0 for name, p in stage.named_parameters() if name in trained)
    adapter = stage.exported()["motion_adapter"]
    assert sum(p.numel() for p in adapter.parameters()) == sum(
        p.numel() for name, p in stage.named_parameters() if name in trained
    )


def test_clip_noise_shares_the_asked_fraction_of_its_variance_within_a_clip():
    from magicpose.training.stage_base import clip_noise

    shape = torch.Size((2 * 16, 4, 16, 16))  # 2 clips of 16 frames, clip-major
    independent = clip_noise(shape, 2, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(independent, torch.randn(shape, generator=torch.Generator().manual_seed(0)))
    for shared in (0.5, 0.9, 1.0):
        noise = clip_noise(shape, 2, shared, torch.Generator().manual_seed(0)).view(2, 16, -1)
        assert noise.var().item() == pytest.approx(1.0, abs=0.03)
        within = torch.corrcoef(noise[0, :2])[0, 1].item()  # two frames of one clip
        across = torch.corrcoef(torch.stack([noise[0, 0], noise[1, 0]]))[0, 1].item()  # the same frame of two clips
        assert within == pytest.approx(shared, abs=0.03) and abs(across) < 0.03
