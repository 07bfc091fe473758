"""The credit-assignment microbenchmark: exact ground truth, determinism, and what it should show."""

from __future__ import annotations

import numpy as np
import pytest

from rlvr.bench.credit import CreditConfig, make_task, run_credit, train_scheme
from rlvr.errors import ConfigError


def test_exact_values_of_the_chain():
    task = make_task("chain", seed=0)
    v, q = task.values(np.zeros((task.turns, task.states, task.choices)))
    assert v[0, 0] == pytest.approx(1 / 3)  # the decisive turn picks the right choice 1 time in 3
    assert task.observer[0, 0] == pytest.approx(1 / 3)


def test_search_observer_is_the_exact_posterior():
    task = make_task("search")
    assert task.observer[0, 0] == pytest.approx(1 / 8)
    assert task.observer[2, 0b011] == pytest.approx(1 / 2)
    assert task.success[0b111] == 1.0


def test_unknown_task_and_bad_config_are_errors():
    with pytest.raises(ConfigError, match="unknown synthetic task"):
        make_task("maze")
    with pytest.raises(ConfigError, match="group_size"):
        CreditConfig(group_size=1)


def test_deterministic_under_a_seed():
    cfg = CreditConfig(steps=5, groups=2, group_size=4)
    a = train_scheme(make_task("keydoor", 3), "igpo", 3, cfg)
    b = train_scheme(make_task("keydoor", 3), "igpo", 3, cfg)
    assert a == b
    c = train_scheme(make_task("keydoor", 4), "igpo", 4, cfg)
    assert c["curve_success"] != a["curve_success"] or c["curve_zero_adv"] != a["curve_zero_adv"]


def test_information_gain_lowers_collapse_and_finds_the_decisive_turn():
    cfg = CreditConfig(steps=15, groups=4, group_size=8)
    rows = {r["scheme"]: r for r in run_credit(["grpo", "igpo"], [0, 1], cfg, tasks=["chain"])["rows"]}
    assert rows["igpo"]["zero_adv_frac"] < rows["grpo"]["zero_adv_frac"]
    assert rows["igpo"]["argmax_decisive"] > rows["grpo"]["argmax_decisive"] == pytest.approx(0.25)  # 1 / T
    assert rows["grpo"]["final_success"] > 1 / 3  # it learns at all


def test_dense_farmable_rewards_raise_the_farm_rate():
    cfg = CreditConfig(steps=20, groups=4, group_size=8)
    rows = {r["scheme"]: r for r in run_credit(["grpo", "dra"], [0], cfg, tasks=["chain"])["rows"]}
    assert rows["dra"]["farm_rate"] > rows["grpo"]["farm_rate"] + 0.2
