"""MatchTIR: turn-level credit for tool calls by bipartite matching against the gold calls.

Every predicted call is compared with every gold call by a similarity in ``[0, 1]``::

    S(pred, gold) = 0                                              if the tool names differ
                  = (1 + Jaccard(param names) + #equal values) / (2 + #gold params)   otherwise

(``#equal values`` counts the gold parameters whose predicted value equals the gold value). The
``P x G`` matrix ``S`` is then turned into one reward per predicted call by an assignment:

* ``"hungarian"`` (default): the optimal one-to-one assignment maximising the total similarity
  (:func:`scipy.optimize.linear_sum_assignment`). A matched call gets its ``S_ij``; an unmatched
  call (or one matched with ``S_ij = 0``) gets ``unmatched_penalty`` (0 by default).
* ``"greedy"``: the published implementation: visit all ``(S_ij, i, j)`` in descending order and
  pair ``i`` with ``j`` when both are still free and ``S_ij > 0``. It can miss the optimum
  (see :func:`greedy_assignment`).
* ``"sinkhorn"``: soft assignment by entropic optimal transport with uniform marginals
  (``1/P`` per call, ``1/G`` per gold call, cost ``-S``, :func:`ot.sinkhorn`); a call's reward is
  ``sum_j T_ij S_ij``. Because each row of ``T`` carries mass ``1/P``, the published rewards shrink
  as ``1/P`` with the number of calls (``ot_normalize="none"`` keeps that scale). The default,
  ``ot_normalize="gold"``, multiplies by ``G`` and caps at 1: every gold call then hands out one unit
  of credit (column mass ``1/G`` times ``G``), so a perfect set of calls earns about 1 per call, one
  correct call among three gold calls still earns 1, and calls beyond the gold count share the credit
  (an extra duplicate call lowers the turn mean). ``ot_normalize="row"`` multiplies by ``P`` instead
  (the plan-weighted mean similarity of each call): it equals ``"gold"`` when ``P = G``, dilutes a
  lone correct call to ``1/G`` when ``P < G``, and does not penalise duplicates when ``P > G``. The
  entropic plan also puts some mass on imperfect pairs, so gold calls score slightly below 1 when two
  gold calls look alike.

The turn reward is the mean of its calls' rewards (:func:`turn_rewards`); the answer turn is scored
by the task's outcome, not here.

Values are compared as JSON values (:func:`values_equal`): numbers by value (``1 == 1.0``), but a
boolean never equals a number (Python's ``True == 1`` does not carry over), lists in order, objects by
keys. A gold call may mark parameters as ``optional`` (omitting them costs nothing) and list extra
acceptable values per parameter (``accept``), which is how benchmark answers with several correct
values (BFCL's possible answers) are scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rlvr.errors import ConfigError

__all__ = [
    "GoldCall",
    "MatchMethod",
    "MatchTIR",
    "assignment_plan",
    "call_rewards",
    "greedy_assignment",
    "hungarian_assignment",
    "jaccard",
    "similarity",
    "similarity_matrix",
    "sinkhorn_assignment",
    "turn_rewards",
    "values_equal",
]

MatchMethod = Literal["hungarian", "greedy", "sinkhorn"]
OTNormalize = Literal["gold", "row", "none"]
_NORMALIZE = ("gold", "row", "none")
_METHODS = ("hungarian", "greedy", "sinkhorn")


@dataclass(frozen=True)
class GoldCall:
    """One gold tool call.

    Args:
        name: the tool's name.
        arguments: the gold value of each parameter.
        optional: gold parameters a prediction may leave out without losing credit; when left out they
            drop from the Jaccard and from the denominator.
        accept: further values counted as equal for a parameter (for example BFCL's possible answers);
            a parameter listed only here (not in ``arguments``) is still a gold parameter.
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    accept: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "arguments"}``, the shape of ``info["tool_calls"]``."""
        return {"name": self.name, "arguments": dict(self.arguments)}


def _name_args(call: Any) -> tuple[str, Mapping[str, Any]]:
    """Read ``(name, arguments)`` from a dict ``{"name", "arguments"}`` or an object with those attributes."""
    if isinstance(call, Mapping):
        name, args = call.get("name"), call.get("arguments", call.get("parameters", {}))
    else:
        name, args = getattr(call, "name", None), getattr(call, "arguments", None)
    if not isinstance(name, str):
        raise ConfigError(f"a call needs a string 'name', got {call!r}; pass {{'name': ..., 'arguments': {{...}}}}")
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise ConfigError(f"the arguments of call {name!r} must be a mapping, got {type(args).__name__}")
    return name, args


def _as_gold(call: Any) -> GoldCall:
    if isinstance(call, GoldCall):
        return call
    name, args = _name_args(call)
    return GoldCall(name, dict(args))


def values_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: numbers by value, booleans only with booleans, containers element-wise."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return bool(a == b)


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    """``|a & b| / |a | b|``; 1.0 when both sets are empty (identical), 0.0 when only one is."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _args_similarity(p_args: Mapping[str, Any], g: GoldCall) -> float:
    """The similarity of two calls already known to name the same tool."""
    gold_keys = {k for k in (*g.arguments, *g.accept) if k not in g.optional or k in p_args}
    equal = 0
    for k in gold_keys:
        if k in p_args:
            v = p_args[k]
            if (k in g.arguments and values_equal(v, g.arguments[k])) or any(values_equal(v, alt) for alt in g.accept.get(k, ())):
                equal += 1
    return (1.0 + jaccard(set(p_args), gold_keys) + equal) / (2.0 + len(gold_keys))


def similarity(pred: Any, gold: Any, *, ignore_case: bool = False) -> float:
    """MatchTIR similarity of one predicted call and one gold call, in ``[0, 1]``.

    ``pred`` and ``gold`` are ``{"name", "arguments"}`` dicts, :class:`GoldCall` or any object with
    ``name`` and ``arguments``. ``ignore_case`` compares tool names case-insensitively, as the
    published code does.
    """
    p_name, p_args = _name_args(pred)
    g = _as_gold(gold)
    same = p_name.lower() == g.name.lower() if ignore_case else p_name == g.name
    return _args_similarity(p_args, g) if same else 0.0


def similarity_matrix(preds: Sequence[Any], golds: Sequence[Any], *, ignore_case: bool = False) -> np.ndarray:
    """``S[i, j] = similarity(preds[i], golds[j])`` as a ``(P, G)`` float array (only same-name pairs are scored)."""
    gold = [_as_gold(g) for g in golds]
    by_name: dict[str, list[int]] = {}
    for j, g in enumerate(gold):
        by_name.setdefault(g.name.lower() if ignore_case else g.name, []).append(j)
    s = np.zeros((len(preds), len(gold)), dtype=np.float64)
    for i, p in enumerate(preds):
        name, args = _name_args(p)
        for j in by_name.get(name.lower() if ignore_case else name, ()):
            s[i, j] = _args_similarity(args, gold[j])
    return s


def _check_matrix(s: Any) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 2:
        raise ConfigError(f"the similarity matrix must be 2-D (P, G), got shape {s.shape}")
    if s.size and (not np.all(np.isfinite(s)) or s.min() < 0.0 or s.max() > 1.0):
        raise ConfigError("similarity values must be finite numbers in [0, 1]")
    return s


def hungarian_assignment(s: Any) -> np.ndarray:
    """The optimal one-to-one assignment of rows (calls) to columns (gold calls) as a 0/1 ``(P, G)`` plan.

    Maximises the total similarity; pairs with zero similarity are left out of the plan.
    """
    from scipy.optimize import linear_sum_assignment

    s = _check_matrix(s)
    plan = np.zeros_like(s)
    if s.size:
        rows, cols = linear_sum_assignment(s, maximize=True)
        keep = s[rows, cols] > 0.0
        plan[rows[keep], cols[keep]] = 1.0
    return plan


def greedy_assignment(s: Any) -> np.ndarray:
    """The published greedy matching as a 0/1 ``(P, G)`` plan.

    All ``(S_ij, i, j)`` triples are sorted in descending order (ties: larger ``i``, then larger ``j``
    first) and ``(i, j)`` is kept when ``S_ij > 0`` and neither side is taken yet. Greedy can lose to
    the optimum: with ``S = [[0.9, 0.8], [0.7, 0.0]]`` it takes ``0.9`` and leaves row 1 unmatched
    (total 0.9), while the optimal assignment takes ``0.8 + 0.7 = 1.5``.
    """
    s = _check_matrix(s)
    p, g = s.shape
    plan = np.zeros_like(s)
    if not s.size:
        return plan
    flat = s.ravel()
    rows, cols = np.divmod(np.arange(flat.size), g)
    order = np.lexsort((-cols, -rows, -flat))  # descending (S, i, j), like sorting the triples in reverse
    used_rows = np.zeros(p, dtype=bool)
    used_cols = np.zeros(g, dtype=bool)
    left = min(p, g)
    for k in order.tolist():
        if flat[k] <= 0.0 or not left:
            break
        i, j = int(rows[k]), int(cols[k])
        if used_rows[i] or used_cols[j]:
            continue
        plan[i, j] = 1.0
        used_rows[i] = used_cols[j] = True
        left -= 1
    return plan


def sinkhorn_assignment(s: Any, *, reg: float = 0.1) -> np.ndarray:
    """Entropic optimal transport plan ``T`` between uniform marginals (``1/P`` per row, ``1/G`` per column)
    with cost ``-S`` (:func:`ot.sinkhorn`); rows sum to ``1/P``, columns to ``1/G``."""
    import ot

    s = _check_matrix(s)
    if reg <= 0 or not math.isfinite(reg):
        raise ConfigError(f"reg must be a positive number, got {reg!r}")
    p, g = s.shape
    if p == 0 or g == 0:
        return np.zeros_like(s)
    a = np.full(p, 1.0 / p)
    b = np.full(g, 1.0 / g)
    # Shifting the cost by a constant leaves the plan unchanged and keeps exp(-M/reg) <= 1.
    # 10x POT's default iteration cap: near-degenerate matrices with a small reg converge slowly; the
    # stopping threshold ends well-conditioned problems long before.
    return np.asarray(ot.sinkhorn(a, b, 1.0 - s, reg, numItermax=10_000, warn=False), dtype=np.float64)


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ConfigError(f"unknown matching method {method!r}; expected one of {list(_METHODS)}")


def assignment_plan(s: Any, method: MatchMethod = "hungarian", *, reg: float = 0.1) -> np.ndarray:
    """The ``(P, G)`` plan of ``method`` on the similarity matrix ``s`` (0/1 for hard methods)."""
    _check_method(method)
    if method == "hungarian":
        return hungarian_assignment(s)
    if method == "greedy":
        return greedy_assignment(s)
    return sinkhorn_assignment(s, reg=reg)


def call_rewards(
    preds: Sequence[Any],
    golds: Sequence[Any],
    method: MatchMethod = "hungarian",
    *,
    unmatched_penalty: float = 0.0,
    reg: float = 0.1,
    ot_normalize: OTNormalize = "gold",
    ignore_case: bool = False,
) -> np.ndarray:
    """One reward per predicted call (shape ``(P,)``) from the assignment of ``preds`` to ``golds``.

    Hard methods: ``S_ij`` for a matched call, ``unmatched_penalty`` otherwise. ``"sinkhorn"``:
    ``sum_j T_ij S_ij``, times ``G`` capped at 1 (``ot_normalize="gold"``), times ``P`` (``"row"``) or
    as published (``"none"``), see the module docstring; with no gold calls every call gets
    ``unmatched_penalty``.
    """
    _check_method(method)
    if ot_normalize not in _NORMALIZE:
        raise ConfigError(f"ot_normalize must be one of {list(_NORMALIZE)}, got {ot_normalize!r}")
    s = similarity_matrix(preds, golds, ignore_case=ignore_case)
    p, g = s.shape
    if p == 0:
        return np.zeros(0)
    if g == 0:
        return np.full(p, float(unmatched_penalty))
    plan = assignment_plan(s, method, reg=reg)
    if method == "sinkhorn":
        r = (plan * s).sum(axis=1)
        if ot_normalize == "gold":
            return np.minimum(r * g, 1.0)
        return r * p if ot_normalize == "row" else r
    matched = plan.sum(axis=1) > 0
    return np.where(matched, (plan * s).sum(axis=1), float(unmatched_penalty))


def turn_rewards(
    turn_calls: Sequence[Sequence[Any]],
    golds: Sequence[Any],
    method: MatchMethod = "hungarian",
    **kwargs: Any,
) -> list[float | None]:
    """MatchTIR turn rewards for one trajectory: the calls of all turns are matched together against
    ``golds`` (:func:`call_rewards`), then each turn gets the mean reward of its own calls.

    Turns without calls get ``None`` (not applicable): the caller scores answer turns by the outcome
    (and MatchTIR gives 0 to turns with neither a call nor an answer).
    """
    flat = [c for calls in turn_calls for c in calls]
    rewards = call_rewards(flat, golds, method, **kwargs)
    out: list[float | None] = []
    k = 0
    for calls in turn_calls:
        n = len(calls)
        out.append(float(rewards[k : k + n].mean()) if n else None)
        k += n
    return out


@dataclass(frozen=True)
class MatchTIR:
    """A picklable, configured MatchTIR scorer: ``MatchTIR("greedy")(turn_calls, golds)`` -> turn rewards.

    Args:
        method: ``"hungarian"`` (optimal, default), ``"greedy"`` (published) or ``"sinkhorn"`` (soft).
        unmatched_penalty: reward of a call left unmatched by a hard method (published call site: 0).
        reg: entropic regularisation of Sinkhorn.
        ot_normalize: Sinkhorn credit scale: ``"gold"`` (each gold call hands out one unit, capped at 1
            per call), ``"row"`` (times ``P``) or ``"none"`` (the published ``1/P`` scale).
        ignore_case: compare tool names case-insensitively.
    """

    method: MatchMethod = "hungarian"
    unmatched_penalty: float = 0.0
    reg: float = 0.1
    ot_normalize: OTNormalize = "gold"
    ignore_case: bool = False

    def __post_init__(self) -> None:
        _check_method(self.method)
        if self.ot_normalize not in _NORMALIZE:
            raise ConfigError(f"ot_normalize must be one of {list(_NORMALIZE)}, got {self.ot_normalize!r}")
        if self.reg <= 0:
            raise ConfigError(f"reg must be positive, got {self.reg}")

    def call_rewards(self, preds: Sequence[Any], golds: Sequence[Any]) -> np.ndarray:
        """Per-call rewards (see :func:`call_rewards`)."""
        return call_rewards(
            preds, golds, self.method, unmatched_penalty=self.unmatched_penalty, reg=self.reg,
            ot_normalize=self.ot_normalize, ignore_case=self.ignore_case,
        )

    def __call__(self, turn_calls: Sequence[Sequence[Any]], golds: Sequence[Any]) -> list[float | None]:
        return turn_rewards(
            turn_calls, golds, self.method, unmatched_penalty=self.unmatched_penalty, reg=self.reg,
            ot_normalize=self.ot_normalize, ignore_case=self.ignore_case,
        )
