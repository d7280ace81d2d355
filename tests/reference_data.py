"""Where the shared oracle data lives: ../shared/reference beside the repository (as in CI)."""

from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_path(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared reference data not found at {path} (clone the project beside shared/)")
    return path
