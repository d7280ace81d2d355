import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from magicpose.evaluation import frame_metrics
from tests.evaluation.evaluation_helpers import noisy, smooth_frames


@pytest.fixture
def pair():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_disco_ssim_is_scikit_image_default_on_opencv_grayscale(pair):
    a, b = pair
    expected = structural_similarity(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))
    assert frame_metrics.ssim(a, b, "disco") == pytest.approx(expected, abs=1e-12)


def test_clean_ssim_is_wang_gaussian_ssim_on_colour(pair):
    a, b = pair
    expected = structural_similarity(
        a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert frame_metrics.ssim(a, b, "clean") == pytest.approx(expected, abs=1e-12)


def test_clean_psnr_is_scikit_image_psnr(pair):
    a, b = pair
    assert frame_metrics.psnr(a, b, "clean") == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)


def test_disco_psnr_reproduces_uint8_wraparound(pair):
    a, b = pair
    # What numpy does to uint8 arrays, written out with Python integers.
    wrapped = [((int(x) - int(y)) % 256) ** 2 % 256 for x, y in zip(a.ravel(), b.ravel())]
    expected = 20 * np.log10(255.0 / np.sqrt(np.mean(wrapped)))
    assert frame_metrics.psnr(a, b, "disco") == pytest.approx(expected, abs=1e-10)
    # The quirk matters: it is not the true PSNR.
    assert abs(frame_metrics.psnr(a, b, "disco") - peak_signal_noise_ratio(a, b, data_range=255)) > 1


def test_identical_frames(pair):
    a, _ = pair
    assert frame_metrics.psnr(a, a, "disco") == 100.0
    assert frame_metrics.psnr(a, a, "clean") == float("inf")
    assert frame_metrics.ssim(a, a, "disco") == pytest.approx(1.0)
    assert frame_metrics.l1(a, a, "clean") == 0.0


def test_l1_conventions(pair):
    a, b = pair
    mean_abs = np.abs(a.astype(float) - b.astype(float)).mean()
    height, width = a.shape[:2]
    assert frame_metrics.l1(a, b, "clean") == pytest.approx(mean_abs / 255)
    assert frame_metrics.l1(a, b, "disco") == pytest.approx(mean_abs / (height * width))


@pytest.mark.parametrize("protocol", ["disco", "clean"])
def test_scores_worsen_monotonically_with_noise(protocol):
    frame = smooth_frames(1, size=48)[0]
    levels = [noisy([frame], sigma, seed=3)[0] for sigma in (2, 8, 32)]
    ssims = [frame_metrics.ssim(f, frame, protocol) for f in levels]
    psnrs = [frame_metrics.psnr(f, frame, protocol) for f in levels]
    l1s = [frame_metrics.l1(f, frame, protocol) for f in levels]
    assert ssims == sorted(ssims, reverse=True) and psnrs == sorted(psnrs, reverse=True)
    assert l1s == sorted(l1s)


def test_match_size_resizes_generated_to_ground_truth():
    generated = np.zeros((64, 48, 3), np.uint8)
    reference = np.zeros((32, 24, 3), np.uint8)
    for protocol in ("disco", "clean"):
        assert frame_metrics.match_size(generated, reference, protocol).shape == reference.shape
    assert frame_metrics.match_size(reference, reference) is reference
