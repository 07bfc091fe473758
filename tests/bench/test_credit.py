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


def test_dapo_refills_the_dropped_groups_up_to_its_cap():
    """DAPO's dynamic sampling: an update of a +dapo scheme draws groups until ``groups`` survive the filter
    (at most ``dapo_max_draws * groups``); without the filter every update draws exactly ``groups``."""
    cfg = CreditConfig(steps=6, groups=4, group_size=4)
    plain = train_scheme(make_task("search"), "grpo", 0, cfg)
    dapo = train_scheme(make_task("search"), "grpo+dapo", 0, cfg)
    assert plain["groups_per_step"] == 4.0
    # the search task starts at success 1/8: many groups of 4 all fail, and each is replaced
    assert 4.0 < dapo["groups_per_step"] <= 16.0 and dapo["zero_adv_frac"] > 0
    capped = train_scheme(make_task("search"), "grpo+dapo", 0, CreditConfig(steps=6, groups=4, group_size=4,
                                                                              dapo_max_draws=1))
    assert capped["groups_per_step"] == 4.0  # a cap of one draw per group: the filter only drops
    with pytest.raises(ConfigError, match="dapo_max_draws"):
        CreditConfig(dapo_max_draws=0)


def test_groups_to_target_counts_the_groups_drawn_before_the_target():
    cfg = CreditConfig(steps=40, groups=4, group_size=4)
    plain = train_scheme(make_task("chain"), "grpo", 0, cfg)
    assert plain["steps_to_target"] is not None and plain["groups_to_target"] == 4 * plain["steps_to_target"]
    dapo = train_scheme(make_task("chain"), "grpo+dapo", 0, cfg)
    assert dapo["groups_to_target"] >= 4 * dapo["steps_to_target"] and dapo["groups_drawn"] <= 40 * 16
    never = train_scheme(make_task("search"), "grpo", 0, CreditConfig(steps=2, groups=2, group_size=2))
    assert never["groups_to_target"] is None and never["groups_drawn"] == 4
    row = run_credit(["grpo"], [0], CreditConfig(steps=2, groups=2, group_size=2), tasks=["search"])["rows"][0]
    assert row["groups_to_target"] == 4.0  # censored at every group the run drew
