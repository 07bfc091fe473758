"""G-RA, gated reward accumulation (Sun et al., arXiv 2508.10548), and the ungated D-RA sum.

Rewards are ordered by priority (tiers). A tier's rewards accumulate only when every higher tier's
return reaches its threshold::

    R(tau) = sum_k sum_t 1[ for all j higher than k: R^(j)(tau) >= delta_j ] * r_t^(k)

with ``R^(j)(tau) = sum_t r_t^(j)``. In the two-level software-engineering form,
``R = R_high + 1[R_high >= delta] * sum_t r_low_t``: when the agent never submits, or submits an
empty patch, the immediate (per-turn) rewards count for nothing. D-RA, the direct sum
``R_high + sum_t r_low_t``, is kept for comparison: it is the form that invites reward hacking
(collect step rewards, never submit).

Everything here is a pure function of per-turn reward components (the dicts environments put in
``info["reward_components"]``), or a frozen, picklable callable built from them. Apply the gate per
trajectory, before the advantage estimator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from rlvr.errors import ConfigError

__all__ = [
    "SubmissionOutcome", "OutcomeLevels", "RewardTier", "GatedResult", "GatedRewardAccumulation",
    "gated_accumulation", "gra", "dra", "swe_tiers", "turn_components",
]


class SubmissionOutcome(StrEnum):
    """The high-level outcome of a software-engineering episode, from worst to best."""

    NO_SUBMISSION = "no_submission"
    REGRESSION = "regression"
    """A submitted patch that makes tests fail which passed without it (PASS_TO_PASS), e.g. one that breaks
    the package: worse than submitting nothing changed."""
    EMPTY_PATCH = "empty_patch"
    TESTS_FAIL = "tests_fail"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class OutcomeLevels:
    """Reward of each :class:`SubmissionOutcome`; must increase strictly in the order
    no submission < regression < empty patch < tests fail < resolved. (The paper's constants were not
    published; these defaults put the G-RA gate at ``delta = 0``: a submitted patch that changes the
    repository without breaking what passed opens it.)"""

    no_submission: float = -1.0
    """Episode ended (turn budget) without a submission."""
    regression: float = -0.75
    """Submitted a patch that breaks tests which passed without it (a PASS_TO_PASS test fails)."""
    empty_patch: float = -0.5
    """Submitted, but the work tree had no changes."""
    tests_fail: float = 0.0
    """Submitted a patch that does not resolve the task (or does not apply)."""
    resolved: float = 1.0
    """Every FAIL_TO_PASS test passes and every PASS_TO_PASS test still passes."""

    def __post_init__(self) -> None:
        vals = [getattr(self, o.value) for o in SubmissionOutcome]  # the outcomes, worst to best
        if any(b <= a for a, b in zip(vals, vals[1:])):
            raise ConfigError(f"OutcomeLevels must increase strictly (no_submission < regression < empty_patch < "
                              f"tests_fail < resolved); got {vals}")

    def value(self, outcome: SubmissionOutcome | str) -> float:
        """The reward of ``outcome``."""
        try:
            key = SubmissionOutcome(outcome)
        except ValueError as e:
            raise ConfigError(f"unknown outcome {outcome!r}; expected one of {[o.value for o in SubmissionOutcome]}") from e
        return float(getattr(self, key.value))

    def gate_threshold(self, opens_at: SubmissionOutcome | str = SubmissionOutcome.TESTS_FAIL) -> float:
        """The ``delta`` at which the gate opens exactly from ``opens_at`` upwards."""
        return self.value(opens_at)


@dataclass(frozen=True)
class RewardTier:
    """One priority level: the reward components it sums, and the threshold ``delta`` its return must
    reach for the tiers below it to count (``None``: it never closes the gate)."""

    name: str
    components: tuple[str, ...]
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("RewardTier.name must be non-empty")
        if isinstance(self.components, str):
            raise ConfigError(f"RewardTier.components must be a tuple of names, got the string {self.components!r}")
        if not self.components:
            raise ConfigError(f"RewardTier {self.name!r} needs at least one component name")


@dataclass(frozen=True)
class GatedResult:
    """What :func:`gated_accumulation` computed."""

    total: float
    """``R(tau)`` after gating."""
    ungated_total: float
    """The direct (D-RA) sum of the same components."""
    tier_returns: dict[str, float]
    """``R^(k)(tau)`` of each tier, ungated."""
    gates: dict[str, bool]
    """Whether each tier counted (every higher tier reached its threshold)."""
    turn_rewards: list[float]
    """Per-turn rewards after gating; they sum to ``total``."""


def turn_components(trajectory: Any) -> list[Mapping[str, float]]:
    """Per-turn component dicts from a list of dicts, or from a trajectory with ``.turns`` whose turns
    carry ``reward_components``."""
    turns = getattr(trajectory, "turns", trajectory)
    out = []
    for i, t in enumerate(turns):
        comp = t if isinstance(t, Mapping) else getattr(t, "reward_components", None)
        if not isinstance(comp, Mapping):
            raise ConfigError(f"turn {i}: expected a mapping of reward components, got {type(t).__name__}")
        out.append(comp)
    return out


def gated_accumulation(components: Sequence[Mapping[str, float]], tiers: Sequence[RewardTier], *,
                       unassigned: Literal["error", "ignore"] = "error") -> GatedResult:
    """G-RA over a trajectory's per-turn components with the general priority chain.

    Args:
        components: one ``{name: value}`` per turn; names missing from a turn count as 0.
        tiers: highest priority first; each component belongs to at most one tier.
        unassigned: ``"error"`` raises on a component no tier lists; ``"ignore"`` leaves it out.
    """
    if not tiers:
        raise ConfigError("gated_accumulation needs at least one RewardTier")
    owner: dict[str, int] = {}
    for k, tier in enumerate(tiers):
        for c in tier.components:
            if c in owner:
                raise ConfigError(f"component {c!r} is in tiers {tiers[owner[c]].name!r} and {tier.name!r}; "
                                  "each component belongs to one tier")
            owner[c] = k
    if len({t.name for t in tiers}) != len(tiers):
        raise ConfigError(f"tier names must be unique, got {[t.name for t in tiers]}")
    per_turn = [[0.0] * len(tiers) for _ in components]
    for i, comp in enumerate(components):
        for name, value in comp.items():
            k = owner.get(name)
            if k is None:
                if unassigned == "error":
                    raise ConfigError(f"turn {i}: component {name!r} is in no tier (tiers: "
                                      f"{ {t.name: t.components for t in tiers} }); add it or pass unassigned='ignore'")
                continue
            per_turn[i][k] += float(value)
    returns = [sum(row[k] for row in per_turn) for k in range(len(tiers))]
    gates = []
    open_ = True
    for k, tier in enumerate(tiers):
        gates.append(open_)
        if tier.threshold is not None and returns[k] < tier.threshold:
            open_ = False
    turn_rewards = [sum(row[k] for k in range(len(tiers)) if gates[k]) for row in per_turn]
    return GatedResult(
        total=sum(returns[k] for k in range(len(tiers)) if gates[k]),
        ungated_total=sum(returns),
        tier_returns={t.name: r for t, r in zip(tiers, returns)},
        gates={t.name: g for t, g in zip(tiers, gates)},
        turn_rewards=turn_rewards,
    )


def gra(r_high: float, r_low: Sequence[float], threshold: float) -> float:
    """Two-level G-RA: ``R_high + 1[R_high >= threshold] * sum(r_low)``."""
    return float(r_high) + (float(sum(r_low)) if r_high >= threshold else 0.0)


def dra(r_high: float, r_low: Sequence[float]) -> float:
    """Direct reward accumulation (the ungated baseline): ``R_high + sum(r_low)``."""
    return float(r_high) + float(sum(r_low))


SWE_LOW_COMPONENTS = ("valid_call", "modification", "test_run", "format", "tool_validity")


def swe_tiers(threshold: float | None = None, *, levels: OutcomeLevels | None = None,
              high: Sequence[str] = ("outcome",), low: Sequence[str] = SWE_LOW_COMPONENTS) -> tuple[RewardTier, ...]:
    """The two tiers of rlvr/SWE-v0: the submission outcome gates the immediate per-turn rewards.

    ``threshold`` defaults to the ``tests_fail`` level of ``levels``: the gate opens for any
    non-empty submitted patch.
    """
    delta = (levels or OutcomeLevels()).gate_threshold() if threshold is None else threshold
    return (RewardTier("outcome", tuple(high), delta), RewardTier("immediate", tuple(low)))


@dataclass(frozen=True)
class GatedRewardAccumulation:
    """G-RA as a picklable callable: ``gra(trajectory) -> per-turn gated rewards``.

    Args:
        tiers: priority tiers, highest first (default: :func:`swe_tiers`).
        unassigned: what to do with components no tier lists (see :func:`gated_accumulation`).
        gated: ``False`` gives the D-RA baseline (same tiers, gates always open).
    """

    tiers: tuple[RewardTier, ...] = swe_tiers()
    unassigned: Literal["error", "ignore"] = "ignore"
    gated: bool = True

    def __post_init__(self) -> None:
        if self.unassigned not in ("error", "ignore"):
            raise ConfigError(f"unassigned must be 'error' or 'ignore', got {self.unassigned!r}")
        object.__setattr__(self, "tiers", tuple(self.tiers))

    def result(self, trajectory: Any) -> GatedResult:
        """The full :class:`GatedResult` of a trajectory (or list of per-turn component dicts)."""
        tiers = self.tiers if self.gated else tuple(RewardTier(t.name, t.components, None) for t in self.tiers)
        return gated_accumulation(turn_components(trajectory), tiers, unassigned=self.unassigned)

    def __call__(self, trajectory: Any) -> list[float]:
        return self.result(trajectory).turn_rewards

    def total(self, trajectory: Any) -> float:
        """``R(tau)`` of one trajectory."""
        return self.result(trajectory).total
