"""The CPU demo: evaluate SmolLM2-135M on a small game, train it a few steps, evaluate again.

Writes into ``--output-dir`` (default ``runs/demo``): ``summary.md`` / ``summary.json`` (the
before/after table), ``trajectories.jsonl`` (every training rollout), ``eval_before/`` and
``eval_after/`` (evaluation trajectories), ``metrics.jsonl`` and ``plots/training.png``. The default
settings finish in a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rlvr.errors import RLVRError

__all__ = ["demo_main", "demo_config", "summary_table"]


def demo_config(output_dir: str = "runs/demo", steps: int = 3, **overrides: Any):
    """The demo's :class:`~rlvr.agents.trainer.config.TrainConfig`: GuessNumber over 1..8 (at most 2
    turns: one guess, then the answer), 1 task x 4 rollouts per step, 24 new tokens per turn,
    dual-level (MatchTIR) advantages, 4 greedy evaluation episodes before and after."""
    from rlvr.agents.trainer.config import TrainConfig

    settings: dict[str, Any] = dict(
        env="rlvr/GuessNumber-v0", env_kwargs={"low": 1, "high": 8, "max_turns": 2}, model="smollm2",
        steps=steps, tasks_per_step=1, group_size=4, max_new_tokens=24, temperature=1.0, lr=1e-5,
        advantage="dual", eval_episodes=4, micro_batch_size=4, output_dir=output_dir, device="cpu",
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def summary_table(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """A markdown table of evaluation metrics (and each reward component) before and after training."""
    rows = [("episodes", "episodes"), ("mean reward", "mean_reward"), ("success rate", "success_rate"),
            ("mean turns", "mean_turns"), ("truncated", "truncated")]
    comps = sorted(set((before or {}).get("components", {})) | set((after or {}).get("components", {})))

    def cell(d: dict[str, Any] | None, key: str, comp: bool = False) -> str:
        if not d:
            return "-"
        v = d.get("components", {}).get(key) if comp else d.get(key)
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["| metric | before | after |", "|---|---:|---:|"]
    lines += [f"| {name} | {cell(before, key)} | {cell(after, key)} |" for name, key in rows]
    lines += [f"| reward: {c} | {cell(before, c, True)} | {cell(after, c, True)} |" for c in comps]
    return "\n".join(lines)


def demo_main(argv: list[str] | None = None) -> int:
    """``make demo``: evaluate, train a few steps, evaluate; print and save the summary table."""
    ap = argparse.ArgumentParser(prog="rlvr demo", description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default="runs/demo")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        from rlvr.agents.trainer.trainer import train

        config = demo_config(args.output_dir, args.steps, model=args.model)
        print(f"demo: {config.model} on {config.env} {config.env_kwargs}: evaluate, train {config.steps} steps "
              f"({config.tasks_per_step} tasks x {config.group_size} rollouts, {config.advantage}), evaluate",
              flush=True)
        result = train(config, log=lambda m: print(m, flush=True))
    except RLVRError as e:
        print(f"rlvr demo: error: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    table = summary_table(result.eval_before, result.eval_after)
    out = Path(config.output_dir)
    last = result.metrics[-1] if result.metrics else {}
    note = ""
    if result.metrics and all(m.get("adv/zero_group_frac") == 1.0 for m in result.metrics):
        note = ("Every group's rollouts earned the same reward, so every advantage was zero and the weights did "
                "not move (adv/zero_group_frac = 1): the policy never produced a scorable tool call or answer. "
                "More steps, larger groups or a stronger model give GRPO something to compare.\n\n")
    text = (f"# rlvr demo\n\n{config.model} on {config.env} {json.dumps(config.env_kwargs)}, "
            f"{config.steps} training steps ({config.advantage} advantages), greedy evaluation on "
            f"{config.eval_episodes} held-out tasks before and after.\n\n{table}\n\n"
            f"Training: last step reward {last.get('reward/mean', float('nan')):+.3f}, "
            f"rollout {last.get('perf/rollout_tok_s', 0):.0f} tokens/s, update {last.get('perf/update_tok_s', 0):.0f} "
            f"tokens/s, peak memory {last.get('perf/peak_mem_mb', 0):.0f} MB. Wall time {wall:.0f} s.\n\n"
            f"{note}Files: metrics.jsonl, trajectories.jsonl, eval_before/, eval_after/, plots/training.png\n")
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"before": result.eval_before, "after": result.eval_after,
                                                  "wall_s": wall, "config": config.to_dict()}, indent=2) + "\n")
    print("\n" + table + ("\n\n" + note.strip() if note else "")
          + f"\n\nwall time {wall:.0f} s; summary, trajectories and plot in {out}/", flush=True)
    return 0
