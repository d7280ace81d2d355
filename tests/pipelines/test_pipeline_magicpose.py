import copy

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from magicpose.pipelines.image_guidance import guidance_scale_at
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components, get_dummy_inputs
from tests.official_sampling import official_style_denoise


@pytest.fixture(scope="module")
def pipeline():
    pipe = MagicPosePipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _inputs(frames=4):
    inputs = get_dummy_inputs(frames=frames)
    return inputs["noisy_latents"][:1], inputs["reference_latents"], inputs["pose_images"], inputs["context"]


def test_batched_sampling_equals_the_official_per_frame_sampling(pipeline):
    noise, reference, poses, context = _inputs(frames=3)
    ours = pipeline.denoise(
        noise, reference, poses, context, num_inference_steps=3, guidance_scale=7.0, frame_chunk_size=2
    )
    official = official_style_denoise(
        pipeline, noise, reference, poses, context, num_inference_steps=3, guidance_scale=7.0
    )
    assert torch.allclose(ours, official, rtol=1e-4, atol=1e-4 * official.abs().max())


def test_frame_chunk_size_does_not_change_the_result(pipeline):
    noise, reference, poses, context = _inputs(frames=4)
    whole = pipeline.denoise(noise, reference, poses, context, num_inference_steps=2, frame_chunk_size=4)
    chunked = pipeline.denoise(noise, reference, poses, context, num_inference_steps=2, frame_chunk_size=1)
    assert torch.allclose(whole, chunked, rtol=1e-4, atol=1e-5 * whole.abs().max())


def test_unconditional_branch_does_not_run_the_pose_controlnet(pipeline):
    noise, reference, poses, context = _inputs(frames=2)
    calls = []
    hooks = [
        pipeline.pose_control.register_forward_hook(lambda *args: calls.append("pose")),
        pipeline.appearance_control.register_forward_hook(lambda *args: calls.append("appearance")),
    ]
    try:
        pipeline.denoise(noise, reference, poses, context, num_inference_steps=2, frame_chunk_size=1)
    finally:
        for hook in hooks:
            hook.remove()
    # per step: one appearance pass, one ControlNet call per chunk (conditional only)
    assert calls.count("appearance") == 2 and calls.count("pose") == 2 * 2


def test_call_is_deterministic_and_returns_every_frame(pipeline):
    reference = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    poses = [np.random.default_rng(i).integers(0, 255, (128, 128, 3), dtype=np.uint8) for i in range(3)]
    first = pipeline(
        reference, poses, num_inference_steps=2, generator=torch.Generator().manual_seed(42), output_type="np"
    ).frames
    again = pipeline(
        reference, poses, num_inference_steps=2, generator=torch.Generator().manual_seed(42), output_type="np"
    ).frames
    other = pipeline(
        reference, poses, num_inference_steps=2, generator=torch.Generator().manual_seed(7), output_type="np"
    ).frames
    assert first.shape == (1, 3, 32, 32, 3)  # (videos, frames, H, W, 3), as diffusers' video pipelines
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    pil = pipeline(reference, poses[:2], num_inference_steps=1, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 2
    assert isinstance(pil[0][0], PIL.Image.Image) and pil[0][0].size == (32, 32)
    tensor = pipeline(reference, poses[:2], num_inference_steps=1, output_type="pt").frames
    assert tensor.shape == (1, 2, 3, 32, 32)


def test_uint8_arrays_mean_the_same_images_as_pil(pipeline):
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    poses = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    run = lambda ref, pose_list: (  # noqa: E731
        pipeline(
            ref,
            pose_list,
            num_inference_steps=2,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).frames
    )
    from_arrays = run(reference, poses)
    from_pil = run(PIL.Image.fromarray(reference), [PIL.Image.fromarray(p) for p in poses])
    assert np.allclose(from_arrays, from_pil, atol=1e-5)
    assert pipeline.prepare_poses(poses, 128, 128).max() <= 1.0


def test_guidance_scale_one_skips_the_unconditional_branch(pipeline):
    noise, reference, poses, context = _inputs(frames=1)
    calls = []
    hook = pipeline.unet.register_forward_hook(lambda *args: calls.append(1))
    try:
        pipeline.denoise(noise, reference, poses, context, num_inference_steps=2, guidance_scale=1.0)
    finally:
        hook.remove()
    assert len(calls) == 2


def test_guidance_interval_guides_only_the_steps_inside_it(pipeline):
    noise, reference, poses, context = _inputs(frames=1)
    run = lambda **options: pipeline.denoise(  # noqa: E731
        noise,
        reference,
        poses,
        context,
        num_inference_steps=4,
        **{"guidance_scale": 5.0, **options},
    )
    guided, unguided = run(), run(guidance_scale=1.0)
    torch.testing.assert_close(run(guidance_interval=(0, 1000)), guided)  # every timestep is inside
    torch.testing.assert_close(run(guidance_interval=(990, 1000)), unguided)  # none is (the first is 751)
    calls = []
    hook = pipeline.unet.register_forward_hook(lambda *args: calls.append(1))
    try:
        partly = run(guidance_interval=(500, 1000))  # the first two of 751, 501, 251, 1
    finally:
        hook.remove()
    assert len(calls) == 4 + 2  # one conditional call per step, one unconditional per guided step
    assert not torch.allclose(partly, guided) and not torch.allclose(partly, unguided)
    with pytest.raises(ValueError, match="guidance interval"):
        run(guidance_interval=(600, 400))


def test_guidance_scale_at_is_the_scale_inside_the_interval_and_one_outside():
    assert guidance_scale_at(800, 3.0) == 3.0
    assert guidance_scale_at(torch.tensor(800), 3.0, (200, 800)) == 3.0
    assert guidance_scale_at(200, 3.0, (200, 800)) == 1.0 and guidance_scale_at(801, 3.0, (200, 800)) == 1.0


def test_no_reference_is_the_pose_controlnet_alone(pipeline):
    noise, _, poses, context = _inputs(frames=2)
    calls = []
    hook = pipeline.appearance_control.register_forward_hook(lambda *args: calls.append(1))
    try:
        latents = pipeline.denoise(noise, None, poses, context, num_inference_steps=2, guidance_scale=1.0)
    finally:
        hook.remove()
    assert calls == []
    # the same as stepping the base UNet with the ControlNet residuals by hand
    scheduler = copy.deepcopy(pipeline.scheduler)  # the module's pipeline keeps its own
    scheduler.set_timesteps(2)
    expected = noise.expand(2, -1, -1, -1).clone() * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        down, mid = pipeline.pose_control(
            expected, t, encoder_hidden_states=context.expand(2, -1, -1), controlnet_cond=poses, return_dict=False
        )
        eps = pipeline.unet(
            expected,
            t,
            encoder_hidden_states=context.expand(2, -1, -1),
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        expected = scheduler.step(eps, t, expected).prev_sample
    assert torch.allclose(latents, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    frames = pipeline(None, [np.zeros((128, 128, 3), np.uint8)], num_inference_steps=1, output_type="np").frames
    assert frames.shape == (1, 1, 32, 32, 3)


def test_neither_reference_nor_pose_is_the_plain_base_unet_even_without_the_branches():
    """What a base-UNet stage's grid samples: a pipeline with no appearance branch and no ControlNet."""
    components = get_dummy_components()
    pipe = MagicPosePipeline(**{**components, "appearance_control": None, "pose_control": None})
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))  # one draw per frame
    context = get_dummy_inputs()["context"]
    latents = pipe.denoise(noise, None, None, context, num_inference_steps=2, guidance_scale=1.0)
    scheduler = copy.deepcopy(pipe.scheduler)
    expected = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = components["unet"](expected, t, encoder_hidden_states=context.expand(2, -1, -1)).sample
        expected = scheduler.step(eps, t, expected).prev_sample
    torch.testing.assert_close(latents, expected, atol=1e-6 * expected.abs().max().item(), rtol=0)
    assert not torch.allclose(latents[0], latents[1])  # two independent samples


def test_other_diffusers_schedulers_can_be_swapped_in():
    pipe = MagicPosePipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    noise, reference, poses, context = _inputs(frames=2)
    latents = pipe.denoise(noise, reference, poses, context, num_inference_steps=3)
    assert latents.shape == (2, 4, 16, 16) and torch.isfinite(latents).all()


def test_bad_inputs_are_clear_errors(pipeline):
    reference = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="no pose frames"):
        pipeline(reference, [], num_inference_steps=1)
    with pytest.raises(ValueError, match="multiples of 2"):
        pipeline(reference, [np.zeros((128, 128, 3), np.uint8)], height=33, width=32, num_inference_steps=1)


def test_motion_unet_samples_long_videos_in_windows_and_zero_init_changes_nothing():
    from magicpose.models.motion_module import build_motion_unet
    from tests.motion_helpers import build_motion_adapter

    components = get_dummy_components()
    plain = MagicPosePipeline(**components)
    plain.set_progress_bar_config(disable=True)
    noise, reference, poses, context = _inputs(frames=6)
    expected = plain.denoise(noise, reference, poses, context, num_inference_steps=2)
    motion = MagicPosePipeline(
        **{**components, "unet": build_motion_unet(components["unet"], build_motion_adapter("tiny"))}
    )
    motion.set_progress_bar_config(disable=True)
    windowed = motion.denoise(
        noise, reference, poses, context, num_inference_steps=2, window_frames=4, window_overlap=2
    )
    # AnimateDiff's temporal layers start as the identity, so windows of clips reproduce per-frame sampling
    assert torch.allclose(windowed, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


def test_start_from_reference_is_the_reference_noised_to_the_first_timestep(pipeline):
    noise, reference, poses, context = _inputs(frames=2)
    sample = lambda start, **kw: pipeline.denoise(start, reference, poses, context, num_inference_steps=3, **kw)  # noqa: E731
    scheduler = copy.deepcopy(pipeline.scheduler)  # the module's pipeline keeps its own
    scheduler.set_timesteps(3)
    alpha_bar = scheduler.alphas_cumprod[scheduler.timesteps[0]]
    noised_reference = alpha_bar.sqrt() * reference + (1 - alpha_bar).sqrt() * noise  # DDPM Eq. 4; DDIM's sigma is 1
    from_reference = sample(noise, start_from_reference=True)
    assert torch.allclose(from_reference, sample(noised_reference), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(from_reference, sample(noise), atol=1e-3)
    with pytest.raises(ValueError, match="needs reference latents"):
        pipeline.denoise(noise, None, poses, context, num_inference_steps=1, start_from_reference=True)


def test_start_from_reference_is_a_saved_model_setting_that_a_call_can_override(tmp_path):
    from magicpose.pipelines.assembly import load_pipeline, save_pipeline_atomically

    save_pipeline_atomically(
        MagicPosePipeline(**get_dummy_components(), start_from_reference=True), tmp_path / "model"
    )
    pipe = load_pipeline(tmp_path / "model")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.start_from_reference is True
    assert MagicPosePipeline(**get_dummy_components()).config.start_from_reference is False  # official behaviour
    reference = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    poses = [np.random.default_rng(2).integers(0, 255, (128, 128, 3), dtype=np.uint8)]
    run = lambda ref, **kw: (  # noqa: E731
        pipe(
            ref,
            poses,
            num_inference_steps=2,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
            **kw,
        ).frames
    )
    by_config = run(reference)
    assert np.array_equal(by_config, run(reference, start_from_reference=True))
    assert not np.allclose(by_config, run(reference, start_from_reference=False), atol=1e-4)
    assert run(None).shape == (1, 1, 32, 32, 3)  # no reference to start from: pure noise, no error


def test_schedulers_by_name_keep_the_noise_schedule_and_ddim_is_the_official_one():
    from magicpose.interfaces.options import SCHEDULER_NAMES
    from magicpose.models.noise_schedule import official_ddim_scheduler
    from magicpose.pipelines.schedulers import SCHEDULERS, scheduler_named

    assert set(SCHEDULER_NAMES) == set(SCHEDULERS)
    official = official_ddim_scheduler()
    for name in SCHEDULERS:
        scheduler = scheduler_named(name, official.config)
        assert torch.equal(scheduler.alphas_cumprod, official.alphas_cumprod), name
    dpm = scheduler_named("dpm++", official.config)
    assert scheduler_named("ddim", dpm.config).config == official.config
    with pytest.raises(ValueError, match="unknown scheduler 'plms'"):
        scheduler_named("plms", official.config)
