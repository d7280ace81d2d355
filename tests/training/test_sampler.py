from magicpose.training.data import StepBatches


def _take(sampler, n):
    iterator = iter(sampler)
    return [next(iterator) for _ in range(n)]


def test_ranks_get_disjoint_samples_and_resume_continues_the_same_stream():
    ranks = [StepBatches(40, 3, rank, 2, seed=7) for rank in range(2)]
    steps = [_take(sampler, 6) for sampler in ranks]
    for a, b in zip(*steps):
        assert not set(a) & set(b)
    everything = [i for step in zip(*steps) for batch in step for i in batch]
    assert sorted(everything[:36]) == sorted(set(everything[:36]))  # one epoch of 40 covers 36 without repeats
    resumed = _take(StepBatches(40, 3, 1, 2, seed=7, start=4), 2)
    assert resumed == steps[1][4:6]
    assert _take(StepBatches(40, 3, 0, 2, seed=8), 2) != steps[0][:2]
