"""Learning with a language model: the harness of ``rlvr bench rewards --learning``.

Short ``rlvr train`` runs of the same model, seeds and budget after the behaviour-cloning warm start,
one per (environment, scheme, seed), outcome-only against turn-level schemes. Each run writes its
usual folder (``metrics.jsonl``, ``eval_warmup/`` and ``eval_after/`` held-out trajectories);
:func:`collect_learning` reads them back into per-(environment, scheme) rows: held-out success
after the warm start and after RL (mean and 95% interval over seeds), the gain, and per-step
curves of the training success and the zero-advantage group fraction.

Runs go through a ``runner`` (default: ``python -m rlvr train ARGS`` in a subprocess), so the harness
itself never loads a model; each run takes minutes on CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.bench import metrics as M
from rlvr.errors import ConfigError

__all__ = ["LEARNING_ENVS", "LEARNING_SCHEMES", "LearningRun", "plan_learning", "run_learning", "collect_learning"]

LEARNING_SCHEMES: dict[str, list[str]] = {
    "grpo": ["--advantage", "grpo"],
    "turn": ["--advantage", "turn"],
    "dual": ["--advantage", "dual"],
    "gigpo": ["--advantage", "gigpo"],
    "igpo": ["--reward", "info_gain", "--advantage", "igpo"],
    "gra": ["--reward", "gated", "--gate-priority", "outcome", "--gate-thresholds", "1", "--advantage", "grpo"],
}
"""Bench scheme name -> the ``rlvr train`` flags that train with it."""

LEARNING_ENVS: dict[str, dict[str, Any]] = {
    "rlvr/GuessNumber-v0": {"low": 1, "high": 8},
    "rlvr/DeepSearch-v0": {"hops": 1},
}
"""Environments and the difficulty of the learning runs (GuessNumber 1-8, DeepSearch 1-hop)."""


@dataclass(frozen=True)
class LearningRun:
    """One planned training run: its folder and its ``rlvr train`` arguments."""

    env: str
    scheme: str
    seed: int
    out: Path
    args: tuple[str, ...]


def plan_learning(out: str | Path, schemes: Sequence[str], seeds: Sequence[int], *, steps: int = 16,
                  warmup_steps: int = 2, eval_episodes: int = 8, group_size: int = 4, tasks_per_step: int = 2,
                  envs: Sequence[str] = tuple(LEARNING_ENVS), model: str = "smollm2") -> list[LearningRun]:
    """The runs of the learning benchmark: every (environment, scheme, seed), the same budget for all."""
    unknown = [s for s in schemes if s not in LEARNING_SCHEMES]
    if unknown:
        raise ConfigError(f"no learning configuration for schemes {unknown}; available: {list(LEARNING_SCHEMES)}")
    runs = []
    for env in envs:
        if env not in LEARNING_ENVS:
            raise ConfigError(f"no learning configuration for {env!r}; available: {list(LEARNING_ENVS)}")
        for scheme in schemes:
            for seed in seeds:
                folder = Path(out) / "learning" / env.split("/")[1] / scheme / f"seed{seed}"
                args = (env, "--model", model, "--seed", str(seed), "--steps", str(steps),
                        "--warmup-sft-steps", str(warmup_steps), "--eval-episodes", str(eval_episodes),
                        "--group-size", str(group_size), "--tasks-per-step", str(tasks_per_step),
                        "--env-kwargs", json.dumps(LEARNING_ENVS[env]), "--output-dir", str(folder),
                        "--report-to", "none", "--no-plot", *LEARNING_SCHEMES[scheme])
                runs.append(LearningRun(env, scheme, seed, folder, args))
    return runs


def _subprocess_runner(run: LearningRun) -> None:
    proc = subprocess.run([sys.executable, "-m", "rlvr", "train", *run.args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"rlvr train failed for {run.env} / {run.scheme} / seed {run.seed} (exit {proc.returncode}): "
                          f"{proc.stderr.strip()[-600:]}")


def run_learning(runs: Sequence[LearningRun], runner: Callable[[LearningRun], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
    """Execute the planned runs one after the other (``runner`` defaults to a ``rlvr train`` subprocess)."""
    for run in runs:
        (runner or _subprocess_runner)(run)
        if progress:
            progress(f"learning/{run.env}/{run.scheme}/seed{run.seed}")


def _held_out(folder: Path) -> float | None:
    path = folder / "trajectories.jsonl"
    if not path.is_file():
        return None
    from rlvr.agents.rollout import is_success
    from rlvr.agents.trajectory import read_trajectories

    trajs = list(read_trajectories(path))
    return float(np.mean([is_success(t) for t in trajs])) if trajs else None


def _metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the training run did not finish (rerun it, or drop it from the plan)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def collect_learning(runs: Sequence[LearningRun]) -> dict[str, Any]:
    """Rows per (environment, scheme) and per-step curves, read from the runs' folders."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        steps = _metrics(run.out / "metrics.jsonl")
        by.setdefault((run.env, run.scheme), []).append({
            "warm": _held_out(run.out / "eval_warmup"), "after": _held_out(run.out / "eval_after"),
            "success": [s.get("success_rate") for s in steps],
            "zero_adv": [s.get("adv/zero_group_frac") for s in steps],
        })
    rows, curves = [], {}
    for (env, scheme), rs in by.items():
        row: dict[str, Any] = {"env": env, "scheme": scheme, "seeds": len(rs)}
        row["held_out_warm"], row["held_out_warm_ci"] = M.mean_ci([r["warm"] for r in rs])
        row["held_out_after"], row["held_out_after_ci"] = M.mean_ci([r["after"] for r in rs])
        gains = [r["after"] - r["warm"] for r in rs if r["after"] is not None and r["warm"] is not None]
        row["gain"], row["gain_ci"] = M.mean_ci(gains)
        per_run = [[z for z in r["zero_adv"] if z is not None] for r in rs]
        row["zero_adv_frac"], row["zero_adv_frac_ci"] = M.mean_ci([float(np.mean(z)) for z in per_run if z])
        rows.append(row)
        n = min(len(r["success"]) for r in rs)
        curves[f"{env}/{scheme}"] = {
            key: [M.mean_ci([r[key][i] for r in rs if r[key][i] is not None]) for i in range(n)]
            for key in ("success", "zero_adv")
        }
    return {"rows": rows, "curves": curves}
