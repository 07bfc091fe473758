"""Advantage estimators for multi-turn rollouts, as pure functions on per-turn reward tables.

Every estimator works on ONE group: the ``G`` rollouts of the same task. Rewards arrive as a
table ``rewards[G, T_max]`` (``rewards[i, t]`` is the reward of rollout ``i`` at turn ``t``) with a
boolean validity mask ``mask[G, T_max]`` whose valid entries form a prefix of each row (rollout
``i`` has ``mask[i].sum()`` turns). Every estimator returns per-turn advantages ``[G, T_max]``,
zero on invalid turns; the trainer broadcasts turn ``t``'s advantage to the policy tokens of turn
``t``.

Estimators (formulas restated from the published methods):

* :func:`grpo_advantages` -- outcome GRPO: ``A_i = (R_i - mean R) / std R`` with ``R_i`` the sum of
  the rollout's turn rewards; with ``scale_by_std=False`` it is the Dr.GRPO advantage ``R_i - mean R``.
* :func:`turn_advantages` -- discounted per-turn returns normalised per turn index.
* :func:`dual_advantages` -- MatchTIR: ``(A_traj + A_turn) / 2``.
* :func:`igpo_advantages` -- IGPO: normalise the turn rewards in the group (jointly with the
  outcome, or separately), then take discounted returns.
* :func:`gigpo_advantages` -- GiGPO: episode advantage plus ``w`` times a step advantage computed
  within groups of identical observations ("anchor states").
* :func:`pure_advantages` -- PURE min-form credit assignment: soft-min weighted process rewards,
  leave-one-out baselines, reverse cumulative sum.
* :func:`tempo_advantages` -- TEMPO: GRPO plus a temporal-difference term at branching nodes of the
  prefix tree of the group's turns.

Normalisation helpers take ``std_kind``: ``"population"`` divides by ``n`` (IGPO), ``"unbiased"``
divides by ``n - 1`` (``torch.std``; MatchTIR, GiGPO, GRPO).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from rlvr.errors import ConfigError

__all__ = [
    "StdKind",
    "as_table",
    "discounted_returns",
    "dual_advantages",
    "gigpo_advantages",
    "grpo_advantages",
    "group_normalize",
    "igpo_advantages",
    "per_turn_index_normalize",
    "pure_advantages",
    "softmin_weights",
    "tempo_advantages",
    "turn_advantages",
]

StdKind = Literal["population", "unbiased"]
_STD_KINDS = ("population", "unbiased")


def as_table(rewards: np.ndarray | Sequence[Sequence[float]], mask: np.ndarray | None = None):
    """Validate and return ``(rewards, mask)`` as ``float64 [G, T]`` and ``bool [G, T]`` arrays.

    ``mask`` defaults to "every entry is valid". Raises :class:`ConfigError` when the shapes
    disagree, when a row's valid turns are not a prefix, or when a valid reward is not finite.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ConfigError(f"rewards must be a 2-D table [G, T_max]; got shape {r.shape}. "
                          "Pass one row per rollout of the group.")
    m = np.ones_like(r, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != r.shape:
        raise ConfigError(f"mask shape {m.shape} does not match rewards shape {r.shape}")
    counts = m.sum(axis=1)
    prefix = np.arange(r.shape[1])[None, :] < counts[:, None]
    if not np.array_equal(prefix, m):
        bad = int(np.nonzero((prefix != m).any(axis=1))[0][0])
        raise ConfigError(f"mask row {bad} is {m[bad].astype(int).tolist()}: valid turns must form a prefix "
                          "(turn 0..T_i-1 valid, the rest padding)")
    if not np.isfinite(r[m]).all():
        raise ConfigError("rewards contain NaN or inf on valid turns; fix the reward function "
                          "(a failed reward must be raised or recorded, not scored as NaN)")
    return np.where(m, r, 0.0), m


def _check_std_kind(std_kind: str) -> None:
    if std_kind not in _STD_KINDS:
        raise ConfigError(f"std_kind must be one of {_STD_KINDS}; got {std_kind!r}")


def _std(x: np.ndarray, std_kind: StdKind) -> float:
    ddof = 1 if std_kind == "unbiased" else 0
    return float(np.std(x, ddof=ddof)) if x.size > ddof else 0.0


def group_normalize(
    values: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    scale_by_std: bool = True,
    std_kind: StdKind = "unbiased",
    eps: float = 1e-6,
    singleton: Literal["zero", "raw"] = "zero",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Normalise the valid entries of ``values`` together: ``(x - mean) / (std + eps)``.

    With ``scale_by_std=False`` only the mean is subtracted. A single valid entry gives 0
    (``singleton="zero"``) or is returned unchanged (``singleton="raw"``: mean 0, std 1, the verl
    convention MatchTIR inherits). ``weights`` (non-negative integers, same shape) repeat entries in
    the statistics, e.g. to weight trajectories by their number of steps. Invalid entries are 0.
    """
    _check_std_kind(std_kind)
    x = np.asarray(values, dtype=np.float64)
    m = np.ones_like(x, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    out = np.zeros_like(x)
    pool = x[m]
    if weights is not None:
        pool = np.repeat(pool, np.asarray(weights)[m].astype(int))
    if pool.size == 0:
        return out
    if pool.size == 1 and m.sum() == 1:
        out[m] = 0.0 if singleton == "zero" else x[m]
        return out
    mean = float(pool.mean())
    centred = x - mean
    if scale_by_std:
        denom = _std(pool, std_kind) + eps
        # a zero spread means every value equals the mean: the advantage is 0, not 0/0
        centred = centred / denom if denom > 0 else np.zeros_like(centred)
    out[m] = centred[m]
    return out


def _broadcast(per_rollout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, per_rollout[:, None], 0.0)


def grpo_advantages(
    rewards: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    scale_by_std: bool = True,
    std_kind: StdKind = "unbiased",
    eps: float = 1e-6,
) -> np.ndarray:
    """Outcome GRPO: ``A_i = (R_i - mean_g R) / (std_g R + eps)`` broadcast to every valid turn.

    ``scale_by_std=False`` gives Dr.GRPO's unscaled advantage ``R_i - mean_g R`` (pair it with the
    constant-length loss aggregation ``seq-mean-token-sum-norm``).
    """
    r, m = as_table(rewards, mask)
    total = (r * m).sum(axis=1)
    adv = group_normalize(total, scale_by_std=scale_by_std, std_kind=std_kind, eps=eps)
    return _broadcast(adv, m)


def discounted_returns(rewards: np.ndarray, mask: np.ndarray | None = None, gamma: float = 1.0) -> np.ndarray:
    """Per-turn returns ``G_{i,t} = r_{i,t} + gamma * G_{i,t+1}`` over each rollout's valid turns."""
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"gamma must be in [0, 1]; got {gamma}")
    r, m = as_table(rewards, mask)
    out = np.zeros_like(r)
    running = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = np.where(m[:, t], r[:, t] + gamma * running, 0.0)
        out[:, t] = running
    return out


def per_turn_index_normalize(
    values: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    scale_by_std: bool = True,
    std_kind: StdKind = "unbiased",
    eps: float = 1e-6,
    singleton: Literal["zero", "raw"] = "raw",
) -> np.ndarray:
    """Normalise each column (turn index ``t``) over the rollouts that reached turn ``t``."""
    v, m = as_table(values, mask)
    out = np.zeros_like(v)
    for t in range(v.shape[1]):
        out[:, t] = group_normalize(v[:, t], m[:, t], scale_by_std=scale_by_std, std_kind=std_kind,
                                    eps=eps, singleton=singleton)
    return out


def turn_advantages(
    rewards: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    gamma: float = 0.9,
    scale_by_std: bool = True,
    std_kind: StdKind = "unbiased",
    eps: float = 1e-6,
) -> np.ndarray:
    """Turn-level advantage: discounted returns normalised per (prompt, turn index).

    A turn index reached by a single rollout keeps its raw return (mean 0, std 1), as in MatchTIR.
    """
    r, m = as_table(rewards, mask)
    returns = discounted_returns(r, m, gamma)
    return per_turn_index_normalize(returns, m, scale_by_std=scale_by_std, std_kind=std_kind, eps=eps)


def dual_advantages(
    rewards: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    gamma: float = 0.9,
    std_kind: StdKind = "unbiased",
    eps: float = 1e-6,
) -> np.ndarray:
    """MatchTIR dual-level advantage ``(A_traj + A_turn) / 2``.

    ``A_traj`` is the GRPO advantage of the summed turn rewards; ``A_turn`` is
    :func:`turn_advantages` with discount ``gamma`` (MatchTIR uses 0.9).
    """
    r, m = as_table(rewards, mask)
    a_traj = grpo_advantages(r, m, std_kind=std_kind, eps=eps)
    a_turn = turn_advantages(r, m, gamma=gamma, std_kind=std_kind, eps=eps)
    return np.where(m, (a_traj + a_turn) / 2.0, 0.0)


def igpo_advantages(
    process: np.ndarray,
    process_mask: np.ndarray,
    outcome: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    norm: Literal["joint", "separate"] = "joint",
    gamma: float = 1.0,
    std_kind: StdKind = "population",
    eps: float = 1e-6,
) -> np.ndarray:
    """IGPO advantage: group-normalise turn rewards, then discounted per-turn returns.

    ``process[i, t]`` is the per-turn (information-gain) reward where ``process_mask[i, t]`` is
    true; ``outcome[i]`` is the final reward, placed on rollout ``i``'s last valid turn.
    ``norm="joint"`` pools every process and outcome value of the group into one mean/std (the
    paper); ``"separate"`` normalises the outcomes among themselves and the process rewards among
    themselves (the released training script). Turn boundaries are explicit, so a reward that
    normalises to exactly 0 still ends its turn (unlike the token "!= 0" trick).
    """
    _, m = as_table(np.zeros_like(np.asarray(process, dtype=np.float64)), mask)
    p, pm = np.asarray(process, dtype=np.float64), np.asarray(process_mask, dtype=bool)
    o = np.asarray(outcome, dtype=np.float64)
    if pm.shape != m.shape or o.shape != (m.shape[0],):
        raise ConfigError(f"igpo_advantages: process_mask {pm.shape}, mask {m.shape} and outcome {o.shape} "
                          "must be [G, T], [G, T] and [G]")
    if (pm & ~m).any():
        raise ConfigError("process_mask marks a turn that the validity mask says does not exist")
    if not (np.isfinite(p[pm]).all() and np.isfinite(o).all()):
        raise ConfigError("igpo_advantages: process or outcome rewards contain NaN/inf")
    counts = m.sum(axis=1)
    has_turn = counts > 0
    last = np.zeros_like(m)
    last[np.nonzero(has_turn)[0], counts[has_turn] - 1] = True
    if norm == "joint":
        pool_vals = np.concatenate([p[pm], o[has_turn]])
        n_p = int(pm.sum())
        normed = group_normalize(pool_vals, std_kind=std_kind, eps=eps)
        p_n, o_n = np.zeros_like(p), np.zeros_like(o)
        p_n[pm] = normed[:n_p]
        o_n[has_turn] = normed[n_p:]
    elif norm == "separate":
        p_n = group_normalize(p, pm, std_kind=std_kind, eps=eps)
        o_n = group_normalize(o, has_turn, std_kind=std_kind, eps=eps)
    else:
        raise ConfigError(f"norm must be 'joint' or 'separate'; got {norm!r}")
    turn_reward = np.where(pm, p_n, 0.0) + np.where(last, o_n[:, None], 0.0)
    return discounted_returns(turn_reward, m, gamma)


def gigpo_advantages(
    rewards: np.ndarray,
    mask: np.ndarray | None,
    anchor_keys: Sequence[Sequence[Hashable]],
    *,
    gamma: float = 0.95,
    step_weight: float = 1.0,
    scale_by_std: bool = False,
    std_kind: StdKind = "unbiased",
    cross_steps: bool = True,
    eps: float = 1e-6,
) -> np.ndarray:
    """GiGPO: ``A_{i,t} = A^E_i + step_weight * A^S_{i,t}``.

    ``A^E`` normalises the episode return ``R_i = sum_t r_{i,t}`` over the group; with
    ``cross_steps=True`` (the released code) each rollout counts once per step, so longer rollouts
    weigh more in the statistics. ``anchor_keys[i][t]`` is a hashable of the observation the agent
    saw before acting at turn ``t``; valid turns with equal keys (any rollout, any turn index) form
    a step group, and ``A^S`` normalises the ``gamma``-discounted return within it (0 for a step
    group of one). ``scale_by_std=False`` is GiGPO's ``mean_norm`` mode, True is ``mean_std_norm``.
    """
    r, m = as_table(rewards, mask)
    if len(anchor_keys) != r.shape[0] or any(len(k) < int(c) for k, c in zip(anchor_keys, m.sum(axis=1))):
        raise ConfigError("anchor_keys must have one row per rollout with a key for every valid turn; "
                          f"got {len(anchor_keys)} rows for {r.shape[0]} rollouts")
    total = (r * m).sum(axis=1)
    counts = m.sum(axis=1)
    a_e = group_normalize(total, counts > 0, scale_by_std=scale_by_std, std_kind=std_kind, eps=eps,
                          weights=np.maximum(counts, 1) if cross_steps else None)
    returns = discounted_returns(r, m, gamma)
    groups: dict[Hashable, list[tuple[int, int]]] = defaultdict(list)
    for i in range(r.shape[0]):
        for t in range(int(counts[i])):
            groups[anchor_keys[i][t]].append((i, t))
    a_s = np.zeros_like(r)
    for members in groups.values():
        vals = np.array([returns[i, t] for i, t in members])
        normed = group_normalize(vals, scale_by_std=scale_by_std, std_kind=std_kind, eps=eps)
        for (i, t), v in zip(members, normed):
            a_s[i, t] = v
    return np.where(m, a_e[:, None] + step_weight * a_s, 0.0)


def softmin_weights(values: np.ndarray, mask: np.ndarray | None = None, temperature: float = 0.1) -> np.ndarray:
    """Per-row ``softmax(-values / temperature)`` over valid turns (0 elsewhere)."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0; got {temperature}")
    v, m = as_table(values, mask)
    logits = np.where(m, -v / temperature, -np.inf)
    row_max = np.max(logits, axis=1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.where(m, np.exp(logits - row_max), 0.0)
    z = e.sum(axis=1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def _leave_one_out_mean(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    if n < 2:
        return np.zeros_like(x)
    return (x.sum() - x) / (n - 1)


def pure_advantages(
    process: np.ndarray,
    mask: np.ndarray | None = None,
    outcome: np.ndarray | None = None,
    *,
    temperature: float = 0.1,
    weighted: bool = True,
    baseline: Literal["step", "token"] = "step",
    token_counts: np.ndarray | None = None,
    outcome_coef: float = 1.0,
) -> np.ndarray:
    """PURE min-form credit assignment.

    1. ``w_t = softmax_t(-PR_t / temperature)`` (``weighted=False``: uniform ``1``), ``PR'_t = w_t PR_t``,
       so ``sum_t PR'_t`` approximates ``min_t PR_t``.
    2. Leave-one-out baseline from the other rollouts' ``R_j = sum_t PR'_{j,t}``: ``"step"`` subtracts
       ``mean_{j!=i}(R_j / T_j)`` from every turn; ``"token"`` subtracts
       ``(sum_{j!=i} R_j / sum_{j!=i} len_j) * n_tokens(i, t)`` (needs ``token_counts``).
    3. ``outcome`` (optional, e.g. solved 0/1) adds ``outcome_coef * (V_i - mean_{j!=i} V_j)`` at the last turn.
    4. The advantage is the undiscounted reverse cumulative sum of the resulting turn rewards.
    """
    p, m = as_table(process, mask)
    counts = m.sum(axis=1)
    w = softmin_weights(p, m, temperature) if weighted else m.astype(np.float64)
    pr = w * p
    totals = pr.sum(axis=1)
    if baseline == "step":
        per_step = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
        pr = pr - np.where(m, _leave_one_out_mean(per_step)[:, None], 0.0)
    elif baseline == "token":
        if token_counts is None:
            raise ConfigError("baseline='token' needs token_counts[G, T] (policy tokens per turn)")
        tc = np.where(m, np.asarray(token_counts, dtype=np.float64), 0.0)
        lens = tc.sum(axis=1)
        g = p.shape[0]
        if g >= 2:
            others_r = totals.sum() - totals
            others_len = lens.sum() - lens
            b = np.divide(others_r, others_len, out=np.zeros_like(others_r), where=others_len > 0)
            pr = pr - b[:, None] * tc
    else:
        raise ConfigError(f"baseline must be 'step' or 'token'; got {baseline!r}")
    if outcome is not None:
        o = np.asarray(outcome, dtype=np.float64)
        if o.shape != (p.shape[0],):
            raise ConfigError(f"outcome must have shape [G]=({p.shape[0]},); got {o.shape}")
        vr = outcome_coef * (o - _leave_one_out_mean(o))
        has = counts > 0
        pr[np.nonzero(has)[0], counts[has] - 1] += vr[has]
    return discounted_returns(pr, m, 1.0)


def tempo_advantages(
    rewards: np.ndarray,
    mask: np.ndarray | None,
    turn_keys: Sequence[Sequence[Hashable]],
    *,
    scale_by_std: bool = True,
    std_kind: StdKind = "unbiased",
    eps: float = 1e-6,
) -> np.ndarray:
    """TEMPO over a prefix tree of turns: ``A_{i,t} = Â_i + 1[s_t branches] (V(s_{t+1}) - V(s_t))``.

    ``Â`` is the GRPO advantage; node ``s_t`` of rollout ``i`` is the tuple of its first ``t`` turn
    keys (``turn_keys[i][t]`` is a hashable of turn ``t``, e.g. the action and its observation);
    ``V(s)`` is the mean ``Â`` of the rollouts passing through ``s``. A node branches when its
    rollouts continue in more than one way (a rollout that ends at the node counts as one way).
    """
    r, m = as_table(rewards, mask)
    counts = m.sum(axis=1)
    if len(turn_keys) != r.shape[0] or any(len(k) < int(c) for k, c in zip(turn_keys, counts)):
        raise ConfigError("turn_keys must have one row per rollout with a key for every valid turn")
    a_hat = group_normalize((r * m).sum(axis=1), scale_by_std=scale_by_std, std_kind=std_kind, eps=eps)
    through: dict[tuple, list[int]] = defaultdict(list)
    children: dict[tuple, set] = defaultdict(set)
    end = object()
    for i in range(r.shape[0]):
        keys = tuple(turn_keys[i][: int(counts[i])])
        for t in range(len(keys) + 1):
            through[keys[:t]].append(i)
            children[keys[:t]].add(keys[t] if t < len(keys) else end)
    value = {node: float(np.mean(a_hat[idx])) for node, idx in through.items()}
    out = np.zeros_like(r)
    for i in range(r.shape[0]):
        keys = tuple(turn_keys[i][: int(counts[i])])
        for t in range(len(keys)):
            node = keys[:t]
            td = value[keys[: t + 1]] - value[node] if len(children[node]) > 1 else 0.0
            out[i, t] = a_hat[i] + td
    return out
