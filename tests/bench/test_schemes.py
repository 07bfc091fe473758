"""The scheme registry: one registered function per scheme, DAPO variants, applicability."""

from __future__ import annotations

import numpy as np
import pytest

from rlvr.bench.schemes import SCHEMES, Episode, NotApplicable, register, resolve_schemes, score_group
from rlvr.errors import ConfigError


def _ep(dense, outcome, **kw):
    return Episode(dense=dense, outcome=outcome, success=outcome > 0, immediate=[d for d in dense], **kw)


def test_every_published_scheme_is_registered():
    for name in ("grpo", "drgrpo", "turn", "dual", "igpo", "igpo-lm", "gigpo", "pure", "tempo", "gra", "dra",
                 "matchtir-hungarian", "matchtir-greedy", "matchtir-sinkhorn", "carr"):
        assert name in SCHEMES
    names = resolve_schemes(["grpo", "gra"])
    assert names == ["grpo", "grpo+dapo", "gra", "gra+dapo"]
    with pytest.raises(ConfigError, match="did you mean"):
        resolve_schemes(["gpro"])


def test_adding_a_scheme_is_one_registered_function():
    @register("test-constant", "every turn gets advantage 1")
    def _fn(group):
        r = np.ones((len(group), 1))
        m = np.ones_like(r, dtype=bool)
        return r, m, np.ones_like(r)

    try:
        res = score_group("test-constant+dapo", [_ep([0.0], 0.0), _ep([0.0], 1.0)])
        assert res.filtered  # every return is 1: the DAPO filter drops the group
        assert not res.advantages.any()
        assert score_group("test-constant", [_ep([0.0], 0.0)]).advantages.tolist() == [[1.0]]
    finally:
        del SCHEMES["test-constant"]


def test_gating_zeroes_immediate_rewards_below_the_gate():
    farmer = _ep([0.5, 0.5], -1.0)  # never reached the outcome: high -1 < gate 0
    solver = _ep([0.1, 0.0], 1.0)
    for e in (farmer, solver):
        e.gate = 0.0
    gra, dra = score_group("gra", [farmer, solver]), score_group("dra", [farmer, solver])
    assert gra.returns.tolist() == pytest.approx([-1.0, 1.1])
    assert dra.returns.tolist() == pytest.approx([0.0, 1.1])


def test_missing_signals_make_a_scheme_not_applicable():
    with pytest.raises(NotApplicable, match="match"):
        score_group("matchtir-hungarian", [_ep([0.0], 1.0)])
    with pytest.raises(NotApplicable, match="process"):
        score_group("igpo", [_ep([0.0], 1.0)])


def test_outcome_grpo_gives_every_turn_the_same_advantage():
    res = score_group("grpo", [_ep([0.0, 0.0], 1.0), _ep([0.0], 0.0)])
    assert res.advantages[0, 0] == res.advantages[0, 1] > 0 > res.advantages[1, 0]
    assert res.advantages[1, 1] == 0.0  # padding


def test_pure_trains_on_min_form_rewards_so_more_steps_of_one_reward_add_nothing():
    few, many = _ep([1.0, 1.0, 0.5], 1.0), _ep([1.0, 1.0, 1.0, 1.0, 1.0, 0.5], 1.0)
    pure = score_group("pure", [few, many]).returns
    assert pure == pytest.approx([1.5, 1.5], abs=0.02)  # ~ min(process rewards) + outcome, for both
    assert abs(pure[1] - pure[0]) < 0.01  # three more steps of reward 1 add under 1%
    w = np.exp(-np.array([1.0, 1.0, 0.5]) / 0.1)
    assert pure[0] == pytest.approx(float((w / w.sum()) @ [1.0, 1.0, 0.5]) + 1.0)  # softmax(-PR/0.1) . PR + outcome
    dra = score_group("dra", [few, many]).returns
    assert dra.tolist() == pytest.approx([3.5, 6.5])  # the sum grows with every step


def test_igpo_lm_reads_the_language_model_gain_and_needs_it():
    a, b = _ep([0.0, 1.0], 1.0, lm_gain=[0.3, 0.0]), _ep([0.0, 1.0], 1.0, lm_gain=[0.1, 0.0])
    res = score_group("igpo-lm", [a, b])
    assert res.returns.tolist() == pytest.approx([1.3, 1.1])
    assert res.advantages[0, 0] > res.advantages[1, 0]
    with pytest.raises(NotApplicable, match="lm_gain"):
        score_group("igpo-lm", [_ep([1.0], 1.0)])
