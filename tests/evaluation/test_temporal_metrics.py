import numpy as np
import pytest

from magicpose.evaluation.temporal_metrics import frame_difference_error, static_flicker
from magicpose.evaluation.video_features import split_into_clips


def _frames(seed: int, count: int = 2, size: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def test_a_video_that_changes_as_the_truth_does_has_no_frame_difference_error():
    truth = [frame // 2 for frame in _frames(0)]
    assert frame_difference_error(*truth, *truth) == 0.0
    # a constant offset on every frame is a per-frame error, not a temporal one
    brighter = [frame + 40 for frame in truth]
    assert frame_difference_error(*brighter, *truth) == 0.0
    # floats in [0, 1] are read as levels / 255
    as_floats = [frame / 255.0 for frame in brighter]
    assert frame_difference_error(*as_floats, *truth) == pytest.approx(0.0, abs=1e-9)


def test_a_frozen_video_misses_the_whole_true_change():
    truth = _frames(1)
    expected = np.abs(truth[1].astype(float) - truth[0].astype(float)).mean()
    assert frame_difference_error(truth[0], truth[0], *truth) == pytest.approx(expected)
    assert frame_difference_error(truth[0], truth[0], *truth) > 50  # uniform noise frames differ by ~85 levels


def test_flicker_counts_change_only_where_the_scene_is_still():
    still = np.full((8, 8, 3), 100, np.uint8)
    flickering = still.copy()
    flickering[:, :4] += 10  # the left half changes by 10 levels
    left = np.zeros((8, 8), bool)
    left[:, :4] = True
    assert static_flicker(still, flickering, left) == pytest.approx(10.0)
    assert static_flicker(still, flickering, ~left) == 0.0
    assert np.isnan(static_flicker(still, flickering, np.zeros((8, 8), bool)))


def test_mismatched_shapes_are_errors():
    a, b = _frames(2)
    with pytest.raises(ValueError, match="do not match"):
        frame_difference_error(a, b, a[:8], b[:8])
    with pytest.raises(ValueError, match="does not match"):
        static_flicker(a, b, np.ones((4, 4), bool))


@pytest.mark.parametrize(
    ("count", "pad_last", "expected"),
    [
        (0, True, []),
        (3, False, [[0, 1, 2, 2]]),  # shorter than a clip: padded under both protocols
        (9, True, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 8, 8, 8]]),  # disco pads the last clip with the final frame
        (9, False, [[0, 1, 2, 3], [4, 5, 6, 7]]),  # clean drops it
        (8, False, [[0, 1, 2, 3], [4, 5, 6, 7]]),
    ],
)
def test_videos_split_into_whole_clips(count, pad_last, expected):
    assert split_into_clips(count, 4, pad_last=pad_last) == expected
