"""Turn-level reward schemes as registered functions over a group of :class:`Episode` records.

A scheme decides two things for one group (the ``G`` rollouts of one task): the per-turn
rewards it trains on, and the per-turn advantages its estimator derives from them. Both come
from the pure functions in :mod:`rlvr.rewards` and :mod:`rlvr.agents.trainer.advantages`; the
benchmark harness only ever calls :func:`score_group`, so adding a scheme is one function::

    @register("my-scheme", "what it does", needs=("process",))
    def _my_scheme(group):
        r, m = table([e.dense for e in group])
        return r, m, turn_advantages(r, m)

Every scheme also exists with a DAPO-style zero-variance group filter, under the name
``"<name>+dapo"``: a group whose returns all agree (``std < 1e-6``) is dropped (its advantages
are zero and it counts as filtered). The microbenchmark's updates then draw a new group in its place
(DAPO's dynamic sampling, :attr:`~rlvr.bench.credit.CreditConfig.dapo_max_draws`) and report the groups
drawn per update.

An :class:`Episode` is the environment-independent view of one rollout the schemes read: per-turn
components and their weighted sum, the outcome, and the optional extras some schemes need
(information gain, anchor states, re-scored tool-call credit, rubric scores). A scheme that needs
an extra a group lacks is *not applicable* to it (:class:`NotApplicable`), never scored 0.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rlvr.agents.trainer.advantages import (
    dual_advantages,
    gigpo_advantages,
    grpo_advantages,
    igpo_advantages,
    pure_advantages,
    softmin_weights,
    tempo_advantages,
    turn_advantages,
)
from rlvr.errors import ConfigError, RLVRError
from rlvr.rewards.carr import cgrpo_reward

__all__ = [
    "Episode",
    "NotApplicable",
    "Scheme",
    "SchemeResult",
    "SCHEMES",
    "applies",
    "DEFAULT_SCHEMES",
    "register",
    "resolve_schemes",
    "score_group",
    "table",
]

ZERO_STD = 1e-6


class NotApplicable(RLVRError):
    """The scheme needs a signal (information gain, tool-call credit, rubric, ...) this group does not carry."""


@dataclass
class Episode:
    """One rollout as the schemes see it; only ``dense``, ``outcome`` and ``success`` are required.

    Per-turn lists have one entry per turn of the rollout.
    """

    dense: list[float]
    """The environment's per-turn reward (weighted sum of its components)."""
    outcome: float
    """The outcome reward of the episode (given on its last turn)."""
    success: bool
    """Whether the task was solved."""
    process: list[float] | None = None
    """Per-turn information gain (IGPO); ``None``: not available."""
    lm_gain: list[float] | None = None
    """Per-turn information gain as IGPO computes it: the gain of a language model's teacher-forced
    probability of the gold answer after each tool turn (0 on the answer turn); ``None``: not scored."""
    immediate: list[float] | None = None
    """Per-turn immediate rewards for G-RA / D-RA and PURE (the dense terms other than the outcome)."""
    high: float | None = None
    """G-RA high-level reward (defaults to ``outcome``)."""
    gate: float = 1.0
    """G-RA threshold ``delta`` on ``high``."""
    anchors: list[Hashable] | None = None
    """Per-turn key of the state the agent acted in (GiGPO anchor states)."""
    actions: list[Hashable] | None = None
    """Per-turn key of the action and its observation (TEMPO prefix tree)."""
    match: dict[str, list[float]] | None = None
    """Per-turn tool-call credit re-scored by each matching method (``hungarian``, ``greedy``,
    ``sinkhorn`` and the ``unmatched`` control); turns without calls carry 0."""
    em: float | None = None
    """Exact-match outcome (CaRR)."""
    rubric: float | None = None
    """CaRR rubric reward (citations checked against what the agent saw); ``None`` where no rubric applies
    (no answer, a task without rubrics, a failed judge): C-GRPO then gives the exact-match outcome."""
    rubric_unchecked: float | None = None
    """Control: the share of gold documents the answer cites, whether or not the agent ever saw them."""
    unguarded: list[float] | None = None
    """Control: the dense reward with its anti-farming guards removed (novelty, repeat penalties)."""
    truth: list[float] | None = None
    """Synthetic tasks: each turn's true contribution (exact advantage of the action on success)."""
    meta: dict = field(default_factory=dict)

    @property
    def turns(self) -> int:
        """Number of turns of the rollout."""
        return len(self.dense)


@dataclass
class SchemeResult:
    """What a scheme computed for one group."""

    rewards: np.ndarray
    """``[G, T]`` per-turn rewards the scheme trains on."""
    mask: np.ndarray
    """``[G, T]`` valid turns."""
    advantages: np.ndarray
    """``[G, T]`` per-turn advantages (zero on invalid turns and on a filtered group)."""
    filtered: bool = False
    """The DAPO filter dropped the group."""

    @property
    def returns(self) -> np.ndarray:
        """``[G]`` return of each rollout under the scheme's rewards."""
        return (self.rewards * self.mask).sum(axis=1)


SchemeFn = Callable[[Sequence[Episode]], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Scheme:
    """A registered scheme: a name, a one-line description, the episode fields it needs, its function."""

    name: str
    description: str
    fn: SchemeFn
    needs: tuple[str, ...] = ()
    control: bool = False
    """A deliberately naive variant (unmatched, unchecked, unguarded) that exploits are measured against."""


SCHEMES: dict[str, Scheme] = {}


def register(name: str, description: str, *, needs: Sequence[str] = (), control: bool = False):
    """Decorator: register ``fn(group) -> (rewards, mask, advantages)`` under ``name``."""
    if "+" in name:
        raise ConfigError(f"scheme names may not contain '+' (it marks the DAPO variant); got {name!r}")

    def deco(fn: SchemeFn) -> SchemeFn:
        if name in SCHEMES:
            raise ConfigError(f"scheme {name!r} is registered twice")
        SCHEMES[name] = Scheme(name, description, fn, tuple(needs), control)
        return fn

    return deco


def table(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad ragged per-turn rows into ``([G, T_max] float table, [G, T_max] validity mask)``."""
    t_max = max((len(r) for r in rows), default=0)
    r = np.zeros((len(rows), max(t_max, 1)))
    m = np.zeros_like(r, dtype=bool)
    for i, row in enumerate(rows):
        r[i, : len(row)] = row
        m[i, : len(row)] = True
    return r, m


def _at_last(e: Episode, value: float, base: Sequence[float] | None = None) -> list[float]:
    out = [0.0] * e.turns if base is None else [float(x) for x in base]
    if out:
        out[-1] += float(value)
    return out


def _need(group: Sequence[Episode], *fields: str) -> None:
    for f in fields:
        if any(getattr(e, f) is None for e in group):
            raise NotApplicable(f"needs {f!r}, which these episodes do not carry")


# --------------------------------------------------------------------------- published schemes
@register("grpo", "outcome-only GRPO: (R - mean) / std of the outcome, every turn the same")
def _grpo(group):
    r, m = table([_at_last(e, e.outcome) for e in group])
    return r, m, grpo_advantages(r, m)


@register("drgrpo", "Dr.GRPO: outcome minus the group mean, no std scaling")
def _drgrpo(group):
    r, m = table([_at_last(e, e.outcome) for e in group])
    return r, m, grpo_advantages(r, m, scale_by_std=False)


@register("turn", "turn-level returns: discounted (0.9) dense returns normalised per turn index")
def _turn(group):
    r, m = table([e.dense for e in group])
    return r, m, turn_advantages(r, m, gamma=0.9)


@register("dual", "MatchTIR dual-level advantage (A_traj + A_turn) / 2 on the dense rewards")
def _dual(group):
    r, m = table([e.dense for e in group])
    return r, m, dual_advantages(r, m, gamma=0.9)


def _igpo_on(group, field: str):
    """IGPO with the per-turn gains of ``field``: gains plus the outcome, normalised jointly, summed."""
    _need(group, field)
    gains = [getattr(e, field) for e in group]
    p, m = table(gains)
    o = np.array([e.outcome for e in group], dtype=float)
    r, _ = table([_at_last(e, e.outcome, g) for e, g in zip(group, gains)])
    return r, m, igpo_advantages(p, m, o, m, norm="joint")


@register("igpo", "IGPO: information gain per turn plus the outcome, normalised jointly, summed", needs=("process",))
def _igpo(group):
    return _igpo_on(group, "process")


@register("igpo-lm", "IGPO on its own signal: a language model's teacher-forced answer-probability gain per turn, "
                     "plus the outcome, normalised jointly, summed", needs=("lm_gain",))
def _igpo_lm(group):
    return _igpo_on(group, "lm_gain")


@register("gigpo", "GiGPO: episode advantage of the outcome plus anchor-state step advantages", needs=("anchors",))
def _gigpo(group):
    _need(group, "anchors")
    r, m = table([_at_last(e, e.outcome) for e in group])
    return r, m, gigpo_advantages(r, m, [e.anchors for e in group], gamma=0.95)


@register("pure", "PURE min-form: soft-min weighted immediate rewards (sum ~ their minimum), leave-one-out "
                  "baseline, plus outcome",
          needs=("immediate",))
def _pure(group):
    _need(group, "immediate")
    p, m = table([e.immediate for e in group])
    o = np.array([e.outcome for e in group], dtype=float)
    # what PURE trains on: the min-form weighted process rewards (their sum approximates the smallest), plus
    # the outcome on the last turn -- so more turns of the same reward do not raise the return
    r = softmin_weights(p, m) * p
    last = m.sum(axis=1) - 1
    r[np.arange(len(group)), np.maximum(last, 0)] += o
    return r, m, pure_advantages(p, m, o)


@register("tempo", "TEMPO: GRPO plus TD terms at branching nodes of the group's prefix tree of turns",
          needs=("actions",))
def _tempo(group):
    _need(group, "actions")
    r, m = table([_at_last(e, e.outcome) for e in group])
    return r, m, tempo_advantages(r, m, [e.actions for e in group])


def _gated_rows(group, gated: bool):
    """Per-turn rewards of G-RA (``gated``) or D-RA: the immediate rewards (zeroed when G-RA's gate
    stays shut), plus the high-level reward on the last turn; their sum equals ``rlvr.rewards.gated.gra`` / ``dra``."""
    _need(group, "immediate")
    rows = []
    for e in group:
        high = e.outcome if e.high is None else e.high
        # the gate of rlvr.rewards.gated.gra: R_high + 1[R_high >= delta] * sum(r_low)
        low = list(e.immediate) if (not gated or high >= e.gate) else [0.0] * e.turns
        rows.append(_at_last(e, high, low))
    return table(rows)


@register("gra", "G-RA: immediate rewards count only when the outcome reaches the gate; GRPO on the total",
          needs=("immediate",))
def _gra(group):
    r, m = _gated_rows(group, gated=True)
    return r, m, grpo_advantages(r, m)


@register("dra", "D-RA: outcome plus every immediate reward, ungated; GRPO on the total", needs=("immediate",))
def _dra(group):
    r, m = _gated_rows(group, gated=False)
    return r, m, grpo_advantages(r, m)


def _match_scheme(method: str):
    def fn(group):
        _need(group, "match")
        if any(method not in e.match for e in group):
            raise NotApplicable(f"episodes carry no {method!r} tool-call credit")
        r, m = table([_at_last(e, e.outcome, e.match[method]) for e in group])
        return r, m, dual_advantages(r, m, gamma=0.9)

    return fn


register("matchtir-hungarian", "MatchTIR hard credit, optimal (Hungarian) assignment; dual advantage",
         needs=("match",))(_match_scheme("hungarian"))
register("matchtir-greedy", "MatchTIR hard credit, the published greedy assignment; dual advantage",
         needs=("match",))(_match_scheme("greedy"))
register("matchtir-sinkhorn", "MatchTIR soft credit, Sinkhorn optimal transport; dual advantage",
         needs=("match",))(_match_scheme("sinkhorn"))
register("matchtir-unmatched", "control: every call credited its best similarity, summed per turn (no assignment)",
         needs=("match",), control=True)(_match_scheme("unmatched"))


def _carr_rows(group, key: str):
    _need(group, "em")
    rows = []
    for e in group:
        rub = getattr(e, key)
        rows.append(_at_last(e, cgrpo_reward(float(e.em), None if rub is None else float(rub))))
    return table(rows)


@register("carr", "CaRR C-GRPO: a correct answer is topped up by its cited, connected rubrics; GRPO",
          needs=("em",))
def _carr(group):
    r, m = _carr_rows(group, "rubric")
    return r, m, grpo_advantages(r, m)


@register("carr-unchecked", "control: C-GRPO with citations counted whether or not the agent saw them",
          needs=("em", "rubric_unchecked"), control=True)
def _carr_unchecked(group):
    _need(group, "rubric_unchecked")
    r, m = _carr_rows(group, "rubric_unchecked")
    return r, m, grpo_advantages(r, m)


@register("turn-unguarded", "control: turn-level returns on the dense reward without its anti-farming guards",
          needs=("unguarded",), control=True)
def _turn_unguarded(group):
    _need(group, "unguarded")
    r, m = table([e.unguarded for e in group])
    return r, m, turn_advantages(r, m, gamma=0.9)


DEFAULT_SCHEMES: tuple[str, ...] = (
    "grpo", "drgrpo", "turn", "dual", "igpo", "igpo-lm", "gigpo", "pure", "tempo", "gra", "dra",
    "matchtir-hungarian", "matchtir-greedy", "matchtir-sinkhorn", "carr",
)


# --------------------------------------------------------------------------- harness entry points
def resolve_schemes(names: Sequence[str] | None, *, dapo: bool = True, controls: bool = True) -> list[str]:
    """Scheme names to run: ``names`` (``None`` or ``["all"]``: every registered scheme), each also
    as its ``+dapo`` variant when ``dapo``. Unknown names fail with the registered ones."""
    if not names or list(names) == ["all"]:
        base = [n for n, s in SCHEMES.items() if controls or not s.control]
    else:
        base = []
        for n in names:
            root = n.removesuffix("+dapo")
            if root not in SCHEMES:
                from rlvr.errors import did_you_mean

                raise ConfigError(f"unknown reward scheme {n!r}{did_you_mean(root, list(SCHEMES))}; registered: "
                                  f"{', '.join(SCHEMES)} (each also as NAME+dapo)")
            base.append(n)
    out: list[str] = []
    for n in base:
        out.append(n)
        if dapo and not n.endswith("+dapo"):
            out.append(n + "+dapo")
    return list(dict.fromkeys(out))


def applies(name: str, fields: Sequence[str]) -> bool:
    """Whether scheme ``name`` (or its ``+dapo`` variant) only needs episode ``fields`` that are present."""
    return set(SCHEMES[name.removesuffix("+dapo")].needs) <= set(fields)


def score_group(name: str, group: Sequence[Episode]) -> SchemeResult:
    """Run scheme ``name`` (``"<scheme>"`` or ``"<scheme>+dapo"``) on one group of episodes.

    Raises :class:`NotApplicable` when the group lacks what the scheme needs.
    """
    if not group:
        raise ConfigError("score_group needs a non-empty group of episodes")
    root, dapo = (name[: -len("+dapo")], True) if name.endswith("+dapo") else (name, False)
    if root not in SCHEMES:
        raise ConfigError(f"unknown reward scheme {name!r}; registered: {', '.join(SCHEMES)}")
    rewards, mask, adv = SCHEMES[root].fn(group)
    res = SchemeResult(rewards, mask, np.where(mask, adv, 0.0))
    if dapo and len(group) > 1 and float(np.std(res.returns)) < ZERO_STD:
        res.advantages = np.zeros_like(res.advantages)
        res.filtered = True
    return res
