"""Credit-assignment microbenchmark: synthetic multi-turn tasks with known ground truth, no model.

Each task is a small deterministic decision process over ``T`` turns with ``K`` choices per turn and a
handful of states, so every quantity is exact:

* ``chain``: one turn ``t*`` decides the outcome (choice ``a*`` there succeeds); the other turns do
  not matter. A *farm* choice pays a small immediate bonus and never helps.
* ``keydoor``: the key can only be taken at one turn; the door must be opened at the last turn with
  the key. Taking the key pays a progress reward; walking (the farm choice) pays a bonus.
* ``search``: a hidden target among 8 hypotheses (3 bits); each turn queries one bit or repeats a
  useless query (the farm choice). An exact Bayesian observer gives the posterior of the true
  target after each turn, so IGPO's information gain ``p_t - p_(t-1)`` is exact; at the end the
  MAP answer succeeds with probability ``1 / 2^(unknown bits)``.

The *true contribution* of turn ``t`` is the exact advantage of its action on the success
probability under the current policy, ``Q(t, s_t, a_t) - V(t, s_t)``, computed by dynamic
programming. A tabular softmax policy ``pi(a | t, s)`` is trained with each scheme's advantages
(REINFORCE with the scheme's per-turn advantage), several seeds; :func:`run_credit` reports the
metrics of :mod:`rlvr.bench.metrics` per (task, scheme).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlvr.bench import metrics as M
from rlvr.bench.schemes import Episode, NotApplicable, score_group
from rlvr.errors import ConfigError

__all__ = ["SYNTHETIC_FIELDS", "Task", "TASKS", "make_task", "CreditConfig", "train_scheme", "run_credit"]

BONUS = 0.1


@dataclass(frozen=True)
class Task:
    """A deterministic task: ``step(t, s, a) -> (s', progress)``, terminal success probability per state.

    ``farm`` is the choice that pays the immediate ``BONUS`` without helping; ``observer[t][s]`` is
    the exact probability of success the Bayesian observer gives after ``t`` turns in state ``s``
    (IGPO's ``p_t``).
    """

    name: str
    turns: int
    choices: int
    states: int
    step: Callable[[int, int, int], tuple[int, float]]
    success: np.ndarray  # [states] probability of success at the end
    farm: int
    observer: np.ndarray  # [turns + 1, states]

    def values(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``V[t, s]`` (``t = 0..T``) and ``Q[t, s, a]`` of the success probability under ``softmax(theta)``."""
        pi = softmax(theta)
        v = np.zeros((self.turns + 1, self.states))
        q = np.zeros((self.turns, self.states, self.choices))
        v[self.turns] = self.success
        for t in range(self.turns - 1, -1, -1):
            for s in range(self.states):
                for a in range(self.choices):
                    q[t, s, a] = v[t + 1, self.step(t, s, a)[0]]
                v[t, s] = float(pi[t, s] @ q[t, s])
        return v, q

    def farm_rate(self, theta: np.ndarray) -> float:
        """Expected share of turns that take the farm choice under ``softmax(theta)``."""
        pi = softmax(theta)
        dist = np.zeros(self.states)
        dist[0] = 1.0
        total = 0.0
        for t in range(self.turns):
            total += float(dist @ pi[t, :, self.farm])
            nxt = np.zeros(self.states)
            for s in np.nonzero(dist)[0]:
                for a in range(self.choices):
                    nxt[self.step(t, int(s), a)[0]] += dist[s] * pi[t, s, a]
            dist = nxt
        return total / self.turns


def softmax(theta: np.ndarray) -> np.ndarray:
    z = theta - theta.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _observer(turns: int, states: int, choices: int, step, success, fixed: np.ndarray | None) -> np.ndarray:
    """``fixed`` when given, else the success probability under a uniformly random continuation."""
    if fixed is not None:
        return fixed
    uniform = Task("", turns, choices, states, step, success, 0, np.zeros((turns + 1, states)))
    return uniform.values(np.zeros((turns, states, choices)))[0]


def make_task(name: str, seed: int = 0) -> Task:
    """Build task ``name`` (``chain``, ``keydoor`` or ``search``); ``seed`` draws its hidden layout."""
    rng = np.random.default_rng(seed)
    if name == "chain":
        turns, k = 4, 3
        t_star, a_star = int(rng.integers(turns)), int(rng.integers(k))
        farm = (a_star + 1) % k

        def step(t, s, a):  # s: 0 undecided, 1 decided right, 2 decided wrong
            if t == t_star:
                return (1 if a == a_star else 2), 0.0
            return s, 0.0

        success = np.array([0.0, 1.0, 0.0])
        return Task(name, turns, k, 3, step, success, farm, _observer(turns, 3, k, step, success, None))
    if name == "keydoor":
        turns, k = 5, 3  # choices: 0 walk (farm), 1 take the key, 2 open the door
        key_turn = int(rng.integers(1, turns - 1))

        def step(t, s, a):  # s: 0 no key, 1 key, 2 door opened with the key
            if s == 0 and a == 1 and t == key_turn:
                return 1, 0.5
            if s == 1 and a == 2 and t == turns - 1:
                return 2, 0.0
            return s, 0.0

        success = np.array([0.0, 0.0, 1.0])
        return Task(name, turns, k, 3, step, success, 0, _observer(turns, 3, k, step, success, None))
    if name == "search":
        turns, bits = 4, 3
        k = bits + 1  # query bit 0..2, or repeat a useless query (farm)

        def step(t, s, a):  # s: bitmask of the bits learnt so far
            if a < bits and not s & (1 << a):
                return s | (1 << a), 1.0 / bits
            return s, 0.0

        known = np.array([bin(s).count("1") for s in range(1 << bits)])
        success = 1.0 / 2.0 ** (bits - known)
        posterior = np.tile(success, (turns + 1, 1))  # exact Bayes: p(target | evidence) = 2^-(unknown bits)
        return Task(name, turns, k, 1 << bits, step, success, bits, posterior)
    raise ConfigError(f"unknown synthetic task {name!r}; expected one of {list(TASKS)}")


TASKS = ("chain", "keydoor", "search")
SYNTHETIC_FIELDS = ("process", "immediate", "anchors", "actions", "unguarded")
"""The optional :class:`~rlvr.bench.schemes.Episode` fields the synthetic tasks fill (no tool calls, no rubric)."""


def sample_group(task: Task, theta: np.ndarray, g: int, rng: np.random.Generator,
                 q: np.ndarray, v: np.ndarray) -> tuple[list[Episode], list[list[tuple[int, int]]]]:
    """Sample ``g`` rollouts; each becomes an :class:`Episode` with exact per-turn truth."""
    pi = softmax(theta)
    episodes, visits = [], []
    for _ in range(g):
        s, dense, immediate, process, anchors, actions, truth, seen = 0, [], [], [], [], [], [], []
        for t in range(task.turns):
            a = int(rng.choice(task.choices, p=pi[t, s]))
            s2, progress = task.step(t, s, a)
            bonus = BONUS if a == task.farm else 0.0
            truth.append(float(q[t, s, a] - v[t, s]))
            anchors.append((t, s))
            actions.append((a, s2))
            seen.append((t, s, a))
            process.append(float(task.observer[t + 1, s2] - task.observer[t, s]))
            immediate.append(progress + bonus)
            dense.append(progress + bonus)
            s = s2
        won = bool(rng.random() < task.success[s])
        dense[-1] += float(won)
        episodes.append(Episode(dense=dense, outcome=float(won), success=won, process=process,
                                immediate=immediate, anchors=anchors, actions=actions, truth=truth,
                                unguarded=list(dense)))
        visits.append(seen)
    return episodes, visits


@dataclass(frozen=True)
class CreditConfig:
    """Training settings of the microbenchmark."""

    steps: int = 200
    """Policy updates per run."""
    groups: int = 8
    """Groups (tasks) per update."""
    group_size: int = 8
    """Rollouts per group."""
    lr: float = 0.5
    """Step size of the tabular policy."""
    target: float = 0.9
    """Success probability that counts as learnt (steps to target)."""
    dapo_max_draws: int = 4
    """DAPO's dynamic sampling for the ``+dapo`` schemes: groups the filter drops are replaced by newly
    drawn ones until an update holds ``groups`` kept groups, drawing at most ``dapo_max_draws * groups``
    groups per update (DAPO's ``max_num_gen_batches``); an update then averages over the kept groups."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.groups < 1 or self.group_size < 2 or self.lr <= 0 or self.dapo_max_draws < 1:
            raise ConfigError(f"need steps >= 1, groups >= 1, group_size >= 2, lr > 0 and dapo_max_draws >= 1; "
                              f"got {self}")


def train_scheme(task: Task, scheme: str, seed: int, cfg: CreditConfig) -> dict:
    """Train the tabular policy on ``task`` with ``scheme``; return per-run metrics and per-step curves.

    Raises :class:`NotApplicable` when the scheme does not apply to the task's episodes.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    theta = np.zeros((task.turns, task.states, task.choices))
    zag, energy, rho, hit, pairs, success_curve = [], [], [], [], [], []
    first: tuple[list[float], list[float]] = ([], [])
    reached = farmed = None
    draws: list[int] = []
    max_draws = cfg.groups * cfg.dapo_max_draws if scheme.endswith("+dapo") else cfg.groups
    for step in range(cfg.steps):
        v, q = task.values(theta)
        success_curve.append(float(v[0, 0]))
        if reached is None and v[0, 0] >= cfg.target:
            reached = step
        if farmed is None and task.farm_rate(theta) > 0.5:
            farmed = step
        grad = np.zeros_like(theta)
        pi = softmax(theta)
        step_adv, step_truth, step_zero = [], [], []
        kept = drawn = 0
        while kept < cfg.groups and drawn < max_draws:
            group, visits = sample_group(task, theta, cfg.group_size, rng, q, v)
            drawn += 1
            res = score_group(scheme, group)
            step_zero.append(M.zero_advantage(res.advantages, res.mask))
            pairs.append(M.success_failure_pairs([e.success for e in group]))
            if res.filtered:  # dropped by the DAPO filter: another group is drawn in its place
                continue
            kept += 1
            for i, e in enumerate(group):
                adv = res.advantages[i, : e.turns]
                step_adv.extend(adv.tolist())
                step_truth.extend(e.truth)
                hit.append(M.argmax_hit(adv, e.truth))
                for (t, s, a), a_t in zip(visits[i], adv):
                    g = -pi[t, s].copy()
                    g[a] += 1.0
                    grad[t, s] += a_t * g
        zag.append(float(np.mean(step_zero)))
        energy.append(M.advantage_energy(np.array(step_adv)))
        rho.append(M.spearman(step_adv, step_truth))
        if step == 0:  # advantage against truth under the uniform starting policy, for the plot
            first = (step_adv[:200], step_truth[:200])
        draws.append(drawn)
        if kept:
            theta = theta + cfg.lr * grad / (kept * cfg.group_size)
    v, _ = task.values(theta)
    rhos = [r for r in rho if r is not None]
    hits = [h for h in hit if h is not None]
    return {
        "zero_adv_frac": float(np.mean(zag)),
        "groups_per_step": float(np.mean(draws)),
        "adv_energy": float(np.mean(energy)),
        "spearman": float(np.mean(rhos)) if rhos else None,
        "argmax_decisive": float(np.mean(hits)) if hits else None,
        "sxf_pairs": float(np.mean(pairs)),
        "steps_to_target": reached,
        "groups_to_target": sum(draws[:reached]) if reached is not None else None,
        "groups_drawn": sum(draws),
        "steps_to_farm": farmed,
        "final_success": float(v[0, 0]),
        "farm_rate": task.farm_rate(theta),
        "curve_zero_adv": zag,
        "curve_success": success_curve,
        "scatter": first,
    }


def run_credit(schemes: Sequence[str], seeds: Sequence[int], cfg: CreditConfig,
               tasks: Sequence[str] = TASKS, progress: Callable[[str], None] | None = None) -> dict:
    """Every (task, scheme, seed) run; returns ``{"rows": [...], "curves": {...}, "scatter": {...}}``.

    A row aggregates the seeds of one (task, scheme): mean and 95% confidence interval of each metric;
    ``steps_to_target`` is censored at ``cfg.steps`` for runs that never reached the target
    (``reached`` counts those that did), ``groups_to_target`` (the groups drawn before it: the rollout
    cost, which DAPO's refill raises) at every group the run drew; so is ``steps_to_farm``, the first
    step at which the policy takes the farm choice on more than half of its turns.
    """
    rows, curves, scatter = [], {}, {}
    for task_name in tasks:
        for scheme in schemes:
            runs = []
            for seed in seeds:
                task = make_task(task_name, seed)
                try:
                    runs.append(train_scheme(task, scheme, seed, cfg))
                except NotApplicable:
                    runs = []
                    break
                finally:
                    if progress:
                        progress(f"{task_name}/{scheme}/seed{seed}")
            if not runs:
                continue
            row = {"task": task_name, "scheme": scheme, "seeds": len(runs)}
            for key in ("zero_adv_frac", "groups_per_step", "adv_energy", "spearman", "argmax_decisive", "sxf_pairs",
                        "final_success", "farm_rate"):
                vals = [r[key] for r in runs if r[key] is not None]
                row[key], row[key + "_ci"] = M.mean_ci(vals)
            steps = [cfg.steps if r["steps_to_target"] is None else r["steps_to_target"] for r in runs]
            row["steps_to_target"], row["steps_to_target_ci"] = M.mean_ci(steps)
            row["reached"] = sum(r["steps_to_target"] is not None for r in runs)
            drawn = [r["groups_drawn"] if r["groups_to_target"] is None else r["groups_to_target"] for r in runs]
            row["groups_to_target"], row["groups_to_target_ci"] = M.mean_ci(drawn)
            farm = [cfg.steps if r["steps_to_farm"] is None else r["steps_to_farm"] for r in runs]
            row["steps_to_farm"], row["steps_to_farm_ci"] = M.mean_ci(farm)
            rows.append(row)
            curves[f"{task_name}/{scheme}"] = {
                "zero_adv": np.mean([r["curve_zero_adv"] for r in runs], axis=0).tolist(),
                "success": np.mean([r["curve_success"] for r in runs], axis=0).tolist(),
            }
            scatter[f"{task_name}/{scheme}"] = runs[0]["scatter"]
    return {"rows": rows, "curves": curves, "scatter": scatter, "config": cfg.__dict__}
