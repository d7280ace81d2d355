"""Frechet distance between two feature sets: the core of FID, FID-VID and FVD."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, Eq. 6; Dowson & Landau 1982):

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))

    The matrix square root comes from scipy; when it is not finite, `eps` is added to the
    diagonals first (as pytorch-fid does), and a negligible imaginary part from round-off is dropped.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics differ in size: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular products, handled just below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of a (N, D) feature matrix, N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"a Frechet distance needs at least two feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance_of_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two (N, D) feature sets.

    With fewer samples than dimensions (per-video FID, FID-VID, FVD) the covariances have rank
    below D and Tr((S1 S2)^(1/2)) equals the nuclear norm of A B^T / sqrt((n1-1)(n2-1)), A and B
    the centred features: the non-zero eigenvalues of S1 S2 are the squared singular values of
    that n1 x n2 matrix. This is exact, and avoids a D x D square root (about 20 s at D = 2048).
    """
    a = np.asarray(features1, dtype=np.float64)
    b = np.asarray(features2, dtype=np.float64)
    mu1, sigma1 = feature_statistics(a)
    mu2, sigma2 = feature_statistics(b)
    if max(len(a), len(b)) > a.shape[1]:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    centred1, centred2 = a - mu1, b - mu2
    cross = centred1 @ centred2.T / np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_sqrt = np.linalg.svd(cross, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
