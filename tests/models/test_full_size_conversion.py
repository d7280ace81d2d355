"""Every key of the full-size official checkpoint lands in a full-size component of the right shape.

Built on the meta device from the key list in ../shared/reference/magicdance/full_keys.json: no memory,
nothing downloaded.
"""

import json

import pytest

from magicpose.models.official_checkpoint import convert_official_state_dict
from tests.meta_checkpoint import component_shapes, meta_state_dict
from tests.reference_data import reference_path


@pytest.fixture(scope="module")
def converted():
    return convert_official_state_dict(meta_state_dict(reference_path("magicdance", "full_keys.json")))


def test_every_parameter_of_every_full_size_component_gets_a_value_of_its_shape(converted):
    assert set(converted.state_dicts) == {"unet", "appearance_control", "pose_control", "vae", "text_encoder"}
    for name, state in converted.state_dicts.items():
        expected = component_shapes(name, converted.configs[name])
        assert set(state) == set(expected), name
        assert all(state[key].shape == expected[key] for key in state), name


def test_every_full_size_key_is_consumed(converted):
    listing = json.loads(reference_path("magicdance", "full_keys.json").read_text())
    total = len(listing["keys"])
    assert total == 2182
    converted_count = sum(len(state) for state in converted.state_dicts.values())
    assert converted_count + len(converted.unused) == total
    elements = {entry["key"]: entry["shape"] for entry in listing["keys"]}
    used = sum(_numel(shape) for key, shape in elements.items() if key not in converted.unused)
    assert used == sum(v.numel() for state in converted.state_dicts.values() for v in state.values())


def _numel(shape):
    count = 1
    for size in shape:
        count *= size
    return count
