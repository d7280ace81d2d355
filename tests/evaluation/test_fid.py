import numpy as np
import pytest

from magicpose.evaluation.fid import feature_statistics, frechet_distance, frechet_distance_of_features


def test_closed_form_for_one_dimension():
    # For 1-D Gaussians d^2 = (mu1 - mu2)^2 + (s1 - s2)^2.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(
        4 + 1
    )


def test_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)


def test_same_set_is_zero_and_shift_adds_squared_distance():
    features = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance_of_features(features, features) == pytest.approx(0, abs=1e-6)
    shift = np.arange(8.0)
    assert frechet_distance_of_features(features, features + shift) == pytest.approx(shift @ shift, rel=1e-6)


def test_low_rank_path_matches_matrix_square_root():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(12, 30)), rng.normal(1.0, 2.0, size=(9, 30))
    direct = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance_of_features(a, b) == pytest.approx(direct, rel=1e-6)


def test_needs_two_samples():
    with pytest.raises(ValueError, match="at least two"):
        feature_statistics(np.zeros((1, 4)))
