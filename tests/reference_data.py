"""Where the shared oracle data lives: ../shared/reference beside the repository (as in CI).

Without it the oracle tests skip on a developer's machine, but fail in CI (`CI=true`): there, a missing
checkout of the shared data must not pass as a green run with the equivalence tests unrun.
"""

import os
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_path(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        message = f"shared reference data not found at {path} (clone the project beside shared/)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; CI needs it", pytrace=False)
        pytest.skip(message)
    return path
