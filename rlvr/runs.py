"""Run folders of ``rlvr run``: one run per folder, resumable, described by its own files.

A run folder holds ``config.json`` (the resolved configuration: env id and options, agent and its
arguments, seeds, samples, concurrency, package and file format versions), ``trajectories.jsonl``
(one episode per line, appended as episodes finish) and ``summary.json`` (computed from
``trajectories.jsonl``, so it always describes every episode in the file).

A folder that already holds a run's files is refused unless the run is told what to do with it:
``overwrite`` starts again (the run's files are removed first), ``resume`` plays only the episodes
the file does not hold yet, after checking that the configuration is the same one.

``--samples K`` plays each task ``K`` times (task ``t`` is reset with seed ``seed + t``; its samples
have distinct sampling seeds); :func:`sample_metrics` reports pass@k (the unbiased estimator of
Chen et al., 2021) and mean@k per task and over tasks, with percentile bootstrap confidence
intervals over tasks.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rlvr.agents.trajectory import FORMAT_VERSION, Trajectory, read_trajectories
from rlvr.errors import ConfigError

__all__ = ["CONFIG_FILE", "SUMMARY_FILE", "TRAJECTORIES_FILE", "clear_run", "default_out", "prepare_run_dir",
           "missing_ranges",
           "pass_at_k", "sample_metrics", "task_seeds", "write_config"]

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
TRAJECTORIES_FILE = "trajectories.jsonl"
RUN_FILES = (CONFIG_FILE, SUMMARY_FILE, TRAJECTORIES_FILE)

# what must match for --resume to continue a run (the episode count may grow, the concurrency change)
_SAME_RUN = ("env", "env_kwargs", "agent", "agent_kwargs", "seed", "samples", "max_new_tokens", "temperature")


def default_out(env_id: str, root: str | os.PathLike[str] = "runs") -> Path:
    """A fresh folder per run: ``runs/<Env-vN>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... if taken)."""
    name = env_id.rsplit("/", 1)[-1]
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


def task_seeds(seed: int, tasks: int, samples: int) -> list[int]:
    """The reset seed of each episode: task ``t``'s ``samples`` episodes all use ``seed + t``."""
    return [seed + k // samples for k in range(tasks * samples)]


def _truncate_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a writer died mid-line), so appending starts on a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def prepare_run_dir(out: Path, config: dict[str, Any], *, overwrite: bool = False,
                    resume: bool = False) -> list[Trajectory]:
    """Check that ``out`` may take the run ``config`` describes (creating the folder); return the trajectories
    already there (resume). With ``overwrite`` nothing is removed yet: :func:`clear_run` does it once the new
    run can start, so a run that fails to start (an agent that cannot load) loses nothing.

    Raises :class:`ConfigError` for a folder that holds a run when neither ``overwrite`` nor ``resume``
    is given, for both at once, and for ``resume`` with a different configuration.
    """
    if overwrite and resume:
        raise ConfigError("--overwrite and --resume exclude each other: --overwrite starts the run again, "
                          "--resume continues it")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a folder; give a folder for the run's files")
    present = [f for f in RUN_FILES if (out / f).exists()]
    if not present:
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            raise ConfigError(f"--resume: {str(out)!r} holds no run to resume (no {CONFIG_FILE}); drop --resume to "
                              "start one")
        return []
    if overwrite:  # checked only: clear_run removes the files once the new run can start (its agent is built)
        return []
    if not resume:
        raise ConfigError(f"{str(out)!r} already holds a run ({', '.join(present)}); a run refuses to mix its "
                          "episodes with another's: pass --resume to continue that run, --overwrite to start it "
                          "again, or another --out")
    if not (out / CONFIG_FILE).exists():
        raise ConfigError(f"--resume: {str(out)!r} has no {CONFIG_FILE}, so its run cannot be checked; "
                          "use --overwrite or another --out")
    try:
        old = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--resume: {out / CONFIG_FILE} is not readable JSON ({e}); use --overwrite") from e
    diff = [k for k in _SAME_RUN if old.get(k) != config.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} then, {config.get(k)!r} now" for k in diff)
        raise ConfigError(f"--resume: this is not the run in {str(out)!r} ({shown}); give the same settings, "
                          "or --overwrite / another --out")
    path = out / TRAJECTORIES_FILE
    if not path.exists():
        return []
    _truncate_torn_tail(path)
    return list(read_trajectories(path))


def clear_run(out: Path) -> None:
    """Remove the run files of ``out`` (``--overwrite``); anything else in the folder is left alone."""
    for f in RUN_FILES:
        (out / f).unlink(missing_ok=True)


def write_config(out: Path, config: dict[str, Any]) -> None:
    """Write ``config.json`` (the run's resolved configuration)."""
    (out / CONFIG_FILE).write_text(json.dumps({**config, "format_version": FORMAT_VERSION}, indent=2) + "\n",
                                   encoding="utf-8")


def missing_ranges(done: Iterable[int], total: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of episode indices below ``total`` not in ``done``."""
    have = set(done)
    out: list[tuple[int, int]] = []
    k = 0
    while k < total:
        if k in have:
            k += 1
            continue
        start = k
        while k < total and k not in have:
            k += 1
        out.append((start, k))
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from ``n`` samples of which ``c`` succeeded: ``1 - C(n-c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _bootstrap(values: Sequence[float], n_boot: int, rng: np.random.Generator, level: float) -> list[float] | None:
    """Percentile bootstrap interval of the mean over ``values`` (None for fewer than two values)."""
    if len(values) < 2:
        return None
    v = np.asarray(values, dtype=float)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def _ks(samples: int) -> list[int]:
    ks = [1]
    while ks[-1] * 2 < samples:
        ks.append(ks[-1] * 2)
    return sorted({*ks, samples})


def sample_metrics(trajs: Sequence[Trajectory], samples: int, *, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> dict[str, Any]:
    """pass@k (k = 1, 2, 4... and ``samples``) and mean@k (mean success and mean reward over a task's samples)
    per task and over tasks, with bootstrap confidence intervals (``level``, resampling tasks).

    Tasks are told apart by their reset seed. Episodes ended by an infrastructure failure say nothing
    about the agent and are left out; a task with fewer scored samples than ``k`` has no pass@k.
    """
    from rlvr.agents.rollout import infra_failure, is_success

    groups: dict[Any, list[Trajectory]] = {}
    for t in trajs:
        groups.setdefault(t.seed, []).append(t)
    ks = _ks(samples)
    per_task = []
    for task_seed, members in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0])):
        scored = [t for t in members if infra_failure(t) is None]
        n, c = len(scored), sum(is_success(t) for t in scored)
        row: dict[str, Any] = {"task_id": members[0].task_id, "seed": task_seed, "samples": len(members),
                               "scored": n, "successes": c,
                               "mean_success": c / n if n else None,
                               "mean_reward": sum(t.total_reward for t in scored) / n if n else None}
        row.update({f"pass@{k}": pass_at_k(n, c, k) if n >= k else None for k in ks})
        per_task.append(row)
    rng = np.random.default_rng(seed)
    overall: dict[str, Any] = {"tasks": len(per_task), "samples_per_task": samples, "confidence": level}
    for key in ("mean_success", "mean_reward", *(f"pass@{k}" for k in ks)):
        values = [r[key] for r in per_task if r[key] is not None]
        overall[key] = sum(values) / len(values) if values else None
        overall[f"{key}_ci"] = _bootstrap(values, n_boot, rng, level)
        overall[f"{key}_tasks"] = len(values)
    overall[f"mean@{samples}"] = overall["mean_success"]
    overall[f"mean@{samples}_ci"] = overall["mean_success_ci"]
    return {"overall": overall, "per_task": per_task}
