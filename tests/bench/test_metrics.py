"""Each benchmark metric on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from rlvr.bench import metrics as M
from rlvr.errors import ConfigError


def test_zero_advantage_and_energy():
    assert M.zero_advantage(np.zeros((2, 3)))
    assert not M.zero_advantage(np.array([[0.0, 1e-3]]))
    # the invalid entry (5.0) is ignored
    assert M.zero_advantage(np.array([[0.0, 5.0]]), np.array([[True, False]]))
    assert M.advantage_energy(np.array([[1.0, -1.0], [2.0, 0.0]]), np.array([[True, True], [True, False]])) == 2.0


def test_success_failure_pairs():
    assert M.success_failure_pairs([True, True, False, False, False]) == 6
    assert M.success_failure_pairs([True] * 4) == 0


def test_spearman_by_hand():
    # ranks of x: 0, 1, 2, 3; ranks of y: 1, 0, 2, 3; d = (1, 1, 0, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert M.spearman([1, 2, 3, 4], [20, 10, 30, 40]) == pytest.approx(0.8)
    # ties take average ranks: x ranks 0.5, 0.5, 2 ; y ranks 0, 1, 2 -> Pearson of the ranks
    assert M.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)
    assert M.spearman([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ConfigError, match="equal length"):
        M.spearman([1, 2], [1, 2, 3])


def test_argmax_hit_shares_ties():
    assert M.argmax_hit([0.1, 2.0, 0.3], [0.0, -1.0, 0.2]) == 1.0
    assert M.argmax_hit([1.0, 1.0, 1.0, 1.0], [0.0, 0.5, 0.0, 0.0]) == 0.25  # outcome-only: 1/T
    assert M.argmax_hit([1.0, 0.0], [0.0, 0.0]) is None


def test_exploit_margin_and_ci():
    assert M.exploit_margin(1.5, 1.0) == 0.5
    assert M.exploit_margin(-0.5, -1.0) == 0.5  # less negative is better: the scale is |J(honest)|
    assert M.exploit_margin(1.0, 0.0) is None
    m, ci = M.mean_ci([1.0, 3.0])
    # mean 2, sd sqrt(2), t(1) = 12.706: half width 12.706 * sqrt(2) / sqrt(2)
    assert m == 2.0 and ci == pytest.approx([2 - 12.706, 2 + 12.706])
    assert M.mean_ci([4.0]) == (4.0, None) and M.mean_ci([]) == (None, None)
