"""SSIM, PSNR and L1 between a generated frame and its ground truth, under two protocols.

``disco`` reproduces the field's evaluation code (DisCo's ``tool/metrics/ssim_l1_lpips_psnr.py``,
used for the TikTok tables of DisCo, MagicPose and their successors) including its quirks:

* SSIM on the *grayscale* uint8 frames (OpenCV's BT.601 conversion), scikit-image defaults:
  7x7 uniform window, sample covariance, data range 255.
* PSNR on *uint8* arrays: ``original - compressed`` and its square wrap around modulo 256 before
  the mean, then ``20 log10(255 / sqrt(mse))`` (100 for identical frames).
* L1: the per-pixel absolute difference in [0, 255] divided by H*W, averaged over pixels and
  channels, i.e. ``mean|a - b| / (H W)``; this is why the tables print L1 around 1e-4.

``clean`` computes the textbook quantities:

* SSIM of Wang et al. (2004) on the colour frames: 11x11 Gaussian window (sigma 1.5), population
  covariance, averaged over the three channels.
* PSNR in floating point, ``10 log10(255^2 / mse)`` (infinite for identical frames).
* L1 as the mean absolute error of intensities in [0, 1].

All functions take uint8 RGB arrays of equal shape (H, W, 3).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

PROTOCOLS = ("disco", "clean")

# Wang et al. (2004), Eq. 6-13: stabilising constants C1 = (K1 L)^2, C2 = (K2 L)^2.
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim_map_mean(x: np.ndarray, y: np.ndarray, data_range: float, gaussian: bool, sample_covariance: bool) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004, Eq. 13), scikit-image's conventions.

    Local statistics come from a 7x7 uniform window or an 11-tap Gaussian (sigma 1.5), and the
    border strip of half a window is left out of the mean, as scikit-image does.
    """
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    if gaussian:
        sigma, truncate = 1.5, 3.5
        win_size = 2 * int(truncate * sigma + 0.5) + 1

        def local_mean(image: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(image, sigma=sigma, truncate=truncate, mode="reflect")

    else:
        win_size = 7

        def local_mean(image: np.ndarray) -> np.ndarray:
            return ndimage.uniform_filter(image, size=win_size)

    if min(x.shape) < win_size:
        raise ValueError(f"SSIM needs frames of at least {win_size}x{win_size} pixels, got {x.shape}")
    points = win_size**2
    cov_norm = points / (points - 1) if sample_covariance else 1.0
    ux, uy = local_mean(x), local_mean(y)
    vx = cov_norm * (local_mean(x * x) - ux * ux)
    vy = cov_norm * (local_mean(y * y) - uy * uy)
    vxy = cov_norm * (local_mean(x * y) - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win_size - 1) // 2
    return float(ssim[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim(generated: np.ndarray, reference: np.ndarray, protocol: str = "clean") -> float:
    """Structural similarity; grayscale with a uniform window (disco) or colour Gaussian SSIM (clean)."""
    if protocol == "disco":
        gray_g = cv2.cvtColor(generated, cv2.COLOR_RGB2GRAY)
        gray_r = cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY)
        return ssim_map_mean(gray_g, gray_r, 255.0, gaussian=False, sample_covariance=True)
    channels = [
        ssim_map_mean(generated[..., c], reference[..., c], 255.0, gaussian=True, sample_covariance=False)
        for c in range(generated.shape[-1])
    ]
    return float(np.mean(channels))


def psnr(generated: np.ndarray, reference: np.ndarray, protocol: str = "clean") -> float:
    """Peak signal-to-noise ratio in dB for 8-bit frames (peak 255)."""
    if protocol == "disco":
        # The field's code subtracts and squares uint8 arrays, so both wrap around modulo 256.
        wrapped = (generated.astype(np.uint8) - reference.astype(np.uint8)) ** 2
        mse = float(np.mean(wrapped))
        return 100.0 if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))
    mse = float(np.mean((generated.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def l1(generated: np.ndarray, reference: np.ndarray, protocol: str = "clean") -> float:
    """Mean absolute difference: in [0, 255] divided by H*W (disco), or in [0, 1] (clean)."""
    difference = np.abs(generated.astype(np.float64) - reference.astype(np.float64))
    if protocol == "disco":
        height, width = generated.shape[:2]
        return float(np.mean(difference / (height * width)))
    return float(np.mean(difference) / 255.0)


def match_size(generated: np.ndarray, reference: np.ndarray, protocol: str = "clean") -> np.ndarray:
    """Resize the generated frame to the ground truth's size when they differ.

    The field's code uses OpenCV's default bilinear resize; under ``clean`` area averaging avoids
    aliasing when the generated frame is larger.
    """
    if generated.shape == reference.shape:
        return generated
    height, width = reference.shape[:2]
    shrinking = generated.shape[0] > height or generated.shape[1] > width
    interpolation = cv2.INTER_AREA if protocol == "clean" and shrinking else cv2.INTER_LINEAR
    return cv2.resize(generated, (width, height), interpolation=interpolation)
