"""data/loader.py: the seeded, resumable, DDP-sharded training sampler, class balancing, and the evaluation sampler."""

import numpy as np
import pytest

from data.loader import EvalSampler, TrainSampler


def test_train_sampler_is_a_function_of_seed_and_epoch():
    sampler = TrainSampler(10, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(p for p, _ in first) == list(range(10))  # a permutation
    assert len({s for _, s in first}) == 10
    again = TrainSampler(10, seed=3)
    again.set_epoch(1)
    assert list(again) == first
    again.set_epoch(2)
    assert list(again) != first
    other_seed = TrainSampler(10, seed=4)
    other_seed.set_epoch(1)
    assert list(other_seed) != first

    sampler.set_epoch(1, skip=4)
    assert len(sampler) == 6
    assert list(sampler) == first[4:]


def test_train_sampler_ranks_cover_the_padded_epoch():
    whole = TrainSampler(11, seed=0)
    whole.set_epoch(5)
    full = list(whole)
    padded = full + full[:1]  # 11 rows -> 12, wrapped as DistributedSampler does
    ranks = [TrainSampler(11, seed=0, rank=r, world_size=2) for r in (0, 1)]
    shares = []
    for sampler in ranks:
        sampler.set_epoch(5)
        assert len(sampler) == 6
        shares.append(list(sampler))
    assert shares[0] == padded[0::2] and shares[1] == padded[1::2]
    ranks[1].set_epoch(5, skip=2)
    assert list(ranks[1]) == shares[1][2:]


def test_balanced_sampler_draws_classes_equally():
    labels = np.array([0] * 1800 + [1] * 200)
    balanced = TrainSampler(2000, seed=0, labels=labels)
    drawn = np.array([p for p, _ in balanced])
    assert len(drawn) == 2000
    fake_share = labels[drawn].mean()
    assert abs(fake_share - 0.5) < 0.05
    plain = np.array([p for p, _ in TrainSampler(2000, seed=0)])
    assert labels[plain].mean() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="empty"):
        TrainSampler(0, seed=0)


def test_eval_sampler_covers_every_row_once():
    shares = [list(EvalSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(shares, [])) == list(range(10))
    assert [len(EvalSampler(10, rank=r, world_size=3)) for r in range(3)] == [4, 3, 3]
