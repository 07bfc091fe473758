"""Advantage estimators on hand-computed examples, plus invariants as property tests."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.agents.trainer.advantages import (
    as_table,
    discounted_returns,
    dual_advantages,
    gigpo_advantages,
    grpo_advantages,
    group_normalize,
    igpo_advantages,
    pure_advantages,
    softmin_weights,
    tempo_advantages,
    turn_advantages,
)
from rlvr.errors import ConfigError

def A(x):
    return pytest.approx(x, abs=2e-5)


R2 = math.sqrt(2) / 2  # 0.7071...


def test_as_table_rejects_holes_nan_and_shape():
    with pytest.raises(ConfigError, match="prefix"):
        as_table([[1.0, 2.0]], [[0, 1]])
    with pytest.raises(ConfigError, match="NaN"):
        as_table([[float("nan")]])
    with pytest.raises(ConfigError, match="2-D"):
        as_table([1.0, 2.0])
    r, m = as_table([[1.0, 5.0]], [[1, 0]])
    assert r.tolist() == [[1.0, 0.0]] and m.tolist() == [[True, False]]


def test_grpo_unbiased_population_and_dr_grpo():
    rewards = [[0.0, 2.0], [0.0, 0.0]]  # returns 2 and 0
    assert grpo_advantages(rewards).tolist() == [[A(R2), A(R2)], [A(-R2), A(-R2)]]  # std sqrt(2)
    pop = grpo_advantages(rewards, std_kind="population")  # std 1
    assert pop.tolist() == [[A(1.0), A(1.0)], [A(-1.0), A(-1.0)]]
    dr = grpo_advantages(rewards, scale_by_std=False)
    assert dr.tolist() == [[1.0, 1.0], [-1.0, -1.0]]


def test_grpo_three_rollouts_with_padding():
    # returns 1, 0, 1 -> mean 2/3, unbiased std sqrt(1/3)
    adv = grpo_advantages([[0, 1], [0, 0], [1, 9]], [[1, 1], [1, 1], [1, 0]], eps=0.0)
    s = math.sqrt(1 / 3)
    assert adv[:, 0].tolist() == [A((1 / 3) / s), A((-2 / 3) / s), A((1 / 3) / s)]
    assert adv[2, 1] == 0.0  # padding stays 0


def test_all_equal_rewards_give_zero_advantages():
    adv = grpo_advantages([[1.0], [1.0], [1.0]])
    assert np.all(adv == 0.0)


def test_discounted_returns():
    r = [[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]
    m = [[1, 1, 1], [1, 1, 0]]
    assert discounted_returns(r, m, 0.5).tolist() == [[1.5, 1.0, 2.0], [0.5, 1.0, 0.0]]
    with pytest.raises(ConfigError, match="gamma"):
        discounted_returns(r, m, 1.5)


def test_turn_level_per_turn_index_normalisation():
    r = [[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]
    m = [[1, 1, 1], [1, 1, 0]]
    adv = turn_advantages(r, m, gamma=0.5)
    # t=0: returns 1.5 / 0.5 -> +-0.7071; t=1: 1 / 1 -> 0; t=2: only rollout 0 reached it -> raw 2
    assert adv.tolist() == [[A(R2), A(0.0), A(2.0)], [A(-R2), A(0.0), 0.0]]


def test_dual_level_matchtir():
    r = [[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]
    m = [[1, 1, 1], [1, 1, 0]]
    adv = dual_advantages(r, m, gamma=0.5)
    # A_traj: returns 3 and 1 -> +-0.7071 ; A_turn as in the previous test
    assert adv.tolist() == [[A(R2), A(R2 / 2), A((R2 + 2) / 2)], [A(-R2), A(-R2 / 2), 0.0]]


PROC = [[0.2, 0.4, 0.0], [0.0, 0.0, 0.0]]
PMASK = [[1, 1, 0], [1, 0, 0]]
MASK = [[1, 1, 1], [1, 1, 0]]


def test_igpo_joint():
    adv = igpo_advantages(PROC, PMASK, [1.0, 0.0], MASK, norm="joint", gamma=1.0, eps=0.0)
    # pool [0.2, 0.4, 0.0 | 1, 0]: mean 0.32, population std sqrt(0.1376)
    s = math.sqrt(0.1376)
    n = lambda x: (x - 0.32) / s  # noqa: E731
    row0 = [n(0.2), n(0.4), n(1.0)]
    row1 = [n(0.0), n(0.0)]
    assert adv[0].tolist() == [A(sum(row0)), A(row0[1] + row0[2]), A(row0[2])]
    assert adv[1].tolist() == [A(sum(row1)), A(row1[1]), 0.0]
    assert adv[0, 2] == A(1.833157)


def test_igpo_separate_and_discount():
    adv = igpo_advantages(PROC, PMASK, [1.0, 0.0], MASK, norm="separate", gamma=1.0, eps=0.0)
    k = 0.2 / math.sqrt(0.08 / 3)  # IG pool [0.2,0.4,0] -> [0, +k, -k]; outcomes [1,0] -> [+1,-1]
    assert adv[0].tolist() == [A(k + 1), A(k + 1), A(1.0)]
    assert adv[1].tolist() == [A(-k - 1), A(-1.0), 0.0]
    half = igpo_advantages(PROC, PMASK, [1.0, 0.0], MASK, norm="separate", gamma=0.5, eps=0.0)
    assert half[0].tolist() == [A(0 + 0.5 * (k + 0.5)), A(k + 0.5), A(1.0)]


def test_igpo_zero_reward_keeps_turn_boundary():
    # All outcomes equal -> normalised outcome is exactly 0, yet every valid turn keeps an entry
    adv = igpo_advantages([[0.5, 0.0], [0.1, 0.0]], [[1, 0], [1, 0]], [1.0, 1.0], [[1, 1], [1, 1]],
                          norm="separate", eps=0.0)
    assert adv.tolist() == [[A(1.0), 0.0], [A(-1.0), 0.0]]
    with pytest.raises(ConfigError, match="separate"):
        igpo_advantages(PROC, PMASK, [1.0, 0.0], MASK, norm="both")


def test_gigpo_anchor_groups():
    r = [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    m = [[1, 1, 1], [1, 1, 0]]
    keys = [["s0", "a", "b"], ["s0", "a"]]
    adv = gigpo_advantages(r, m, keys, gamma=1.0)
    # episode: returns 1 (3 steps) and 0 (2 steps) -> step-weighted mean 0.6 -> A_E = 0.4, -0.6
    # step groups: s0 {1, 0}, a {1, 0} -> +-0.5 ; b singleton -> 0
    assert adv.tolist() == [[A(0.9), A(0.9), A(0.4)], [A(-1.1), A(-1.1), 0.0]]
    adv = gigpo_advantages(r, m, keys, gamma=0.5, cross_steps=False, step_weight=2.0)
    # A_E = +-0.5 ; returns row0 [0.25, 0.5, 1] vs row1 [0, 0] -> s0 +-0.125, a +-0.25
    assert adv.tolist() == [[A(0.75), A(1.0), A(0.5)], [A(-0.75), A(-1.0), 0.0]]


def test_gigpo_groups_same_observation_across_turn_indices():
    r = [[0.0, 1.0], [0.0, 0.0]]
    keys = [["x", "y"], ["y", "x"]]  # y seen at t=1 by rollout 0 and t=0 by rollout 1
    adv = gigpo_advantages(r, None, keys, gamma=1.0, step_weight=1.0)
    # returns row0 [1, 1], row1 [0, 0]; groups x {(0,0)=1,(1,1)=0}, y {(0,1)=1,(1,0)=0} -> +-0.5
    assert adv.tolist() == [[A(1.0), A(1.0)], [A(-1.0), A(-1.0)]]
    with pytest.raises(ConfigError, match="anchor_keys"):
        gigpo_advantages(r, None, [["x"]], gamma=1.0)


def test_softmin_weights():
    w = softmin_weights([[0.0, math.log(3)], [1.0, 9.0]], [[1, 1], [1, 0]], temperature=1.0)
    assert w.tolist() == [[A(0.75), A(0.25)], [A(1.0), 0.0]]


def test_pure_step_baseline_with_outcome():
    pr = [[0.0, math.log(3)], [1.0, 1.0]]
    adv = pure_advantages(pr, None, outcome=[1.0, 0.0], temperature=1.0, baseline="step")
    q = 0.25 * math.log(3)  # rollout 0: weights [0.75, 0.25] -> PR' [0, q]; rollout 1: [0.5, 0.5]
    row0 = [0.0 - 0.5, q - 0.5 + 1.0]  # baseline: other's per-step mean 0.5; outcome 1 - 0
    row1 = [0.5 - q / 2, 0.5 - q / 2 - 1.0]
    assert adv[0].tolist() == [A(row0[0] + row0[1]), A(row0[1])]
    assert adv[1].tolist() == [A(row1[0] + row1[1]), A(row1[1])]


def test_pure_token_baseline_and_uniform():
    pr = [[0.0, math.log(3)], [1.0, 1.0]]
    q = 0.25 * math.log(3)
    adv = pure_advantages(pr, None, temperature=1.0, baseline="token", token_counts=[[2, 2], [1, 3]])
    assert adv[0].tolist() == [A(-0.5 + q - 0.5), A(q - 0.5)]  # baseline 1/4 per token
    assert adv[1].tolist() == [A(0.5 - q / 4 + 0.5 - 3 * q / 4), A(0.5 - 3 * q / 4)]
    uni = pure_advantages([[1.0, -1.0], [0.0, 0.0]], None, weighted=False)
    # uniform: totals 0 and 0 -> baseline 0 -> reverse cumsum of raw rewards
    assert uni.tolist() == [[0.0, -1.0], [0.0, 0.0]]
    with pytest.raises(ConfigError, match="token_counts"):
        pure_advantages(pr, None, baseline="token")


def test_tempo_branching_td():
    r = [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    m = [[1, 1], [1, 1], [1, 0]]
    keys = [["A", "B"], ["A", "C"], ["D"]]
    adv = tempo_advantages(r, m, keys, scale_by_std=False)
    # A_hat = [1/3, -2/3, 1/3]; V(root)=0, V(A)=-1/6, V(AB)=1/3, V(AC)=-2/3, V(D)=1/3
    assert adv.tolist() == [[A(1 / 6), A(5 / 6)], [A(-5 / 6), A(-7 / 6)], [A(2 / 3), 0.0]]


def test_tempo_no_branch_reduces_to_grpo():
    r = [[0.0, 1.0], [0.0, 0.0]]
    keys = [["A", "B"], ["A", "B"]]
    assert np.allclose(tempo_advantages(r, None, keys), grpo_advantages(r))


def test_group_normalize_singleton_modes():
    assert group_normalize(np.array([3.0]), singleton="zero").tolist() == [0.0]
    assert group_normalize(np.array([3.0]), singleton="raw").tolist() == [3.0]
    with pytest.raises(ConfigError, match="std_kind"):
        group_normalize(np.array([1.0, 2.0]), std_kind="sample")


tables = st.integers(2, 6).flatmap(lambda g: st.integers(1, 5).flatmap(lambda t: st.tuples(
    st.lists(st.lists(st.floats(-5, 5, allow_nan=False), min_size=t, max_size=t), min_size=g, max_size=g),
    st.lists(st.integers(1, t), min_size=g, max_size=g),
)))


def _mask(lengths, t):
    return np.arange(t)[None, :] < np.array(lengths)[:, None]


@settings(max_examples=60, deadline=None)
@given(tables)
def test_properties_zero_on_padding_and_zero_mean_outcome(data):
    rows, lengths = data
    r = np.array(rows)
    m = _mask(lengths, r.shape[1])
    for adv in (grpo_advantages(r, m), turn_advantages(r, m), dual_advantages(r, m),
                gigpo_advantages(r, m, [[str(x) for x in row] for row in rows]),
                pure_advantages(r, m, outcome=r[:, 0]),
                tempo_advantages(r, m, [[round(x, 1) for x in row] for row in rows]),
                igpo_advantages(r, m & _mask(np.array(lengths) - 1, r.shape[1]), r[:, 0], m)):
        assert np.all(adv[~m] == 0.0) and np.all(np.isfinite(adv))
    g = grpo_advantages(r, m, scale_by_std=False)[:, 0]
    assert abs(g.mean()) < 1e-9
    # shifting every reward of the group by a constant leaves the outcome advantage unchanged
    shifted = np.where(m, r + 3.0, 0.0)
    shift_total = 3.0 * m.sum(axis=1)
    if np.all(shift_total == shift_total[0]):
        assert np.allclose(grpo_advantages(shifted, m), grpo_advantages(r, m), atol=1e-6)
