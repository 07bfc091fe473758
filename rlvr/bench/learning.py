"""Learning with a language model: the harness of ``rlvr bench rewards --learning``.

Short ``rlvr train`` runs of the same model, seeds and budget after the behaviour-cloning warm start,
one per (environment, scheme, seed), outcome-only against turn-level schemes. Every run of a seed
starts from the same warm start, trained once by the first scheme's run and loaded by the others
(``--warm-start-from``: the same weights and the same evaluation after it), so the schemes are compared
paired; where the warm start costs most of a run (DeepSearch) every seed loads the first seed's. Each run writes its usual folder (``metrics.jsonl``, ``eval_warmup/``,
``eval_step{N}/`` and ``eval_after/`` held-out trajectories); :func:`collect_learning` reads them back
into per-(environment, scheme) rows: held-out success after the warm start and after RL (mean and
95% interval over seeds), the gain, and per-step curves of the held-out success, the training success
and the zero-advantage group fraction.

Runs go through a ``runner`` (default: ``python -m rlvr train ARGS`` in a subprocess), so the harness
itself never loads a model; each run takes minutes on CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.bench import metrics as M
from rlvr.errors import ConfigError

__all__ = ["DEFAULT_LEARNING_ENVS", "DEFAULT_LEARNING_LR", "DEFAULT_LEARNING_SCHEMES", "LEARNING_ENVS", "LEARNING_SCHEMES", "LearningEnv", "LearningRun", "plan_learning",
           "run_learning", "collect_learning", "held_out_curve", "learned"]


@dataclass(frozen=True)
class LearningEnv:
    """An environment of the learning benchmark: its difficulty and the settings its runs share."""

    kwargs: dict[str, Any]
    """Environment keyword arguments (the difficulty)."""
    process: tuple[str, ...]
    """Its non-outcome reward components (outcome-only schemes weigh them 0)."""
    max_new_tokens: int
    warmup_steps: int
    """Behaviour-cloning steps of the warm start (chosen so the warm policy succeeds about half the time)."""
    warmup_episodes: int
    """Oracle demonstrations of the warm start."""
    steps: int
    """RL steps of every run (the same for every scheme)."""
    group_size: int = 8
    """Rollouts per task."""
    warmup_lr: float = 3e-5
    """Learning rate of the warm start."""
    shared_warm_start: bool = False
    """One warm start (the first seed's) for every seed and scheme, instead of one per seed: for
    environments whose warm start costs most of a run."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of keeping them: the same values on the CPU, less
    memory, more time (a GuessNumber run: 2.9 GB peak and 6 min 28 s with it, 3.8 GB and 5 min 29 s without).
    For environments with long episodes, whose activations would not fit two runs side by side."""
    train: dict[str, Any] = field(default_factory=dict)
    """Further ``rlvr train`` settings of every run (flag name without dashes -> value)."""


LEARNING_ENVS: dict[str, LearningEnv] = {
    "rlvr/GuessNumber-v0": LearningEnv({"low": 1, "high": 4}, ("format", "tool_validity", "progress"),
                                       max_new_tokens=32, warmup_steps=6, warmup_episodes=16, steps=8),
    "rlvr/DeepSearch-v0": LearningEnv({"hops": 1, "paraphrase": 1, "top_k": 3, "snippet_chars": 120,
                                       "page_chars": 600},
                                      ("format", "tool_validity", "evidence", "repeat_query", "tool_error", "em", "f1",
                                       "rubric"),
                                      max_new_tokens=64, warmup_steps=8, warmup_episodes=24, steps=2, group_size=4,
                                      warmup_lr=5e-5, shared_warm_start=True, gradient_checkpointing=True),
}
"""Environments of the learning runs and their difficulty (GuessNumber 1-4, DeepSearch 1-hop). DeepSearch
states each relation in one wording (``paraphrase=1``: with three wordings the warm policy opened the right
page but named the wrong fact, 8% held-out success against 29% with one; a warm start of 8 steps on 24
oracle episodes raised it to 42%), and shows 3 results of 120-character snippets and pages of 600 characters (the oracle still answers every question): an episode is
~1,050 tokens instead of ~1,300; on 2 CPU cores a forward and backward pass runs at ~90 tokens/s, so its one
warm start (shared by every seed) and its updates dominate the benchmark's time."""


def _outcome_only(env: LearningEnv) -> dict[str, float]:
    return {c: 0.0 for c in env.process}


LEARNING_SCHEMES: dict[str, Callable[[LearningEnv], list[str]]] = {
    "outcome": lambda e: ["--advantage", "grpo", "--reward-weights", json.dumps(_outcome_only(e))],
    "grpo": lambda e: ["--advantage", "grpo"],
    "turn": lambda e: ["--advantage", "turn"],
    "dual": lambda e: ["--advantage", "dual"],
    "gigpo": lambda e: ["--advantage", "gigpo"],
    "igpo": lambda e: ["--reward", "info_gain", "--advantage", "igpo", "--reward-weights",
                       json.dumps(_outcome_only(e))],
    "gra": lambda e: ["--reward", "gated", "--gate-priority", "outcome", "--gate-thresholds", "1", "--advantage",
                      "grpo"],
}
"""Bench scheme name -> the ``rlvr train`` flags that train with it, per environment. ``outcome``: GRPO on
the outcome alone (every other component weighs 0); ``grpo``: GRPO on the environment's summed reward;
``turn`` / ``dual`` / ``gigpo``: turn-level advantages of the environment's per-turn rewards; ``igpo``:
the outcome plus the information gain of every turn (no other process reward, so against ``outcome``
the one difference is the information gain); ``gra``: G-RA gating of the process rewards by the outcome."""

DEFAULT_LEARNING_ENVS = ("rlvr/GuessNumber-v0",)
"""Environments of ``rlvr bench rewards --learning`` unless chosen: GuessNumber, whose 6 runs (2 schemes x 3
seeds) took 30 min 42 s on 2 idle cores, two at a time (40 min with gradient checkpointing). DeepSearch's 6
took 53 min 51 s more (a DeepSearch episode is ~1,050 tokens, an RL step of 8 of them 3-7 minutes on CPU),
so it is asked for by name (``--learning-envs GuessNumber-v0 DeepSearch-v0``) or run through the GPU script."""

DEFAULT_LEARNING_LR = 2e-5
"""Learning rate of the RL steps of every learning run unless chosen (the warm start has its own)."""

DEFAULT_LEARNING_SCHEMES = ("outcome", "igpo")
"""Schemes of ``--learning`` unless chosen: outcome-only GRPO against IGPO's information gain."""


@dataclass(frozen=True)
class LearningRun:
    """One planned training run: its folder and its ``rlvr train`` arguments."""

    env: str
    scheme: str
    seed: int
    out: Path
    args: tuple[str, ...]
    eval_every: int = 0
    warm_start: Path | None = None
    """The run whose warm start this one loads (``--warm-start-from``): the first scheme's run of the same
    environment and seed (of the first seed, with a shared warm start); None for the run that trains it."""


def plan_learning(out: str | Path, schemes: Sequence[str], seeds: Sequence[int], *, steps: int | None = None,
                  warmup_steps: int | None = None, warmup_episodes: int | None = None, eval_episodes: int = 8, eval_every: int = 2, group_size: int | None = None,
                  tasks_per_step: int = 2, lr: float = DEFAULT_LEARNING_LR, envs: Sequence[str] = tuple(LEARNING_ENVS),
                  model: str = "smollm2", env_kwargs: dict[str, Any] | None = None,
                  max_new_tokens: int | None = None) -> list[LearningRun]:
    """The runs of the learning benchmark: every (environment, scheme, seed), the same budget for all.

    ``steps``, ``warmup_steps``, ``warmup_episodes``, ``group_size`` and ``max_new_tokens`` override each
    environment's, ``env_kwargs`` are merged over its keyword arguments; ``eval_every`` evaluates the held-out
    episodes every that many steps (the learning curve)."""
    unknown = [s for s in schemes if s not in LEARNING_SCHEMES]
    if unknown:
        raise ConfigError(f"no learning configuration for schemes {unknown}; available: {list(LEARNING_SCHEMES)}")
    runs = []
    for env_id in envs:
        if env_id not in LEARNING_ENVS:
            raise ConfigError(f"no learning configuration for {env_id!r}; available: {list(LEARNING_ENVS)}")
        env = LEARNING_ENVS[env_id]
        extra = [a for k, v in env.train.items() for a in (f"--{k.replace('_', '-')}", str(v))]
        for i, scheme in enumerate(schemes):
            for seed in seeds:
                folder = Path(out) / "learning" / env_id.split("/")[1] / scheme / f"seed{seed}"
                # the first scheme's run of the seed (of the first seed, with a shared warm start) trains it
                home = Path(out) / "learning" / env_id.split("/")[1] / schemes[0]
                owner = (home / f"seed{seed}" if i else
                         home / f"seed{seeds[0]}" if env.shared_warm_start and seed != seeds[0] else None)
                args = (env_id, "--model", model, "--seed", str(seed), "--steps", str(steps or env.steps),
                        "--warmup-sft-steps", str(env.warmup_steps if warmup_steps is None else warmup_steps),
                        "--warmup-sft-episodes", str(warmup_episodes or env.warmup_episodes), "--warmup-sft-lr", str(env.warmup_lr),
                        "--no-eval-base", "--lr", str(lr), "--max-new-tokens", str(max_new_tokens or env.max_new_tokens),
                        "--eval-episodes", str(eval_episodes), "--eval-every", str(eval_every),
                        "--group-size", str(group_size or env.group_size), "--tasks-per-step", str(tasks_per_step),
                        "--env-kwargs", json.dumps({**env.kwargs, **(env_kwargs or {})}), "--output-dir", str(folder),
                        "--report-to", "none", "--no-plot", "--device", "cpu",
                        *(("--gradient-checkpointing",) if env.gradient_checkpointing else ()),
                        "--optimizer", "adamw_bf16", "--logit-chunk-tokens", "64",
                        "--no-save-final",
                        *extra, *LEARNING_SCHEMES[scheme](env), *(("--warm-start-from", str(owner)) if owner else ()))
                runs.append(LearningRun(env_id, scheme, seed, folder, args, eval_every, owner))
    return runs


def _subprocess_runner(run: LearningRun, threads: int | None = None) -> None:
    env = dict(os.environ)
    if threads is not None:  # parallel runs share the cores: one intra-op pool each, no oversubscription
        env["OMP_NUM_THREADS"] = str(threads)
    run.out.mkdir(parents=True, exist_ok=True)
    with open(run.out / "train.log", "w", encoding="utf-8") as log:
        proc = subprocess.run([sys.executable, "-m", "rlvr", "train", *run.args], stdout=log,
                              stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        tail = (run.out / "train.log").read_text(encoding="utf-8", errors="replace").strip()[-600:]
        raise ConfigError(f"rlvr train failed for {run.env} / {run.scheme} / seed {run.seed} (exit {proc.returncode}; "
                          f"log in {run.out / 'train.log'}): {tail}")


def run_learning(runs: Sequence[LearningRun], runner: Callable[[LearningRun], None] | None = None,
                 progress: Callable[[str], None] | None = None, jobs: int = 1) -> None:
    """Execute the planned runs (``runner`` defaults to a ``rlvr train`` subprocess logging to the run's
    ``train.log``), ``jobs`` at a time (the cores shared among the runs going at once); a run whose
    folder already holds its final evaluation is not run again (an interrupted benchmark resumes). The runs
    that train a warm start go first, each run that loads one (``warm_start``) after the run it loads it from."""
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    todo = [r for r in runs if not (r.out / "eval_after" / "trajectories.jsonl").is_file()]
    for run in runs:
        if run not in todo and progress:
            progress(f"learning/{run.env}/{run.scheme}/seed{run.seed} (done before)")
    waiting = {r.out for r in todo}  # runs not finished yet: a run starts once the run it loads from is done
    cores = os.cpu_count() or 1

    def one(run: LearningRun, threads: int | None) -> LearningRun:
        if runner is not None:
            runner(run)
        else:
            _subprocess_runner(run, threads)
        return run

    pending, running = list(todo), {}
    pool = ThreadPoolExecutor(jobs)
    try:
        while pending or running:
            ready = [r for r in pending if r.warm_start is None or r.warm_start not in waiting]
            while ready and len(running) < jobs:
                run = ready.pop(0)
                pending.remove(run)
                together = min(jobs, len(running) + 1 + len(ready))  # runs sharing the cores from now on
                running[pool.submit(one, run, cores // together if together > 1 else None)] = run
            if not running:
                raise ConfigError("learning runs wait on warm starts no planned run trains: "
                                  f"{[str(r.out) for r in pending]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                run = running.pop(future)
                future.result()
                waiting.discard(run.out)
                if progress:
                    progress(f"learning/{run.env}/{run.scheme}/seed{run.seed}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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


def held_out_curve(folder: Path, steps: int) -> list[float | None]:
    """Held-out success at RL step 0 (the warm start), 1, ..., ``steps`` (the final evaluation); None where
    no evaluation ran."""
    curve: list[float | None] = [_held_out(folder / "eval_warmup")]
    curve += [_held_out(folder / f"eval_step{k}") for k in range(1, steps)]
    curve.append(_held_out(folder / "eval_after"))
    return curve


def learned(gain: float | None, ci: list[float] | None) -> str:
    """``yes``: the held-out gain's 95% interval lies above 0; ``no``: its mean is not above 0;
    ``unclear``: a positive mean whose interval reaches 0 (or a single seed)."""
    if gain is None:
        return "-"
    if gain <= 0:
        return "no"
    return "yes" if ci is not None and ci[0] > 0 else "unclear"


def collect_learning(runs: Sequence[LearningRun]) -> dict[str, Any]:
    """Rows per (environment, scheme) and per-step curves, read from the runs' folders."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        steps = _metrics(run.out / "metrics.jsonl")
        held = held_out_curve(run.out, len(steps))
        by.setdefault((run.env, run.scheme), []).append({
            "warm": held[0], "after": held[-1], "held_out": held,
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
        row["learned"] = learned(row["gain"], row["gain_ci"])
        per_run = [[z for z in r["zero_adv"] if z is not None] for r in rs]
        row["zero_adv_frac"], row["zero_adv_frac_ci"] = M.mean_ci([float(np.mean(z)) for z in per_run if z])
        # the pass rate of the first RL step's sampled rollouts: where the learning signal starts (greedy
        # held-out success after the warm start can differ from it)
        row["train_success_start"], row["train_success_start_ci"] = M.mean_ci(
            [r["success"][0] for r in rs if r["success"] and r["success"][0] is not None])
        row["train_success"], row["train_success_ci"] = M.mean_ci(
            [float(np.mean([s for s in r["success"] if s is not None])) for r in rs if any(s is not None for s in r["success"])])
        rows.append(row)
        curves[f"{env}/{scheme}"] = {
            key: [M.mean_ci([r[key][i] for r in rs if i < len(r[key]) and r[key][i] is not None])
                  for i in range(max(len(r[key]) for r in rs))]
            for key in ("held_out", "success", "zero_adv")
        }
    return {"rows": rows, "curves": curves}
