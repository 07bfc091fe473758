"""The CPU demo: evaluate SmolLM2-135M on a small game, warm-start it, train it a few GRPO steps.

Writes into ``--output-dir`` (default ``runs/demo``): ``summary.md`` / ``summary.json`` (the
table of evaluations at each stage), ``trajectories.jsonl`` (every training rollout),
``eval_before/``, ``eval_warmup/`` and ``eval_after/`` (evaluation trajectories),
``metrics.jsonl`` and ``plots/training.png``. The default settings finish in a few minutes on two
CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rlvr.errors import RLVRError

__all__ = ["DEMO_SCHEME", "DEMO_STEPS", "demo_main", "demo_config", "summary_table"]


DEMO_SCHEME = "igpo"
"""The reward scheme of the demo's RL phase (a scheme of :data:`rlvr.bench.learning.LEARNING_SCHEMES`)."""
DEMO_STEPS = 2
"""RL steps of the demo: the first 2 of the benchmark run (which evaluates its held-out episodes at step 2)."""


def demo_config(output_dir: str = "runs/demo", steps: int | None = DEMO_STEPS, scheme: str = DEMO_SCHEME,
                **overrides: Any):
    """The demo's :class:`~rlvr.agents.trainer.config.TrainConfig`: the learning benchmark's GuessNumber run
    (``rlvr bench rewards --learning``, seed 0) of ``scheme``: GuessNumber over 1..4, a behaviour-cloning
    warm start on 16 oracle episodes, then GRPO steps of 2 tasks x 8 rollouts; greedy evaluation of 8
    held-out episodes before and after the warm start and after RL. Full fine-tuning in little memory:
    activation checkpointing, AdamW with bfloat16 moments, the log-softmax over the vocabulary in chunks
    of 64 tokens, shared-prefix packing and :func:`~rlvr.agents.trainer.memory.return_freed_memory`.
    ``steps``: RL steps (:data:`DEMO_STEPS`; None: the benchmark's 8)."""
    import dataclasses

    from rlvr.agents.trainer.config import TrainConfig
    from rlvr.bench.learning import plan_learning

    run = plan_learning(output_dir, [scheme], [0], envs=["rlvr/GuessNumber-v0"], steps=steps)[0]
    config = TrainConfig.from_args(list(run.args))
    # activation checkpointing for the demo's memory budget (the benchmark's GuessNumber runs keep activations
    # for speed; the values are the same)
    settings: dict[str, Any] = dict(output_dir=output_dir, eval_base=True, eval_every=0, plot=True,
                                    report_to=TrainConfig().report_to, gradient_checkpointing=True)
    settings.update(overrides)
    return dataclasses.replace(config, **settings)


def summary_table(columns: list[tuple[str, dict[str, Any] | None]]) -> str:
    """A markdown table of evaluation summaries side by side (one column per stage), each reward
    component included."""
    rows = [("episodes", "episodes"), ("mean reward", "mean_reward"), ("success rate", "success_rate"),
            ("mean turns", "mean_turns"), ("truncated", "truncated")]
    comps = sorted({c for _, d in columns for c in (d or {}).get("components", {})})

    def cell(d: dict[str, Any] | None, key: str, comp: bool = False) -> str:
        if not d:
            return "-"
        v = d.get("components", {}).get(key) if comp else d.get(key)
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["| metric | " + " | ".join(name for name, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(cell(d, key) for _, d in columns) + " |" for name, key in rows]
    lines += [f"| reward: {c} | " + " | ".join(cell(d, c, True) for _, d in columns) + " |" for c in comps]
    return "\n".join(lines)


def demo_main(argv: list[str] | None = None) -> int:
    """``make demo``: evaluate, warm-start, evaluate, train a few GRPO steps, evaluate; print and save
    the summary table."""
    ap = argparse.ArgumentParser(prog="rlvr demo", description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default="runs/demo")
    ap.add_argument("--steps", type=int, default=DEMO_STEPS,
                    help="RL steps (the learning benchmark runs 8 and evaluates at 2, 4, 6 and 8)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--warmup-steps", type=int, default=None,
                    help="behaviour-cloning steps before RL (default: the learning benchmark's, 6; 0: none)")
    ap.add_argument("--scheme", default=DEMO_SCHEME, help="reward scheme of the RL phase (rlvr bench rewards "
                    "--learning's names: outcome grpo turn dual gigpo igpo gra)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        from rlvr.agents.trainer.memory import return_freed_memory
        from rlvr.agents.trainer.trainer import train

        return_freed_memory()  # the resident set tracks the live tensors (no heap fragmentation)
        extra = {} if args.warmup_steps is None else {"warmup_sft_steps": args.warmup_steps}
        config = demo_config(args.output_dir, args.steps, args.scheme, model=args.model, **extra)
        print(f"demo: {config.model} on {config.env} {config.env_kwargs}: evaluate, warm start "
              f"({config.warmup_sft_steps} behaviour-cloning steps), evaluate, {config.steps} GRPO steps "
              f"({config.tasks_per_step} tasks x {config.group_size} rollouts, {config.advantage}), evaluate",
              flush=True)
        result = train(config, log=lambda m: print(m, flush=True))
    except RLVRError as e:
        print(f"rlvr demo: error: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    columns = [("base model", result.eval_before)]
    if config.warmup_sft_steps:
        columns.append(("after warm-up", result.eval_warmup))
    columns.append((f"after {len(result.metrics)} RL steps", result.eval_after))
    table = summary_table(columns)
    out = Path(config.output_dir)
    last = result.metrics[-1] if result.metrics else {}
    note = ""
    warm, after = (result.eval_warmup or result.eval_before or {}), (result.eval_after or {})
    if "success_rate" in warm and "success_rate" in after:
        verdict = ("above" if after["success_rate"] > warm["success_rate"]
                   else "equal to" if after["success_rate"] == warm["success_rate"] else "below")
        note += (f"Held-out success after RL: {after['success_rate']:.3f}, {verdict} the "
                 f"{'warm start' if result.eval_warmup else 'base model'}'s {warm['success_rate']:.3f}.\n\n")
    if result.metrics and all(m.get("adv/zero_group_frac") == 1.0 for m in result.metrics):
        note = ("Every group's rollouts earned the same reward, so every advantage was zero and the weights did "
                "not move (adv/zero_group_frac = 1). More steps, larger groups, a (shorter) warm start or a "
                "stronger model give GRPO something to compare.\n\n")
    text = (f"# rlvr demo\n\n{config.model} on {config.env} {json.dumps(config.env_kwargs)}: "
            f"{config.warmup_sft_steps} behaviour-cloning steps on {config.warmup_sft_episodes} oracle episodes, "
            f"then {config.steps} GRPO steps ({config.tasks_per_step} tasks x {config.group_size} rollouts, "
            f"scheme {args.scheme}: {config.reward} reward, {config.advantage} advantages); greedy evaluation on {config.eval_episodes} held-out tasks at each "
            f"stage.\n\n{table}\n\n"
            f"Training: last step reward {last.get('reward/mean', float('nan')):+.3f}, "
            f"rollout {last.get('perf/rollout_tok_s', 0):.0f} tokens/s, update {last.get('perf/update_tok_s', 0):.0f} "
            f"tokens/s, peak memory {last.get('perf/peak_mem_mb', 0):.0f} MB; share of groups with all-zero "
            f"advantages per step: {[round(m['adv/zero_group_frac'], 2) for m in result.metrics]}. "
            f"Wall time {wall:.0f} s.\n\n"
            f"{note}Files: metrics.jsonl, trajectories.jsonl, eval_before/, eval_warmup/, eval_after/, "
            "plots/training.png\n")
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"before": result.eval_before, "after_warmup": result.eval_warmup,
                                                  "after": result.eval_after, "warmup_nll": result.warmup_losses,
                                                  "wall_s": wall, "config": config.to_dict()}, indent=2) + "\n")
    print("\n" + table + ("\n\n" + note.strip() if note else "")
          + f"\n\nwall time {wall:.0f} s; summary, trajectories and plot in {out}/", flush=True)
    return 0
