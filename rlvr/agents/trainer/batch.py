"""From a step's trajectories to per-turn reward tables, group advantages and their statistics.

Pure functions over :class:`~rlvr.agents.trajectory.Trajectory` lists laid out group by group
(rollouts ``g*G .. g*G+G-1`` share task ``g``). The trainer calls them in this order:
:func:`drop_infra_groups` -> :func:`reward_tables` -> :func:`step_advantages` (which runs
:func:`group_advantages` on every group and sums up with :func:`advantage_stats`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlvr.agents.rollout import infra_failure
from rlvr.agents.trainer import advantages as adv
from rlvr.agents.trainer.config import Advantage, RewardScheme, TrainConfig
from rlvr.agents.trainer.sequences import TokenSequence, broadcast_turn_values
from rlvr.errors import ConfigError
from rlvr.rewards.gated import GatedRewardAccumulation, RewardTier

__all__ = ["RewardTables", "StepAdvantages", "advantage_stats", "anchor_keys", "drop_infra_groups", "gate_tiers",
           "group_advantages", "reward_tables", "step_advantages", "turn_keys"]


@dataclass
class RewardTables:
    """Per-turn rewards of ``N`` trajectories, padded to ``T_max`` turns.

    ``process[i, t]``: weighted non-outcome components of turn ``t`` (plus the information gain under
    the ``info_gain`` scheme); ``outcome[i]``: the weighted outcome components of the trajectory;
    ``total()`` puts the outcome on each trajectory's last turn.
    """

    process: np.ndarray
    outcome: np.ndarray
    mask: np.ndarray
    component_totals: dict[str, np.ndarray] = field(default_factory=dict)
    """Ungated, unweighted total of each named component per trajectory (for logging)."""
    ungated_return: np.ndarray | None = None
    """``gated`` scheme: the direct (D-RA) sum, to compare with the gated return."""

    def total(self) -> np.ndarray:
        out = self.process.copy()
        counts = self.mask.sum(axis=1)
        rows = np.nonzero(counts > 0)[0]
        out[rows, counts[rows] - 1] += self.outcome[rows]
        return out

    def returns(self) -> np.ndarray:
        return (self.total() * self.mask).sum(axis=1)


def drop_infra_groups(trajectories: Sequence[Any], group_size: int) -> tuple[list[Any], dict[str, float]]:
    """Leave episodes ended by an infrastructure failure out of training, with their whole group.

    An infra-failed episode says nothing about the policy (its reward is not the model's doing), and a
    group that lost a member would compare the rest against a smaller, biased baseline, so every
    group with such an episode is dropped. Returns the kept trajectories (still group by group) and
    metrics: ``infra/episodes`` (infra-failed episodes), ``infra/groups_dropped``, ``infra/groups_kept``.
    """
    if group_size < 1 or len(trajectories) % group_size:
        raise ConfigError(f"{len(trajectories)} trajectories do not make whole groups of {group_size}")
    kept: list[Any] = []
    failed = dropped = 0
    for g in range(0, len(trajectories), group_size):
        group = list(trajectories[g:g + group_size])
        bad = sum(infra_failure(t) is not None for t in group)
        failed += bad
        if bad:
            dropped += 1
        else:
            kept.extend(group)
    return kept, {"infra/episodes": float(failed), "infra/groups_dropped": float(dropped),
                  "infra/groups_kept": float(len(kept) // group_size)}


def gate_tiers(config: TrainConfig, component_names: Sequence[str]) -> tuple[RewardTier, ...]:
    """G-RA tiers from the config: one tier per ``gate_priority`` entry with its threshold, then a
    last tier with every other component."""
    tiers = [RewardTier(name, (name,), float(th)) for name, th in zip(config.gate_priority, config.gate_thresholds)]
    rest = tuple(sorted(set(component_names) - set(config.gate_priority)))
    if rest:
        tiers.append(RewardTier("rest", rest))
    return tuple(tiers)


def _weights_in_force(trajectory: Any, config: TrainConfig) -> dict[str, float]:
    """The weights the environment applied to ``trajectory`` (as recorded), else ``config.reward_weights``."""
    repro = getattr(trajectory, "repro", None)
    recorded = getattr(repro, "reward_weights", None)
    return dict(config.reward_weights if recorded is None else recorded)


def reward_tables(
    trajectories: Sequence[Any],
    config: TrainConfig,
    info_gain: Sequence[Sequence[float]] | None = None,
    weights: dict[str, float] | None = None,
) -> RewardTables:
    """Per-turn reward tables under ``config.reward``: the one place the trainer computes a reward.

    A turn's components are weighted as the environment weighted them to form the turn's
    ``reward``: with the weights in force that rollout records on each trajectory
    (``repro.reward_weights``: the environment's defaults overridden by ``config.reward_weights``,
    which the trainer passes to it). So under the ``env`` scheme each trajectory's return is its
    ``total_reward``, the environment's own sum. ``weights``, when given, replace the recorded
    weights; a trajectory recorded without weights (built by hand) falls back on
    ``config.reward_weights``. Unnamed components weigh 1.0. ``info_gain[i][t]`` is trajectory
    ``i``'s gain for turn ``t`` (required for the ``info_gain`` scheme; a trajectory has one fewer
    gain than turns).
    """
    n = len(trajectories)
    t_max = max((len(t.turns) for t in trajectories), default=0)
    process, outcome = np.zeros((n, max(t_max, 1))), np.zeros(n)
    mask = np.zeros((n, max(t_max, 1)), dtype=bool)
    totals: dict[str, np.ndarray] = {}
    names = sorted({k for t in trajectories for turn in t.turns for k in turn.reward_components})
    gate = None
    ungated = None
    if config.reward is RewardScheme.GATED:
        gate = GatedRewardAccumulation(gate_tiers(config, names), unassigned="error")
        ungated = np.zeros(n)
    if config.reward is RewardScheme.INFO_GAIN and (info_gain is None or len(info_gain) != n):
        raise ConfigError("the info_gain reward scheme needs one list of information gains per trajectory")
    outcome_names = set(config.outcome_components)
    for i, traj in enumerate(trajectories):
        w = _weights_in_force(traj, config) if weights is None else weights
        comps = [{k: w.get(k, 1.0) * float(v) for k, v in turn.reward_components.items()} for turn in traj.turns]
        for turn in traj.turns:
            for k, v in turn.reward_components.items():
                totals.setdefault(k, np.zeros(n))[i] += float(v)
        if gate is not None:
            res = gate.result(comps)
            ungated[i] = res.ungated_total  # type: ignore[index]
            closed = {c for tier in gate.tiers if not res.gates[tier.name] for c in tier.components}
            comps = [{k: (0.0 if k in closed else v) for k, v in c.items()} for c in comps]
        for t, c in enumerate(comps):
            mask[i, t] = True
            process[i, t] = sum(v for k, v in c.items() if k not in outcome_names)
            outcome[i] += sum(v for k, v in c.items() if k in outcome_names)
        if info_gain is not None and config.reward is RewardScheme.INFO_GAIN:
            gains = list(info_gain[i])
            if len(gains) > len(traj.turns):
                raise ConfigError(f"trajectory {i}: {len(gains)} information gains for {len(traj.turns)} turns")
            for t, g in enumerate(gains):
                process[i, t] += config.ig_weight * float(g)
    return RewardTables(process, outcome, mask, totals, ungated)


def _obs_key(messages: Sequence[dict[str, Any]]) -> str:
    return json.dumps([m.get("content") for m in messages], ensure_ascii=False, default=repr)


def anchor_keys(trajectory: Any) -> list[str]:
    """GiGPO anchor state per turn: the environment output the agent saw right before acting
    (the opening task for turn 0, the previous turn's observation after that)."""
    keys = [_obs_key(trajectory.initial_messages[-1:])]
    keys += [_obs_key(turn.observation) for turn in trajectory.turns[:-1]]
    return keys


def turn_keys(trajectory: Any) -> list[tuple[str, str]]:
    """TEMPO prefix-tree edge per turn: the action and the observation it produced."""
    return [(turn.action, _obs_key(turn.observation)) for turn in trajectory.turns]


def group_advantages(
    tables: RewardTables,
    rows: slice,
    config: TrainConfig,
    trajectories: Sequence[Any],
    token_counts: np.ndarray | None = None,
) -> np.ndarray:
    """Per-turn advantages ``[G, T_max]`` of the group ``rows`` under ``config.advantage``."""
    process, outcome, mask = tables.process[rows], tables.outcome[rows], tables.mask[rows]
    total = RewardTables(process, outcome, mask).total()
    trajs = list(trajectories[rows])
    a = config.advantage
    std_kind = config.effective_std_kind
    gamma = config.effective_gamma
    if a is Advantage.GRPO:
        return adv.grpo_advantages(total, mask, scale_by_std=config.scale_by_std, std_kind=std_kind)
    if a is Advantage.DR_GRPO:
        return adv.grpo_advantages(total, mask, scale_by_std=False, std_kind=std_kind)
    if a is Advantage.TURN:
        return adv.turn_advantages(total, mask, gamma=gamma, scale_by_std=config.scale_by_std, std_kind=std_kind)
    if a is Advantage.DUAL:
        return adv.dual_advantages(total, mask, gamma=gamma, std_kind=std_kind)
    if a is Advantage.IGPO:
        counts = mask.sum(axis=1)
        not_last = mask & (np.arange(mask.shape[1])[None, :] < (counts - 1)[:, None])
        last_process = np.array([process[i, c - 1] if c > 0 else 0.0 for i, c in enumerate(counts)])
        return adv.igpo_advantages(process, not_last, outcome + last_process, mask, norm=config.igpo_norm,
                                   gamma=gamma, std_kind=std_kind)
    if a is Advantage.GIGPO:
        return adv.gigpo_advantages(total, mask, [anchor_keys(t) for t in trajs], gamma=gamma,
                                    step_weight=config.gigpo_step_weight, scale_by_std=config.scale_by_std,
                                    std_kind=std_kind)
    if a is Advantage.PURE:
        tc = token_counts[rows] if token_counts is not None else None
        return adv.pure_advantages(process, mask, outcome, temperature=config.pure_temperature,
                                   baseline=config.pure_baseline, token_counts=tc)
    if a is Advantage.TEMPO:
        return adv.tempo_advantages(total, mask, [turn_keys(t) for t in trajs], scale_by_std=config.scale_by_std,
                                    std_kind=std_kind)
    raise ConfigError(f"unknown advantage estimator {a!r}")  # pragma: no cover - the enum is exhaustive


@dataclass
class StepAdvantages:
    """A step's advantages: per turn ``[N, T_max]``, per token (one list per sequence) and their statistics."""

    turn: np.ndarray
    token: list[list[float]]
    stats: dict[str, float]


def step_advantages(
    tables: RewardTables,
    trajectories: Sequence[Any],
    seqs: Sequence[TokenSequence],
    config: TrainConfig,
) -> StepAdvantages:
    """Group advantages of every group of ``config.group_size`` rows, broadcast to the policy tokens.

    Turn ``t``'s advantage goes to every generated token of turn ``t`` (``seqs[i].turn_spans``; the
    token counts of the turns feed ``pure``'s per-token baseline); ``stats`` are
    :func:`advantage_stats` over the groups.
    """
    n, g = len(trajectories), config.group_size
    if n == 0 or n % g or len(seqs) != n or tables.mask.shape[0] != n:
        raise ConfigError(f"step_advantages needs whole groups of {g} with one sequence and one table row per "
                          f"trajectory; got {n} trajectories, {len(seqs)} sequences, {tables.mask.shape[0]} rows")
    token_counts = np.zeros_like(tables.mask, dtype=float)
    for i, s in enumerate(seqs):
        for t, (a, b) in enumerate(s.turn_spans):
            token_counts[i, t] = b - a
    groups = [slice(k, k + g) for k in range(0, n, g)]
    per_group = [group_advantages(tables, rows, config, trajectories, token_counts) for rows in groups]
    turn_adv = np.concatenate(per_group, axis=0)
    token_adv = [broadcast_turn_values(s, turn_adv[i]) for i, s in enumerate(seqs)]
    return StepAdvantages(turn_adv, token_adv, advantage_stats(per_group, [tables.mask[rows] for rows in groups]))


def advantage_stats(per_group: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean, std, min, max of valid per-turn advantages, and the fraction of groups whose
    advantages are all zero (no learning signal: e.g. every rollout got the same reward)."""
    vals = np.concatenate([a[m] for a, m in zip(per_group, masks)]) if per_group else np.zeros(0)
    zero = [bool(np.all(np.abs(a[m]) < 1e-8)) for a, m in zip(per_group, masks)]
    if vals.size == 0:
        return {"adv/mean": 0.0, "adv/std": 0.0, "adv/min": 0.0, "adv/max": 0.0, "adv/zero_group_frac": 1.0}
    return {
        "adv/mean": float(vals.mean()),
        "adv/std": float(vals.std()),
        "adv/min": float(vals.min()),
        "adv/max": float(vals.max()),
        "adv/zero_group_frac": float(np.mean(zero)),
    }
