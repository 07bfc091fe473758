"""MatchTIR: similarity, Hungarian / greedy / Sinkhorn assignment, turn rewards, perturbation properties."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rlvr.errors import ConfigError
from rlvr.rewards.matchtir import (
    GoldCall,
    MatchTIR,
    assignment_plan,
    call_rewards,
    greedy_assignment,
    hungarian_assignment,
    jaccard,
    similarity,
    similarity_matrix,
    sinkhorn_assignment,
    turn_rewards,
    values_equal,
)

METHODS = ("hungarian", "greedy", "sinkhorn")


def c(name: str, **args):
    return {"name": name, "arguments": args}


# ----------------------------------------------------------------------------- similarity


def test_similarity_formula_by_hand():
    gold = c("t", a=1, b=2)
    assert similarity(gold, gold) == 1.0
    # Jaccard({a, c}, {a, b}) = 1/3, one equal value (a): (1 + 1/3 + 1) / (2 + 2)
    assert similarity(c("t", a=1, c=3), gold) == pytest.approx(7 / 12)
    # right names, every value wrong: (1 + 1 + 0) / 4
    assert similarity(c("t", a=9, b=9), gold) == pytest.approx(0.5)
    # missing argument: Jaccard 1/2, one equal value: (1 + 0.5 + 1) / 4
    assert similarity(c("t", a=1), gold) == pytest.approx(0.625)
    assert similarity(c("u", a=1, b=2), gold) == 0.0


def test_similarity_no_parameters_and_case():
    assert similarity(c("ping"), c("ping")) == 1.0
    assert similarity(c("ping", x=1), c("ping")) == pytest.approx(0.5)  # Jaccard 0: (1 + 0 + 0) / 2
    assert similarity(c("Ping"), c("ping")) == 0.0
    assert similarity(c("Ping"), c("ping"), ignore_case=True) == 1.0


def test_values_equal_is_json_equality():
    assert values_equal(1, 1.0)
    assert not values_equal(True, 1) and not values_equal(1, True) and not values_equal(False, 0)
    assert values_equal([1, {"a": "x"}], (1.0, {"a": "x"}))
    assert not values_equal([1, 2], [2, 1])
    assert not values_equal({"a": 1}, {"a": 1, "b": 2})
    assert not values_equal("1", 1)
    assert values_equal(None, None) and not values_equal(None, 0)


def test_jaccard_edges():
    assert jaccard(set(), set()) == 1.0
    assert jaccard({"a"}, set()) == 0.0
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


def test_optional_and_accepted_values():
    gold = GoldCall("f", {"city": "Paris"}, optional=frozenset({"unit"}), accept={"city": ("paris",), "unit": ("C", "F")})
    assert similarity(c("f", city="Paris"), gold) == 1.0  # optional unit left out: no loss
    assert similarity(c("f", city="paris"), gold) == 1.0  # an accepted alternative
    assert similarity(c("f", city="Paris", unit="F"), gold) == 1.0  # optional given with an accepted value
    assert similarity(c("f", city="Paris", unit="K"), gold) == pytest.approx(0.75)  # (1 + 1 + 1) / 4
    assert similarity(GoldCall("f", {"city": "Paris"}), GoldCall("f", {"city": "Paris"})) == 1.0


def test_bad_calls_raise_config_error():
    with pytest.raises(ConfigError, match="needs a string 'name'"):
        similarity({"arguments": {}}, c("t"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        similarity({"name": "t", "arguments": [1]}, c("t"))


# ----------------------------------------------------------------------------- assignments

# Two calls against two gold calls of the same tool where greedy and Hungarian disagree:
# S = [[1/3, 1/4], [2/3, 5/8]]. Greedy takes the largest entry (2/3) first and is left with 1/4.
GREEDY_PREDS = [c("t"), c("t", x=0)]
GREEDY_GOLDS = [c("t", x=1), c("t", x=0, z=1)]


def test_greedy_and_hungarian_differ():
    s = similarity_matrix(GREEDY_PREDS, GREEDY_GOLDS)
    np.testing.assert_allclose(s, [[1 / 3, 1 / 4], [2 / 3, 5 / 8]])
    h = call_rewards(GREEDY_PREDS, GREEDY_GOLDS, "hungarian")
    g = call_rewards(GREEDY_PREDS, GREEDY_GOLDS, "greedy")
    np.testing.assert_allclose(h, [1 / 3, 5 / 8])
    np.testing.assert_allclose(g, [1 / 4, 2 / 3])
    assert h.sum() == pytest.approx(23 / 24) and g.sum() == pytest.approx(11 / 12)
    assert h.sum() > g.sum()
    # the textbook matrix from the docstring
    m = np.array([[0.9, 0.8], [0.7, 0.0]])
    assert (greedy_assignment(m) * m).sum() == pytest.approx(0.9)
    assert (hungarian_assignment(m) * m).sum() == pytest.approx(1.5)


def test_greedy_breaks_ties_by_larger_index_first():
    s = np.array([[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(greedy_assignment(s), [[1, 0], [0, 1]])  # (1, 1) first, then (0, 0)
    np.testing.assert_array_equal(greedy_assignment(np.zeros((2, 2))), np.zeros((2, 2)))  # S = 0 is never paired


matrices = st.integers(1, 5).flatmap(
    lambda p: st.integers(1, 5).flatmap(
        lambda g: st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0]), min_size=g, max_size=g), min_size=p, max_size=p)
    )
)


@given(matrices)
@settings(max_examples=150, deadline=None)
def test_hungarian_is_optimal_and_greedy_never_better(rows):
    s = np.array(rows)
    p, g = s.shape
    best = 0.0
    for perm in itertools.permutations(range(max(p, g)), min(p, g)):
        pairs = zip(range(p), perm) if p <= g else zip(perm, range(g))
        best = max(best, sum(s[i, j] for i, j in pairs))
    h, gr = hungarian_assignment(s), greedy_assignment(s)
    for plan in (h, gr):
        assert plan.sum(axis=0).max(initial=0) <= 1 and plan.sum(axis=1).max(initial=0) <= 1  # one-to-one
    assert (h * s).sum() == pytest.approx(best)
    assert (gr * s).sum() <= (h * s).sum() + 1e-12


@given(matrices, st.sampled_from([0.05, 0.1, 0.5]))
@settings(max_examples=50, deadline=None)
def test_sinkhorn_plan_has_uniform_marginals(rows, reg):
    s = np.array(rows)
    t = sinkhorn_assignment(s, reg=reg)
    p, g = s.shape
    # near-degenerate matrices with a small reg converge slowly: marginals hold to 1e-4 at worst
    np.testing.assert_allclose(t.sum(axis=1), np.full(p, 1 / p), atol=1e-4)
    np.testing.assert_allclose(t.sum(axis=0), np.full(g, 1 / g), atol=1e-4)
    assert (t >= 0).all()


def test_sinkhorn_scales():
    golds = [c(f"tool{i}", x=i) for i in range(4)]
    gold = call_rewards(golds, golds, "sinkhorn")
    row = call_rewards(golds, golds, "sinkhorn", ot_normalize="row")
    published = call_rewards(golds, golds, "sinkhorn", ot_normalize="none")
    np.testing.assert_allclose(gold, 1.0, atol=1e-3)  # each exact call earns ~1
    np.testing.assert_allclose(row, gold)  # P = G: the two scales agree
    np.testing.assert_allclose(published, 0.25, atol=1e-3)  # published: shrinks as 1/P
    # P < G: uniform marginals spread one correct call over three gold calls; "row" dilutes it
    assert call_rewards([golds[0]], golds[:3], "sinkhorn")[0] == pytest.approx(1.0, abs=1e-3)
    assert call_rewards([golds[0]], golds[:3], "sinkhorn", ot_normalize="row")[0] == pytest.approx(1 / 3, abs=1e-3)
    # P > G: a duplicate shares the gold call's credit under "gold", not under "row"
    np.testing.assert_allclose(call_rewards([golds[0]] * 2, golds[:1], "sinkhorn"), [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(call_rewards([golds[0]] * 2, golds[:1], "sinkhorn", ot_normalize="row"), [1.0, 1.0], atol=1e-6)


def test_edge_sizes_and_unmatched_penalty():
    for m in METHODS:
        assert call_rewards([], [c("t")], m).shape == (0,)
        np.testing.assert_array_equal(call_rewards([c("t")], [], m, unmatched_penalty=-0.5), [-0.5])
    # an extra call gets the penalty under hard methods
    r = call_rewards([c("t", a=1), c("u")], [c("t", a=1)], "hungarian", unmatched_penalty=-0.5)
    np.testing.assert_allclose(r, [1.0, -0.5])
    r = call_rewards([c("t", a=1), c("u")], [c("t", a=1)], "greedy", unmatched_penalty=-0.5)
    np.testing.assert_allclose(r, [1.0, -0.5])


def test_turn_rewards_mean_per_turn():
    golds = [c("a", x=1), c("b", y=2), c("c")]
    turns = [[c("a", x=1), c("b", y=3)], [], [c("c"), c("zzz")]]
    out = turn_rewards(turns, golds)
    assert out[1] is None
    assert out[0] == pytest.approx((1.0 + 2 / 3) / 2)  # b(y=3) against b(y=2): (1 + 1 + 0) / 3
    assert out[2] == pytest.approx(0.5)
    assert MatchTIR()(turns, golds) == out


def test_turn_rewards_wrong_value_hand_check():
    # b(y=3) vs b(y=2): (1 + 1 + 0) / (2 + 1) = 2/3
    assert turn_rewards([[c("b", y=3)]], [c("b", y=2)]) == [pytest.approx(2 / 3)]


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown matching method 'kuhn'"):
        call_rewards([c("t")], [c("t")], "kuhn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ot_normalize"):
        MatchTIR(ot_normalize="rows")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reg must be positive"):
        MatchTIR("sinkhorn", reg=0)
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        assignment_plan(np.array([[1.5]]))
    with pytest.raises(ConfigError, match="2-D"):
        hungarian_assignment(np.zeros(3))


def test_scorer_is_picklable():
    m = MatchTIR("greedy", unmatched_penalty=-0.1)
    assert pickle.loads(pickle.dumps(m)) == m


# ----------------------------------------------------------------------------- perturbations

names = st.sampled_from(["search", "lookup", "add", "book", "send"])
values = st.one_of(st.integers(-5, 5), st.text("abc", min_size=1, max_size=3), st.booleans())
arg_dicts = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, max_size=3)
gold_sets = st.lists(st.builds(c, names), min_size=1, max_size=4).flatmap(
    lambda calls: st.tuples(*[arg_dicts.map(lambda a, n=x["name"]: c(n, **a)) for x in calls])
).map(list)


def _score(preds, golds, method):
    """One turn holding every call: MatchTIR's turn reward."""
    return turn_rewards([preds], golds, method)[0]


def _check_lower(golds, perturbed, method):
    base = _score(golds, golds, method)
    worse = _score(perturbed, golds, method)
    assert worse < base - 1e-9, (method, golds, perturbed, base, worse)


@given(gold_sets, st.data(), st.sampled_from(METHODS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_wrong_value_scores_lower(golds, data, method):
    with_args = [i for i, g in enumerate(golds) if g["arguments"]]
    assume(with_args)
    i = data.draw(st.sampled_from(with_args))
    key = data.draw(st.sampled_from(sorted(golds[i]["arguments"])))
    new = data.draw(values.filter(lambda v: not values_equal(v, golds[i]["arguments"][key])))
    preds = [dict(g, arguments=dict(g["arguments"])) for g in golds]
    preds[i]["arguments"][key] = new
    assume(not any(values_equal(preds[i]["arguments"], g["arguments"]) and preds[i]["name"] == g["name"] for g in golds))
    _check_lower(golds, preds, method)


@given(gold_sets, st.data(), st.sampled_from(METHODS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_missing_argument_scores_lower(golds, data, method):
    with_args = [i for i, g in enumerate(golds) if g["arguments"]]
    assume(with_args)
    i = data.draw(st.sampled_from(with_args))
    key = data.draw(st.sampled_from(sorted(golds[i]["arguments"])))
    preds = [dict(g, arguments=dict(g["arguments"])) for g in golds]
    del preds[i]["arguments"][key]
    assume(not any(values_equal(preds[i]["arguments"], g["arguments"]) and preds[i]["name"] == g["name"] for g in golds))
    _check_lower(golds, preds, method)


@given(gold_sets, st.data(), st.sampled_from(METHODS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_wrong_tool_scores_lower(golds, data, method):
    i = data.draw(st.integers(0, len(golds) - 1))
    preds = [dict(g) for g in golds]
    preds[i] = dict(preds[i], name="not_a_gold_tool")
    _check_lower(golds, preds, method)


@given(gold_sets, st.data(), st.sampled_from(METHODS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_extra_call_scores_lower(golds, data, method):
    extra = data.draw(st.one_of(st.sampled_from(golds), st.builds(c, names)))  # a duplicate is the hardest case
    at = data.draw(st.integers(0, len(golds)))
    preds = list(golds)
    preds.insert(at, extra)
    _check_lower(golds, preds, method)


@given(gold_sets, st.sampled_from(("hungarian", "greedy")))
@settings(max_examples=100, deadline=None)
def test_gold_gets_full_credit_under_hard_methods(golds, method):
    assert _score(golds, golds, method) == pytest.approx(1.0)
    assert _score(list(reversed(golds)), golds, method) == pytest.approx(1.0)  # order does not matter


@given(gold_sets, gold_sets, st.booleans())
@settings(max_examples=60, deadline=None)
def test_similarity_matrix_matches_pairwise_similarity(preds, golds, ignore_case):
    preds = [dict(p, name=p["name"].upper()) if i % 2 else p for i, p in enumerate(preds)]
    expected = [[similarity(p, g, ignore_case=ignore_case) for g in golds] for p in preds]
    np.testing.assert_array_equal(similarity_matrix(preds, golds, ignore_case=ignore_case), np.array(expected).reshape(len(preds), len(golds)))


@given(matrices)
@settings(max_examples=80, deadline=None)
def test_greedy_equals_the_sorted_triples_reference(rows):
    s = np.array(rows)
    ref = np.zeros_like(s)
    used_r, used_c = set(), set()
    for value, i, j in sorted(((s[i, j], i, j) for i in range(s.shape[0]) for j in range(s.shape[1])), reverse=True):
        if value > 0 and i not in used_r and j not in used_c:
            ref[i, j] = 1.0
            used_r.add(i)
            used_c.add(j)
    np.testing.assert_array_equal(greedy_assignment(s), ref)
