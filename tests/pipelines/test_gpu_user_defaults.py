"""What GPU users run by default, checked on the CPU: half precision, model CPU offload, VAE tiling,
a save/load round trip, the model folder's own recipe, bounded frames per call, and recorded values."""

import json

import numpy as np
import pytest
import torch

from magicpose.models.motion_module import build_motion_unet, save_motion_adapter
from magicpose.pipelines.assembly import load, sampling_recipe, save_pipeline_atomically
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components
from tests.motion_helpers import build_motion_adapter

REFERENCE = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
POSES = [np.random.default_rng(10 + i).integers(0, 255, (128, 128, 3), dtype=np.uint8) for i in range(3)]


def frames(pipe, **kwargs) -> np.ndarray:
    options = dict(num_inference_steps=2, generator=torch.Generator().manual_seed(42), output_type="np")
    return np.asarray(pipe(REFERENCE, POSES, **{**options, **kwargs}).frames[0])


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny model folder with a recipe of its own (not the official one)."""
    folder = tmp_path_factory.mktemp("model") / "model"
    pipe = MagicPosePipeline(
        **get_dummy_components(), num_inference_steps=3, guidance_scale=2.5, start_from_reference=True
    )
    save_pipeline_atomically(pipe, folder)
    return folder


def quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_model_folder_recipe_is_what_call_uses_and_flags_override_it(model_folder):
    saved = json.loads((model_folder / "model_index.json").read_text())
    assert (saved["num_inference_steps"], saved["guidance_scale"], saved["start_from_reference"]) == (3, 2.5, True)
    assert sampling_recipe(model_folder)["num_inference_steps"] == 3  # read without loading weights
    pipe = quiet(load(model_folder, device="cpu"))
    assert pipe.recipe()["guidance_scale"] == 2.5
    calls = []
    hook = pipe.appearance_control.register_forward_hook(lambda *args: calls.append(1))  # one pass per step
    try:
        by_recipe = frames(pipe, num_inference_steps=None)
    finally:
        hook.remove()
    assert len(calls) == 3
    assert np.array_equal(
        by_recipe, frames(pipe, num_inference_steps=3, guidance_scale=2.5, start_from_reference=True)
    )
    assert not np.allclose(by_recipe, frames(pipe, num_inference_steps=3, guidance_scale=7.0), atol=1e-4)


def test_the_embedded_and_the_official_recipes():
    embedded = sampling_recipe()
    assert (embedded["num_inference_steps"], embedded["guidance_scale"], embedded["start_from_reference"]) == (
        10,
        3.0,
        True,
    )
    official = MagicPosePipeline(**get_dummy_components()).recipe()
    assert official == dict(
        num_inference_steps=50,
        guidance_scale=7.0,
        guidance_interval=None,
        start_from_reference=False,
        window_frames=16,
        window_overlap=4,
    )


def test_save_then_load_gives_identical_frames(model_folder, tmp_path):
    pipe = quiet(load(model_folder, device="cpu"))
    save_pipeline_atomically(pipe, tmp_path / "again")
    assert np.array_equal(frames(pipe), frames(quiet(load(tmp_path / "again", device="cpu"))))


def test_recorded_frame_values(model_folder):
    """A few pixels of a tiny model's output: a change in pre- or post-processing, the scheduler or the
    wiring of the networks shows here even when every shape is right."""
    out = frames(quiet(load(model_folder, device="cpu")))
    assert out.shape == (3, 32, 32, 3)
    picked = out[[0, 1, 2], [0, 15, 31], [0, 16, 31]]  # (3 frames, 3 channels)
    torch.testing.assert_close(torch.from_numpy(picked), torch.tensor(RECORDED), atol=2e-4, rtol=0)


RECORDED = [[0.40507, 0.43758, 0.61102], [0.28139, 0.58305, 0.50194], [0.40972, 0.43000, 0.54754]]


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.06), (torch.float16, 0.02)])
def test_half_precision_matches_float32(model_folder, dtype, tolerance):
    full = frames(quiet(load(model_folder, device="cpu", dtype="float32")))
    try:
        half_pipe = quiet(load(model_folder, device="cpu", dtype=dtype))
        half = frames(half_pipe)
    except RuntimeError as error:  # a CPU kernel missing for this dtype
        pytest.skip(f"{dtype} does not run on this CPU build: {error}")
    assert half_pipe.unet.dtype == dtype and half.dtype == np.float32
    assert np.isfinite(half).all()
    assert np.abs(half - full).mean() < tolerance / 4 and np.abs(half - full).max() < tolerance * 8


def test_cpu_offload_gives_the_same_frames(model_folder):
    plain = frames(quiet(load(model_folder, device="cpu")))
    offloaded = quiet(load(model_folder, device="cpu", cpu_offload=True))
    assert offloaded.offload_plan is not None and offloaded.offload_plan.device.type == "cpu"
    assert np.array_equal(frames(offloaded), plain)


def test_vae_tiling_decodes_a_frame_larger_than_a_tile(model_folder):
    pipe = quiet(load(model_folder, device="cpu"))
    latents = torch.randn(1, 4, 48, 48, generator=torch.Generator().manual_seed(0))
    whole = pipe.decode_latents(latents, chunk_size=1)
    pipe = quiet(load(model_folder, device="cpu", vae_tiling=True))
    pipe.vae.tile_sample_min_size, pipe.vae.tile_latent_min_size = 64, 32  # tiles of 32 latents: 4 of them, blended
    tiled = pipe.decode_latents(latents, chunk_size=1)
    assert pipe.vae.use_tiling and tiled.shape == whole.shape == (1, 3, 96, 96)
    assert 0 < (tiled - whole).abs().mean() < 0.05  # tiles are blended: close, not identical


def test_frame_chunk_bounds_the_frames_per_call_with_a_motion_module(tmp_path):
    components = get_dummy_components()
    pipe = quiet(MagicPosePipeline(**components, window_frames=3, window_overlap=1))
    pipe.unet = build_motion_unet(components["unet"], build_motion_adapter("tiny", seed=3, zero_init=False))
    sizes = []
    resnet = pipe.unet.down_blocks[0].resnets[0]
    hooks = [
        resnet.register_forward_hook(lambda module, args, kwargs, out: sizes.append(out.shape[0]), with_kwargs=True),
        pipe.pose_control.register_forward_hook(lambda module, args, out: sizes.append(-args[0].shape[0])),
    ]
    try:
        whole = frames(pipe, frame_chunk_size=16)
        assert set(sizes) == {3, -3}  # windows of 3 frames through the spatial layers and the ControlNet
        sizes.clear()
        chunked = frames(pipe, frame_chunk_size=1)
        assert set(sizes) == {1, -1}
    finally:
        for hook in hooks:
            hook.remove()
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert not any(".module." in key for key in pipe.unet.state_dict())  # the split wrappers are gone again


def test_a_model_folder_motion_adapter_and_the_pipeline_model_is_built_once(model_folder, tmp_path):
    pipe = load(model_folder, device="cpu")
    from diffusers.models.attention_processor import AttnProcessor2_0

    assert pipe.model is pipe.model  # processors installed once
    attention = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    custom = AttnProcessor2_0()
    attention.set_processor(custom)  # a user's own processor
    pipe.model  # noqa: B018 (a later access must not reinstall the multi-source processors)
    assert attention.processor is custom
    adapter = save_motion_adapter(build_motion_adapter("tiny", seed=1), tmp_path / "motion_adapter")
    with_motion = load(model_folder, device="cpu", motion_adapter=adapter)
    assert with_motion.model.unet is with_motion.unet  # a new UNet gets a new wiring


def test_load_rejects_what_it_cannot_use(tmp_path):
    from magicpose.errors import InputError

    with pytest.raises(InputError, match="does not exist"):
        load(tmp_path / "nowhere", device="cpu")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="neither a model folder nor an official checkpoint"):
        load(tmp_path / "weights.bin", device="cpu")
    with pytest.raises(InputError, match="unknown dtype"):
        load(None, device="cpu", dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="not available"):
            load(None, device="cuda")
