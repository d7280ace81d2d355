"""Fixtures for the evaluation tests (helpers live in evaluation_helpers.py)."""

import numpy as np
import pytest
from evaluation_helpers import REFERENCE


@pytest.fixture
def astronaut() -> np.ndarray:
    path = REFERENCE / "real_media" / "astronaut.png"
    if not path.exists():
        pytest.skip(f"reference image {path} is absent (clone shared/ beside the repository)")
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))
