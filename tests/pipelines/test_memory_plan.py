"""Memory bounded by design (issue 30): the VAE decodes a few frames at a time, and the offload plan moves
no weight inside the denoising loop; both give the frames the pipeline gave before."""

from contextlib import nullcontext

import numpy as np
import pytest
import torch

from magicpose.pipelines import pipeline_magicpose
from magicpose.pipelines.offload import VAE_DECODE_FRAMES, decode_batch
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components, get_dummy_inputs

REFERENCE = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
POSES = [np.random.default_rng(10 + i).integers(0, 255, (128, 128, 3), dtype=np.uint8) for i in range(5)]


@pytest.fixture
def pipe():
    pipeline = MagicPosePipeline(**get_dummy_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def frames(pipeline, **kwargs) -> np.ndarray:
    options = dict(num_inference_steps=2, generator=torch.Generator().manual_seed(42), output_type="np")
    return np.asarray(pipeline(REFERENCE, POSES, **{**options, **kwargs}).frames)


def test_the_vae_decodes_a_few_frames_at_a_time_whatever_the_frame_chunk(pipe):
    assert (
        [decode_batch(chunk) for chunk in (1, 2, 16, 64)]
        == [1, 2, VAE_DECODE_FRAMES, VAE_DECODE_FRAMES]
        == [1, 2, 2, 2]
    )
    generator = torch.Generator().manual_seed(0)
    for frames_count, exact in ((16, True), (7, False)):
        latents = torch.randn(frames_count, 4, 16, 16, generator=generator)
        batches = []
        hook = pipe.vae.decoder.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
        try:
            with torch.no_grad():
                decoded = pipe.decode_latents(latents, chunk_size=16)
        finally:
            hook.remove()
        assert batches == [2] * (frames_count // 2) + [1] * (frames_count % 2)
        with torch.no_grad():  # what it did before: the whole frame chunk in one call
            before = pipe.vae.decode(latents * (1.0 / pipe.vae.config.scaling_factor)).sample
        # An odd batch takes other CPU kernels: the last float bits, far below a uint8 level (4e-3).
        assert torch.equal(decoded, before) if exact else (decoded - before).abs().max() < 1e-5


def test_the_offload_plan_gives_the_same_frames_and_moves_no_weight_inside_the_loop(pipe):
    resident = frames(pipe, frame_chunk_size=2)
    pipe.enable_offload_plan("cpu")
    plan, events = pipe.offload_plan, []
    move = plan._move
    plan._move = lambda modules, device: (events.append("move"), move(modules, device))
    networks = {"unet": pipe.unet, "appearance": pipe.appearance_control, "pose": pipe.pose_control}
    hooks = [net.register_forward_hook(lambda *args, n=name: events.append(n)) for name, net in networks.items()]
    hooks += [pipe.vae.encoder.register_forward_hook(lambda *args: events.append("encode"))]
    hooks += [pipe.vae.decoder.register_forward_hook(lambda *args: events.append("decode"))]
    try:
        offloaded = frames(pipe, frame_chunk_size=2)
    finally:
        for hook in hooks:
            hook.remove()
    assert np.array_equal(offloaded, resident)
    in_loop = [i for i, event in enumerate(events) if event in ("unet", "pose")]
    first, last = in_loop[0], in_loop[-1] + 1
    loop = events[first:last]
    assert "move" not in loop and "appearance" not in loop and loop.count("pose") == 2 * 3  # 2 steps x 3 chunks
    assert events.index("encode") < events.index("appearance") < first and events.index("decode") > last
    assert events.count("appearance") == 2 and events.count("move") == 8  # 4 phases, each in and out
    assert plan.moved_bytes > 0


def test_the_pose_hint_encoder_runs_once_per_generation_with_the_same_result(pipe, monkeypatch):
    calls = []
    embedding = pipe.pose_control.controlnet_cond_embedding
    hook = embedding.conv_in.register_forward_hook(lambda *args: calls.append(1))
    try:
        reused = frames(pipe, frame_chunk_size=2, num_inference_steps=3)
        assert len(calls) == 3  # 3 frame chunks, once each for the 3 steps
        monkeypatch.setattr(pipeline_magicpose, "reuse_pose_hints", lambda pose_control: nullcontext())
        calls.clear()
        every_step = frames(pipe, frame_chunk_size=2, num_inference_steps=3)
        assert len(calls) == 9
    finally:
        hook.remove()
    assert np.array_equal(reused, every_step)
    assert "forward" not in embedding.__dict__  # the module is as it was


def test_latents_and_the_scheduler_stay_in_float32_under_half_precision_networks():
    pipe = MagicPosePipeline(**get_dummy_components()).to(torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    data = get_dummy_inputs(frames=2)
    seen = []
    step = pipe.scheduler.step
    pipe.scheduler.step = lambda eps, t, x, **kwargs: (seen.append((eps.dtype, x.dtype)), step(eps, t, x, **kwargs))[1]
    latents = pipe.denoise(
        data["noisy_latents"][:1].bfloat16(),
        data["reference_latents"].bfloat16(),
        data["pose_images"].bfloat16(),
        pipe.text_context().bfloat16(),
        num_inference_steps=2,
    )
    assert seen == [(torch.float32, torch.float32)] * 2 and latents.dtype == torch.float32
    assert pipe.decode_latents(latents, 2).dtype == torch.bfloat16  # the VAE gets its own dtype
