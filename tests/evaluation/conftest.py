"""Fixtures for the evaluation tests (helpers live in evaluation_helpers.py)."""

import numpy as np
import pytest

from tests.reference_data import reference_path


@pytest.fixture
def astronaut() -> np.ndarray:
    path = reference_path("real_media", "astronaut.png")
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))
