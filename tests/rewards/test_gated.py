"""G-RA (gated reward accumulation) and the D-RA baseline."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.errors import ConfigError
from rlvr.rewards.gated import (
    GatedRewardAccumulation,
    OutcomeLevels,
    RewardTier,
    SubmissionOutcome,
    dra,
    gated_accumulation,
    gra,
    swe_tiers,
    turn_components,
)

LEVELS = OutcomeLevels()


def episode(outcome: SubmissionOutcome, steps: int, step_reward: float = 0.1) -> list[dict[str, float]]:
    turns = [{"valid_call": step_reward, "modification": step_reward, "format": 0.0} for _ in range(steps)]
    turns.append({"outcome": LEVELS.value(outcome)})
    return turns


def test_levels_are_ordered_and_validated():
    vals = [LEVELS.value(o) for o in SubmissionOutcome]
    assert vals == sorted(vals) and len(set(vals)) == 5
    with pytest.raises(ConfigError, match="increase strictly"):
        OutcomeLevels(empty_patch=0.5, tests_fail=0.0)
    with pytest.raises(ConfigError, match="no_submission < regression < empty_patch"):
        OutcomeLevels(regression=-0.4)  # a breaking patch above an empty one
    with pytest.raises(ConfigError, match="unknown outcome"):
        LEVELS.value("won")


@pytest.mark.parametrize("outcome,gate_open", [
    (SubmissionOutcome.NO_SUBMISSION, False), (SubmissionOutcome.REGRESSION, False), (SubmissionOutcome.EMPTY_PATCH, False),
    (SubmissionOutcome.TESTS_FAIL, True), (SubmissionOutcome.RESOLVED, True),
])
def test_swe_gate_opens_only_for_non_empty_submission(outcome, gate_open):
    res = gated_accumulation(episode(outcome, 5), swe_tiers())
    assert res.gates == {"outcome": True, "immediate": gate_open}
    expected = LEVELS.value(outcome) + (5 * 0.2 if gate_open else 0.0)
    assert res.total == pytest.approx(expected)
    assert res.ungated_total == pytest.approx(LEVELS.value(outcome) + 1.0)


def test_dra_rewards_hacking_that_gra_removes():
    farmer = episode(SubmissionOutcome.NO_SUBMISSION, 20)  # collects step rewards, never submits
    solver = episode(SubmissionOutcome.RESOLVED, 2)
    g = GatedRewardAccumulation()
    d = GatedRewardAccumulation(gated=False)
    assert d.total(farmer) > d.total(solver)  # D-RA prefers the reward hacker
    assert g.total(farmer) < g.total(solver)  # G-RA does not
    assert g.total(farmer) == pytest.approx(LEVELS.no_submission)


def test_two_level_closed_forms():
    assert gra(1.0, [0.1, 0.2], threshold=0.0) == pytest.approx(1.3)
    assert gra(-0.5, [0.1, 0.2], threshold=0.0) == pytest.approx(-0.5)
    assert dra(-0.5, [0.1, 0.2]) == pytest.approx(-0.2)


def test_priority_chain_three_tiers():
    tiers = (RewardTier("a", ("a",), 1.0), RewardTier("b", ("b",), 0.5), RewardTier("c", ("c",)))
    open_all = gated_accumulation([{"a": 1.0, "b": 0.5, "c": 2.0}], tiers)
    assert open_all.gates == {"a": True, "b": True, "c": True} and open_all.total == pytest.approx(3.5)
    b_low = gated_accumulation([{"a": 1.0, "b": 0.4, "c": 2.0}], tiers)
    assert b_low.gates == {"a": True, "b": True, "c": False} and b_low.total == pytest.approx(1.4)
    a_low = gated_accumulation([{"a": 0.0, "b": 5.0, "c": 2.0}], tiers)  # a closes everything below it
    assert a_low.gates == {"a": True, "b": False, "c": False} and a_low.total == 0.0


def test_turn_rewards_zero_the_closed_tiers_per_turn():
    res = gated_accumulation(episode(SubmissionOutcome.EMPTY_PATCH, 3), swe_tiers())
    assert res.turn_rewards == [0.0, 0.0, 0.0, LEVELS.empty_patch]


def test_configuration_errors_are_explicit():
    with pytest.raises(ConfigError, match="is in no tier"):
        gated_accumulation([{"bonus": 1.0}], swe_tiers())
    assert gated_accumulation([{"bonus": 1.0}], swe_tiers(), unassigned="ignore").total == 0.0
    with pytest.raises(ConfigError, match="belongs to one tier"):
        gated_accumulation([], (RewardTier("x", ("a",)), RewardTier("y", ("a",))))
    with pytest.raises(ConfigError, match="tuple of names"):
        RewardTier("x", "outcome")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one RewardTier"):
        gated_accumulation([], ())
    with pytest.raises(ConfigError, match="unassigned"):
        GatedRewardAccumulation(unassigned="drop")  # type: ignore[arg-type]


def test_callable_is_picklable_and_reads_trajectories():
    class Turn:
        def __init__(self, rc):
            self.reward_components = rc

    class Traj:
        def __init__(self, turns):
            self.turns = turns

    g = pickle.loads(pickle.dumps(GatedRewardAccumulation()))
    comps = episode(SubmissionOutcome.RESOLVED, 2)
    assert g(Traj([Turn(c) for c in comps])) == g(comps)
    assert len(turn_components(Traj([Turn(c) for c in comps]))) == 3
    with pytest.raises(ConfigError, match="expected a mapping"):
        turn_components([1, 2])


finite = st.floats(min_value=-5, max_value=5, allow_nan=False)
turn = st.fixed_dictionaries({}, optional={"outcome": finite, "valid_call": finite, "modification": finite,
                                           "test_run": finite, "format": finite})


@settings(max_examples=200, deadline=None)
@given(st.lists(turn, max_size=12), st.floats(min_value=-2, max_value=2, allow_nan=False))
def test_properties_of_the_two_level_gate(turns, delta):
    res = gated_accumulation(turns, swe_tiers(delta))
    r_high = sum(t.get("outcome", 0.0) for t in turns)
    r_low = [sum(v for k, v in t.items() if k != "outcome") for t in turns]
    assert math.isclose(res.total, gra(r_high, r_low, delta), abs_tol=1e-9)
    assert math.isclose(res.ungated_total, dra(r_high, r_low), abs_tol=1e-9)
    assert math.isclose(sum(res.turn_rewards), res.total, abs_tol=1e-9)
    assert res.gates["immediate"] == (r_high >= delta)
    assert len(res.turn_rewards) == len(turns)
