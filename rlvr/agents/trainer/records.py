"""Run records: checkpoints (save / resume), the per-step metrics (:func:`step_metrics`, the
``metrics.jsonl`` file) and PNG plots."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.agents.rollout import summarize
from rlvr.errors import ConfigError

__all__ = ["MetricsLog", "latest_checkpoint", "load_checkpoint", "peak_memory_mb", "plot_metrics", "save_checkpoint",
           "step_metrics"]


def peak_memory_mb(device: Any) -> float:
    """Peak accelerator memory allocated on CUDA, else the process's peak resident memory (MB)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def step_metrics(
    step: int,
    all_trajs: Sequence[Any],
    trained: Sequence[Any],
    *,
    infra: Mapping[str, float],
    times: Mapping[str, float],
    seqs: Sequence[Any] = (),
    tables: Any = None,
    advantages: Mapping[str, float] | None = None,
    update: Mapping[str, float] | None = None,
    gains: Sequence[Sequence[float]] | None = None,
    ppo_epochs: int = 1,
    peak_mem_mb: float = 0.0,
) -> dict[str, Any]:
    """One ``metrics.jsonl`` row for a training step.

    ``all_trajs`` are every rollout of the step, ``trained`` those left after
    :func:`~rlvr.agents.trainer.batch.drop_infra_groups`, with their token sequences ``seqs``, their
    :class:`~rlvr.agents.trainer.batch.RewardTables` ``tables``, the advantage statistics and the
    update's loss statistics. ``reward/mean`` and ``reward/std`` are over the trained trajectories'
    returns in ``tables`` (the reward the advantages were computed from; under the ``env`` scheme,
    each trajectory's ``total_reward``); ``success_rate``, ``turns/mean`` and ``truncated_frac``
    summarise every scored episode of ``all_trajs`` (:func:`~rlvr.agents.rollout.summarize`).
    ``times`` holds ``rollout_s`` and ``step_s`` (plus ``reward_s`` and ``update_s`` after an update).
    Without ``tables`` (every group dropped, no update) the row has the step, the episode count, the
    ``infra`` counts and the two times only.
    """
    row: dict[str, Any] = {"step": step, "episodes": len(all_trajs)}
    if tables is None:
        return {**row, **infra, "perf/rollout_s": times["rollout_s"], "perf/step_s": times["step_s"]}
    returns = tables.returns()
    summary = summarize(list(all_trajs))  # infra-failed episodes are counted apart, out of its means
    generated = sum(len(t.completion_ids or []) for tr in all_trajs for t in tr.turns)
    row.update({
        "episodes/trained": len(trained), **infra,
        "reward/mean": float(returns.mean()), "reward/std": float(returns.std()),
        "success_rate": summary["success_rate"], "turns/mean": summary["mean_turns"],
        "truncated_frac": summary["truncated"],
        **{f"reward/{k}": float(v.mean()) for k, v in sorted(tables.component_totals.items())},
        **(advantages or {}), **(update or {}),
        "tokens/generated": generated, "tokens/sequence_mean": float(np.mean([len(s) for s in seqs])),
        "tokens/prompt_mismatch_turns": sum(len(s.prompt_mismatches) for s in seqs),
        "perf/rollout_s": times["rollout_s"], "perf/reward_s": times["reward_s"], "perf/update_s": times["update_s"],
        "perf/rollout_tok_s": generated / max(times["rollout_s"], 1e-9),
        "perf/update_tok_s": ppo_epochs * sum(len(s) for s in seqs) / max(times["update_s"], 1e-9),
        "perf/peak_mem_mb": peak_mem_mb, "perf/step_s": times["step_s"],
    })
    if tables.ungated_return is not None:
        row["reward/ungated_mean"] = float(tables.ungated_return.mean())
    if gains is not None:
        flat = [g for per_traj in gains for g in per_traj]
        row["reward/info_gain_mean"] = float(np.mean(flat)) if flat else 0.0
    return row


class MetricsLog:
    """``metrics.jsonl``: one JSON object per training step, appended and flushed as steps finish."""

    def __init__(self, path: str | os.PathLike[str], *, resume_from_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        if resume_from_step is not None and self.path.is_file():
            # keep the steps the checkpoint covers; later lines came from an interrupted run
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("step", -1) < resume_from_step:
                    self.rows.append(row)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows), encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


def save_checkpoint(root: Path, model: Any, optimizer: Any, next_step: int, config: dict[str, Any],
                    keep: int = 1, name: str | None = None) -> Path:
    """Write ``root/step-N/checkpoint.pt`` (trainable weights, optimiser, RNG, next step) and point
    ``root/latest`` at it; keeps the newest ``keep`` checkpoints. With ``name`` the checkpoint goes to
    ``root/name/`` instead and ``latest`` is left alone (e.g. the weights after a warm start)."""
    import torch

    path = root / (name or f"step-{next_step:06d}")
    path.mkdir(parents=True, exist_ok=True)
    state = {
        "model": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "next_step": next_step,
        "config": config,
        "torch_rng": torch.get_rng_state(),
    }
    tmp = path / "checkpoint.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path / "checkpoint.pt")
    if name is not None:
        return path
    latest_tmp = root / "latest.tmp"
    latest_tmp.write_text(path.name, encoding="utf-8")
    os.replace(latest_tmp, root / "latest")
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != path)
    for p in old[: max(0, len(old) - (keep - 1))]:
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    return path


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint ``root/latest`` points at, or None."""
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip() / "checkpoint.pt"
    return path if path.is_file() else None


def load_checkpoint(path: Path, model: Any, optimizer: Any, state: dict[str, Any] | None = None) -> int:
    """Restore weights (and, given an ``optimizer``, its state and the RNG) from ``path`` (or from ``state``,
    its contents when already read); return the step to continue from."""
    import torch

    if state is None:
        state = torch.load(path, map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state["model"]]
    unknown = [n for n in state["model"] if n not in params]
    if missing or unknown:
        raise ConfigError(f"checkpoint {path} does not fit this model (missing {missing[:3]}, unknown {unknown[:3]}); "
                          "resume with the same model and LoRA settings")
    with torch.no_grad():
        for n, t in state["model"].items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    return int(state["next_step"])


_PANELS = (
    ("Reward", ["reward/mean", "success_rate"], "reward/"),
    ("Advantages", ["adv/mean", "adv/std", "adv/zero_group_frac"], None),
    ("Policy", ["loss/kl", "loss/entropy", "loss/clip_frac", "loss/approx_kl"], None),
    ("Throughput (tokens/s)", ["perf/rollout_tok_s", "perf/update_tok_s"], None),
)


def plot_metrics(rows: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """A 2x2 PNG of reward (and each reward component), advantage statistics, KL / entropy /
    clip fraction, and rollout / update throughput against the step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 7.5))
    FigureCanvasAgg(fig)
    steps = [r["step"] for r in rows]
    for k, (name, keys, prefix) in enumerate(_PANELS):
        ax = fig.add_subplot(2, 2, k + 1)
        extra = sorted({key for r in rows for key in r if prefix and key.startswith(prefix) and key not in keys
                        and key not in ("reward/std",)}) if prefix else []
        for key in keys + extra:
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                ax.plot(steps, [float("nan") if y is None else y for y in ys], marker="o", ms=3,
                        label=key, lw=2 if key in keys else 1, ls="-" if key in keys else "--")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
