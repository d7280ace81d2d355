"""diffusers' own pipeline checks (its `PipelineTesterMixin`, which the wheel does not ship), written for
`MagicPosePipeline` on tiny components: what a diffusers user does with any pipeline must hold here, or
fail loudly with the reason."""

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

import magicpose
from magicpose.models.multi_source_attention import MultiSourceAttnProcessor, ReferenceWriteProcessor
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components
from tests.motion_helpers import build_motion_adapter

REFERENCES = [np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8) for seed in (1, 2)]
POSES = [np.random.default_rng(10 + i).integers(0, 255, (128, 128, 3), dtype=np.uint8) for i in range(2)]
SPATIAL_ATTN1 = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"


def quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, reference=REFERENCES[0], seed=0, **kwargs):
    options = dict(num_inference_steps=2, generator=torch.Generator().manual_seed(seed), output_type="np")
    return pipe(reference, POSES, **{**options, **kwargs}).frames


def generate_seeing_processors(pipe):
    """The frames, and the processors of the first spatial attn1 of both UNets while the pipeline samples."""
    seen = {}

    def look(pipe, step, timestep, tensors):
        seen["base"] = pipe.unet.attn_processors[SPATIAL_ATTN1]
        seen["appearance"] = pipe.appearance_control.attn_processors[SPATIAL_ATTN1]
        return tensors

    return generate(pipe, callback_on_step_end=look), seen


@pytest.fixture(scope="module")
def pipe():
    return quiet(MagicPosePipeline(**get_dummy_components()))


@pytest.fixture(scope="module")
def motion_folder(tmp_path_factory):
    """A saved pipeline with a (non-zero) motion module, and the frames it generated before saving."""
    pipe = quiet(MagicPosePipeline(**get_dummy_components(), motion_adapter=build_motion_adapter(zero_init=False)))
    folder = tmp_path_factory.mktemp("motion") / "model"
    pipe.save_pretrained(folder)
    return folder, generate(pipe), pipe


class TestDiffusersContract:
    @pytest.mark.slow
    def test_a_motion_pipeline_round_trips_through_every_loader_with_identical_frames(self, motion_folder):
        folder, expected, pipe = motion_folder
        assert (folder / "unet" / "config.json").is_file() and (folder / "motion_adapter" / "config.json").is_file()
        loaded = {
            "MagicPosePipeline.from_pretrained": MagicPosePipeline.from_pretrained(folder),
            "magicpose.load": magicpose.load(folder, device="cpu"),
            "DiffusionPipeline.from_pretrained": DiffusionPipeline.from_pretrained(folder, trust_remote_code=True),
            "MagicPosePipeline(**components)": MagicPosePipeline(**pipe.components),
        }
        for how, other in loaded.items():
            assert type(other) is MagicPosePipeline and type(other.unet).__name__ == "MagicPoseMotionUNet", how
            assert other.motion_adapter is not None, how
            np.testing.assert_array_equal(generate(quiet(other)), expected, err_msg=how)
        # Without a motion module the same folder is the image model: other frames, not an error
        assert type(magicpose.load(folder, device="cpu", motion_module=False).unet).__name__ == "UNet2DConditionModel"

    def test_diffusers_asks_before_running_the_folders_pipeline_file(self, motion_folder):
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            DiffusionPipeline.from_pretrained(motion_folder[0])

    def test_the_saved_adapter_is_the_one_the_unet_samples_with(self, motion_folder):
        _, _, pipe = motion_folder
        temporal = pipe.unet.down_blocks[0].motion_modules
        assert pipe.motion_adapter.down_blocks[0].motion_modules is temporal  # one copy in memory

    def test_dict_and_tuple_outputs_are_the_same(self, pipe):
        as_dict = generate(pipe)
        as_tuple = pipe(
            REFERENCES[0], POSES, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np",
            return_dict=False,
        )[0]  # fmt: skip
        np.testing.assert_array_equal(as_dict, as_tuple)

    def test_output_shapes_are_diffusers_video_shapes(self, pipe):
        assert generate(pipe).shape == (1, 2, 32, 32, 3)
        assert generate(pipe, output_type="pt").shape == (1, 2, 3, 32, 32)
        assert generate(pipe, output_type="latent").shape == (1, 2, 4, 16, 16)
        pil = generate(pipe, output_type="pil")
        assert len(pil) == 1 and len(pil[0]) == 2 and pil[0][0].size == (32, 32)

    def test_a_batch_of_references_equals_one_call_per_reference(self, pipe):
        generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
        batch = generate(pipe, reference=REFERENCES, generator=generators)
        assert batch.shape == (2, 2, 32, 32, 3)
        for video, (reference, seed) in enumerate(zip(REFERENCES, (0, 1))):
            np.testing.assert_allclose(batch[video], generate(pipe, reference, seed)[0], atol=1e-5)
        assert np.abs(batch[0] - batch[1]).max() > 0.1  # each video its own reference and noise

    def test_num_videos_per_prompt_gives_one_video_per_generator(self, pipe):
        generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
        videos = generate(pipe, generator=generators, num_videos_per_prompt=2)
        assert videos.shape == (2, 2, 32, 32, 3)
        np.testing.assert_allclose(videos[1], generate(pipe, seed=1)[0], atol=1e-5)
        assert np.abs(videos[0] - videos[1]).max() > 0.05
        with pytest.raises(ValueError, match="3 generators for 2 videos"):
            generate(pipe, generator=[torch.Generator()] * 3, num_videos_per_prompt=2)

    def test_callback_on_step_end_sees_and_replaces_the_latents(self, pipe):
        seen = []

        def callback(pipeline, step, timestep, tensors):
            seen.append((step, sorted(tensors)))
            if step == pipeline.num_timesteps - 1:
                return {"latents": torch.zeros_like(tensors["latents"])}
            return {}

        latents = generate(
            pipe, output_type="latent", callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"]
        )
        assert seen == [(0, ["latents"]), (1, ["latents"])]
        assert torch.equal(latents, torch.zeros_like(latents))
        with pytest.raises(ValueError, match="prompt_embeds"):
            generate(pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["prompt_embeds"])

    def test_interrupt_stops_at_the_step_where_it_was_set(self, pipe):
        kept = {}

        def interrupt_after_first(pipeline, step, timestep, tensors):
            if step == 0:
                kept["latents"] = tensors["latents"].clone()
                pipeline._interrupt = True
            return {}

        latents = generate(
            pipe, output_type="latent", num_inference_steps=3, callback_on_step_end=interrupt_after_first
        )
        assert pipe.interrupt
        torch.testing.assert_close(latents[0], kept["latents"])
        full = generate(pipe, output_type="latent", num_inference_steps=3)  # the next call starts afresh
        assert not pipe.interrupt and not torch.allclose(full, latents)

    @pytest.mark.slow
    def test_model_cpu_offload_changes_no_frame(self):
        pipe = quiet(MagicPosePipeline(**get_dummy_components()))
        expected = generate(pipe)
        # On a CPU-only machine the hooks run but have nowhere to move to; on a GPU they move each network.
        device = "cuda" if torch.cuda.is_available() else "cpu"
        pipe.enable_model_cpu_offload(device=device)
        np.testing.assert_allclose(generate(pipe), expected, atol=1e-5)

    @pytest.mark.slow
    def test_bfloat16_runs_and_stays_close_to_float32(self):
        pipe = quiet(MagicPosePipeline(**get_dummy_components()))
        expected = generate(pipe)
        half = generate(pipe.to(torch.bfloat16))
        assert half.dtype == np.float32 and np.isfinite(half).all()
        assert np.abs(half - expected).mean() < 0.005  # measured 0.0026 (max 0.016) on 2 CPU cores

    @pytest.mark.slow
    def test_attention_toggles_keep_the_reference_or_fail_with_the_reason(self):
        pipe = quiet(MagicPosePipeline(**get_dummy_components()))
        expected = generate(pipe)
        # The reference matters (tiny random weights move pixels by ~7e-3); every tolerance below is 100x smaller.
        assert np.abs(generate(pipe, reference=REFERENCES[1]) - expected).max() > 1e-3

        pipe.enable_attention_slicing(1)
        sliced, seen = generate_seeing_processors(pipe)
        assert isinstance(seen["base"], MultiSourceAttnProcessor) and seen["base"].inner.slice_size == 1
        # Between calls the UNets hold the user's processors themselves (what diffusers' methods expect)
        assert pipe.unet.attn_processors[SPATIAL_ATTN1] is seen["base"].inner
        np.testing.assert_allclose(sliced, expected, atol=1e-5)
        pipe.disable_attention_slicing()
        np.testing.assert_array_equal(generate(pipe), expected)

        pipe.unet.set_attn_processor(AttnProcessor())
        np.testing.assert_allclose(generate(pipe), expected, atol=1e-5)
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        pipe.appearance_control.set_attn_processor(AttnProcessor2_0())
        frames, seen = generate_seeing_processors(pipe)
        np.testing.assert_array_equal(frames, expected)
        assert isinstance(seen["appearance"], ReferenceWriteProcessor)
        assert isinstance(pipe.appearance_control.attn_processors[SPATIAL_ATTN1], AttnProcessor2_0)

        pipe.fuse_qkv_projections()
        fused, seen = generate_seeing_processors(pipe)
        assert type(seen["base"].inner).__name__ == "FusedAttnProcessor2_0"
        np.testing.assert_allclose(fused, expected, atol=1e-5)
        pipe.unfuse_qkv_projections()
        np.testing.assert_allclose(generate(pipe), expected, atol=1e-5)

        try:
            import xformers  # noqa: F401
        except ImportError:
            with pytest.raises((ImportError, ModuleNotFoundError), match="xformers"):
                pipe.enable_xformers_memory_efficient_attention()
        else:
            pipe.enable_xformers_memory_efficient_attention()
            np.testing.assert_allclose(generate(pipe), expected, atol=1e-3)
            pipe.disable_xformers_memory_efficient_attention()

        # diffusers resets only processors it knows: between calls the UNets hold only those
        pipe.enable_attention_slicing(1)
        generate(pipe)
        pipe.unet.set_default_attn_processor()
        pipe.appearance_control.set_default_attn_processor()
        frames, seen = generate_seeing_processors(pipe)
        assert type(seen["base"].inner) is AttnProcessor
        np.testing.assert_allclose(frames, expected, atol=1e-5)
        pipe.disable_attention_slicing()  # the pose ControlNet's processors too

        class Custom:  # a processor of the user's own that knows nothing of the reference
            def __call__(self, attn, hidden_states, **kwargs):
                return AttnProcessor2_0()(attn, hidden_states, **kwargs)

        pipe.unet.set_attn_processor(Custom())
        with pytest.raises(ValueError, match="Custom .* cannot attend to the reference"):
            generate(pipe)
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        np.testing.assert_array_equal(generate(pipe), expected)
