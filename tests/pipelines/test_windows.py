"""Sliding windows for long videos: coverage, blending weights, and exactness where frames are independent."""

import pytest
import torch

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.motion_module import build_motion_unet
from magicpose.pipelines.image_guidance import image_guidance
from magicpose.pipelines.windows import blend_windows, denoise_in_windows, sliding_windows, window_weights
from tests.dummy_components import get_dummy_components
from tests.motion_helpers import build_motion_adapter


@pytest.mark.parametrize("window, overlap", [(16, 4), (24, 4), (4, 2), (5, 0), (3, 2)])
@pytest.mark.parametrize("num_frames", [1, 2, 3, 4, 5, 15, 16, 17, 20, 28, 29, 41, 100])
def test_windows_cover_every_frame_with_full_windows(num_frames, window, overlap):
    windows = sliding_windows(num_frames, window, overlap)
    covered = sorted({frame for frames in windows for frame in frames})
    assert covered == list(range(num_frames))
    assert all(len(frames) == min(window, num_frames) for frames in windows)
    assert windows[0].start == 0 and windows[-1].stop == num_frames  # the last window is aligned to the end
    for left, right in zip(windows, windows[1:]):
        assert left.start < right.start and left.stop - right.start >= overlap  # neighbours overlap enough


def test_windows_step_by_window_minus_overlap():
    assert [(w.start, w.stop) for w in sliding_windows(40, 16, 4)] == [(0, 16), (12, 28), (24, 40)]
    assert [(w.start, w.stop) for w in sliding_windows(20, 16, 4)] == [(0, 16), (4, 20)]


@pytest.mark.parametrize("bad", [dict(num_frames=0), dict(window=0), dict(overlap=16), dict(overlap=-1)])
def test_bad_window_arguments_are_refused(bad):
    arguments = dict(num_frames=10, window=16, overlap=4) | bad
    with pytest.raises(ValueError):
        sliding_windows(**arguments)


@pytest.mark.parametrize("shape", ["ramp", "triangular"])
@pytest.mark.parametrize("length, overlap", [(16, 4), (24, 4), (5, 2), (3, 4), (1, 0)])
def test_weights_are_positive_and_symmetric(shape, length, overlap):
    weights = window_weights(length, overlap, shape)
    assert weights.shape == (length,) and bool((weights > 0).all()) and bool((weights <= 1).all())
    torch.testing.assert_close(weights, weights.flip(0))


def test_ramps_of_neighbours_overlapping_by_overlap_sum_to_one():
    window, overlap = 16, 4
    weights = window_weights(window, overlap)
    torch.testing.assert_close(weights[-overlap:] + weights[:overlap], torch.ones(overlap))
    assert bool((weights[overlap:-overlap] == 1).all())


@pytest.mark.parametrize("shape", ["ramp", "triangular"])
@pytest.mark.parametrize("num_frames", [7, 16, 29, 50])
def test_normalised_weights_sum_to_one_per_frame(num_frames, shape):
    blended = blend_windows(lambda frames: torch.ones(len(frames), 1), num_frames, 16, 4, shape)
    torch.testing.assert_close(blended, torch.ones(num_frames, 1))


def test_blending_identical_windows_is_the_identity():
    """Where every window predicts the same values for a frame, the blend returns them."""
    values = torch.randn(37, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    calls = []

    def predict(frames):
        calls.append(frames)
        return values[frames.start : frames.stop]

    torch.testing.assert_close(blend_windows(predict, 37, 16, 4), values)
    assert len(calls) == len(sliding_windows(37, 16, 4)) > 2


def test_overlap_blends_disagreeing_windows_between_them():
    """Where windows disagree, overlap frames land between the two predictions, ramping from one to the other."""
    blended = blend_windows(lambda frames: torch.full((len(frames), 1), float(frames.start > 0)), 28, 16, 4)
    assert bool((blended[:12] == 0).all()) and bool((blended[16:] == 1).all())
    overlap = blended[12:16, 0]
    assert bool((overlap > 0).all() and (overlap < 1).all() and (overlap.diff() > 0).all())


class RecordingModel:
    """A `MagicPoseModel`-shaped callable: eps = 2 x (+ pose mean when conditional); records batch sizes."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, context, pose_images=None, reference_features=None):
        self.batches.append(x.shape[0])
        eps = 2 * x
        if pose_images is not None:
            eps = eps + pose_images.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
        return eps


def test_a_video_shorter_than_the_window_is_one_clip():
    model = RecordingModel()
    latents, poses = torch.randn(5, 4, 2, 2), torch.rand(5, 3, 16, 16)
    eps = denoise_in_windows(model, latents, 10, torch.zeros(1, 1, 1), poses, {}, guidance_scale=3.0)
    assert model.batches == [5, 5]  # conditional and unconditional, each once over the whole clip
    expected = image_guidance(
        lambda: model(latents, 10, None, pose_images=poses), lambda: model(latents, 10, None), 3.0
    )
    torch.testing.assert_close(eps, expected)


@pytest.fixture(scope="module")
def components():
    return get_dummy_components()


@pytest.fixture(scope="module")
def step_inputs(components):
    generator = torch.Generator().manual_seed(2)
    frames = 6
    latents = torch.randn(frames, 4, 8, 8, generator=generator)
    return dict(
        latents=latents,
        reference=torch.randn(1, 4, 8, 8, generator=generator),
        poses=torch.rand(frames, 3, 64, 64, generator=generator),
        context=torch.randn(1, 77, 32, generator=generator),
    )


@pytest.mark.slow
def test_windows_with_a_2d_unet_equal_plain_per_frame_denoising(components, step_inputs):
    """Without temporal layers frames are independent: blending windows changes nothing."""
    model = MagicPoseModel(components["unet"], components["appearance_control"], components["pose_control"])
    s = step_inputs
    with torch.no_grad():
        features = model.encode_reference(s["reference"], 700, s["context"])
        windowed = denoise_in_windows(
            model, s["latents"], 700, s["context"], s["poses"], features, 7.0, window=4, overlap=2
        )
        plain = image_guidance(
            lambda: model(s["latents"], 700, s["context"], pose_images=s["poses"], reference_features=features),
            lambda: model(s["latents"], 700, s["context"]),
            7.0,
        )
    torch.testing.assert_close(windowed, plain, atol=2e-5, rtol=1e-5)


@pytest.mark.slow
def test_windows_with_a_motion_unet_run_each_window_as_one_clip(components, step_inputs):
    """One window covering the video is exactly the single-clip prediction; smaller windows change it
    (frames of different windows do not see each other), so the motion UNet really gets clips."""
    motion_unet = build_motion_unet(components["unet"], build_motion_adapter("tiny", seed=4, zero_init=False))
    model = MagicPoseModel(motion_unet, components["appearance_control"], components["pose_control"])
    s = step_inputs
    with torch.no_grad():
        features = model.encode_reference(s["reference"], 700, s["context"])
        # Guidance 1 (conditional branch only) keeps this test cheap; the guided path is tested above.
        step = lambda window, overlap: denoise_in_windows(  # noqa: E731
            model, s["latents"], 700, s["context"], s["poses"], features, 1.0, window=window, overlap=overlap
        )
        whole = model(s["latents"], 700, s["context"], pose_images=s["poses"], reference_features=features)
        torch.testing.assert_close(step(16, 4), whole, atol=0, rtol=0)
        assert (step(4, 2) - whole).abs().max() > 1e-4
