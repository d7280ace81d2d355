"""Metrics that only a synthetic world allows: it knows the person mask, the part labels and the empty scene.

All functions take (H, W, 3) uint8 RGB images (or float in [0, 1]) and (H, W) boolean masks, and
are pure. Masked PSNR/SSIM measure appearance where the person is, undiluted by an easy
background; mask IoU measures how well the pose was followed; identity colour error measures
whether skin, hair and clothes kept their colours.
"""

from __future__ import annotations

import cv2
import numpy as np

from magicpose.data.puppet.parts import IDENTITY_REGIONS


def _unit(image: np.ndarray) -> np.ndarray:
    """Images as float64 in [0, 1] (uint8 is divided by 255)."""
    array = np.asarray(image)
    return array.astype(np.float64) / 255.0 if array.dtype == np.uint8 else array.astype(np.float64)


def _mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {shape[:2]}")
    return mask


def masked_psnr(generated: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 1) over the pixels of `mask`, all channels: 10 log10(1 / mean((g - t)^2)).

    An empty mask has no error to measure and gives nan; identical images give inf.
    """
    g, t = _unit(generated), _unit(target)
    region = _mask(mask, g.shape)
    if not region.any():
        return float("nan")
    mse = float(((g - t)[region] ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim_map(generated: np.ndarray, target: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, peak 1,
    averaged over channels; population statistics, as `skimage.metrics.structural_similarity(gaussian_weights=True,
    use_sample_covariance=False)`. Returns (H, W)."""
    g, t = _unit(generated), _unit(target)
    if g.ndim == 2:
        g, t = g[..., None], t[..., None]
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), sigma, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for channel in range(g.shape[2]):
        x, y = g[..., channel], t[..., channel]
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        maps.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return np.mean(maps, axis=0)


def masked_ssim(generated: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean of `ssim_map` over the pixels of `mask` (nan for an empty mask)."""
    region = _mask(mask, np.shape(generated))
    if not region.any():
        return float("nan")
    return float(ssim_map(generated, target)[region].mean())


def person_mask_from_background(image: np.ndarray, background: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """The person in a generated frame: pixels that differ from the known empty scene.

    A pixel is "person" when any channel differs from the background by more than `threshold`
    (of the full range); a 3x3 opening then removes isolated noise pixels and a 3x3 closing fills
    pinholes. The world renders the same scene without the person, so this needs no segmenter.
    A generator that damages the background pays for it here as false positives.
    """
    difference = np.abs(_unit(image) - _unit(background)).max(axis=2) > threshold
    kernel = np.ones((3, 3), np.uint8)
    cleaned = cv2.morphologyEx(difference.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, kernel).astype(bool)


def mask_iou(first: np.ndarray, second: np.ndarray) -> float:
    """|A and B| / |A or B| of two boolean masks; two empty masks agree perfectly (1.0)."""
    a, b = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} and {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _mean_lab(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    mean = _unit(image)[region].mean(0).astype(np.float32).reshape(1, 1, 3)
    return cv2.cvtColor(mean, cv2.COLOR_RGB2Lab).reshape(3).astype(np.float64)


def identity_colour_error(
    generated: np.ndarray, target: np.ndarray, parts: np.ndarray, erode: int = 1, min_pixels: int = 4
) -> dict[str, float]:
    """CIE76 colour difference (Delta E in CIELAB, ~2.3 is just noticeable) between the mean colour of
    each identity region in the generated frame and in the ground truth.

    Regions (skin, hair, top, bottom) come from the ground-truth part map `parts`, eroded by
    `erode` pixels so that a slightly different outline does not mix in a neighbour's colour.
    A region with fewer than `min_pixels` pixels in this frame is left out of the result.
    """
    labels = np.asarray(parts)
    errors = {}
    kernel = np.ones((3, 3), np.uint8)
    for name, members in IDENTITY_REGIONS.items():
        region = np.isin(labels, [int(m) for m in members]).astype(np.uint8)
        if erode > 0:
            region = cv2.erode(region, kernel, iterations=erode)
        region = region.astype(bool)
        if region.sum() < min_pixels:
            continue
        errors[name] = float(np.linalg.norm(_mean_lab(generated, region) - _mean_lab(target, region)))
    return errors


def puppet_frame_scores(
    generated: np.ndarray, target: np.ndarray, mask: np.ndarray, parts: np.ndarray, background: np.ndarray
) -> dict[str, float]:
    """Every puppet metric of one generated frame against its ground truth, in one flat dict:
    masked_psnr, masked_ssim, mask_iou (generated person found against `background`) and
    colour_<region> for each identity region present."""
    scores = {
        "masked_psnr": masked_psnr(generated, target, mask),
        "masked_ssim": masked_ssim(generated, target, mask),
        "mask_iou": mask_iou(person_mask_from_background(generated, background), mask),
    }
    scores.update({f"colour_{name}": value for name, value in identity_colour_error(generated, target, parts).items()})
    return scores
