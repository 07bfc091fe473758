"""``rlvr bench rewards``: benchmark turn-level reward schemes (credit, collapse, exploits).

``add_parser(sub)`` adds the ``bench`` command to the ``rlvr`` parser; ``run(args)`` runs it.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.errors import ConfigError

__all__ = ["add_parser", "run", "rescore_file"]

QUICK_ENVS = ("rlvr/GuessNumber-v0", "rlvr/ToolCall-v0", "rlvr/DeepSearch-v0", "rlvr/Grounding-v0")
"""The environments of ``--quick`` (seconds each); the default is every registered environment."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``bench`` (with its ``rewards`` subcommand) to the ``rlvr`` subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    b = sub.add_parser("bench", help="benchmark reward schemes (rlvr bench rewards --help)", formatter_class=fmt)
    bsub = b.add_subparsers(dest="bench_command", required=True)
    r = bsub.add_parser("rewards", formatter_class=fmt,
                        help="credit assignment on synthetic tasks, exploit agents on the environments, claims")
    r.add_argument("envs", nargs="*", metavar="ENV",
                   help="environment ids for the exploit benchmark (default: every registered one, SWE only when a "
                        "Docker engine answers; --quick: GuessNumber, ToolCall, DeepSearch, Grounding); "
                        "'none' skips it")
    r.add_argument("--schemes", nargs="+", default=None, metavar="NAME",
                   help="reward schemes (default: all registered, each also NAME+dapo); see --list-schemes")
    r.add_argument("--no-dapo", action="store_true", help="leave out the +dapo (zero-variance filter) variants")
    r.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                   help="seeds of the microbenchmark runs and exploit episodes (default 0 1 2 3 4; --quick 0 1)")
    r.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="synthetic tasks: chain, keydoor, search (default all); 'none' skips the microbenchmark")
    r.add_argument("--steps", type=int, default=None, help="policy updates per microbenchmark run (200; --quick 30)")
    r.add_argument("--out", default="runs/bench-rewards", help="folder for report.md, CSV, JSON and plots")
    r.add_argument("--quick", action="store_true", help="a small configuration that finishes in under a minute")
    r.add_argument("--from", dest="from_file", default=None, metavar="FILE",
                   help="re-score the trajectories of FILE (trajectories.jsonl) under every scheme, offline")
    r.add_argument("--learning", action="store_true",
                   help="also train SmolLM2 with `rlvr train` per (environment, scheme, seed) "
                        "after the same warm start: minutes per run on CPU (seeds 0 1 2 unless chosen; --quick: "
                        "GuessNumber, seed 0, one RL step of 4 rollouts)")
    r.add_argument("--learning-schemes", nargs="+", default=None, metavar="NAME",
                   help="schemes of the --learning runs (default: outcome igpo; among outcome grpo turn dual gigpo "
                        "igpo gra)")
    r.add_argument("--learning-steps", type=int, default=None,
                   help="RL steps of each --learning run (default per environment: GuessNumber 8, DeepSearch 2)")
    r.add_argument("--learning-lr", type=float, default=None,
                   help="learning rate of the --learning runs' RL steps (default 2e-5; the warm start keeps its own: GuessNumber 3e-5, DeepSearch 5e-5)")
    r.add_argument("--learning-envs", nargs="+", default=None, metavar="ENV",
                   help="environments of the --learning runs (default: GuessNumber-v0, about 31 minutes on 2 cores; "
                        "DeepSearch-v0 adds about 55 minutes)")
    r.add_argument("--learning-jobs", type=int, default=2,
                   help="--learning runs at a time (each gets cores / jobs threads)")
    r.add_argument("--ig-model", default=None, metavar="MODEL",
                   help="language model that scores IGPO's own information gain (scheme igpo-lm) on DeepSearch, a few "
                        "seconds per trajectory on CPU: the embedded 'smollm2' by default, any name or path; 'none' "
                        "skips it (--quick skips it unless a model is named)")
    r.add_argument("--list-schemes", action="store_true", help="print the registered schemes and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return b


def rescore_file(path: str | Path, schemes: list[str]) -> list[dict[str, Any]]:
    """Re-score recorded trajectories: one row per (environment, scheme) with the mean return ``J``, the
    zero-advantage fraction and advantage energy over groups (trajectories of the same task form a group)."""
    from rlvr.agents.trajectory import read_trajectories
    from rlvr.bench import metrics as M
    from rlvr.bench.exploits import episode_from_trajectory
    from rlvr.bench.schemes import NotApplicable, score_group

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--from expects a trajectories.jsonl file written by `rlvr run` or `rlvr train`; "
                          f"{path} does not exist")
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    n = 0
    for traj in read_trajectories(path):
        if traj.turns:
            groups[(traj.env_id, traj.task_id)].append(episode_from_trajectory(traj))
            n += 1
    if not n:
        raise ConfigError(f"{path} holds no trajectory with at least one turn; nothing to re-score")
    rows = []
    for env_id in sorted({k[0] for k in groups}):
        env_groups = [g for (e, _), g in groups.items() if e == env_id]
        for scheme in schemes:
            try:
                results = [score_group(scheme, g) for g in env_groups]
            except NotApplicable:
                continue
            rows.append({
                "env": env_id, "scheme": scheme, "episodes": sum(len(g) for g in env_groups), "groups": len(env_groups),
                "J": float(np.mean(np.concatenate([r.returns for r in results]))),
                "zero_adv_frac": float(np.mean([M.zero_advantage(r.advantages, r.mask) for r in results])),
                "adv_energy": float(np.mean([M.advantage_energy(r.advantages, r.mask) for r in results])),
                "filtered": float(np.mean([r.filtered for r in results])),
            })
    return rows


def _bar(total: int, quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", desc="bench rewards")


def learning_lr(args: argparse.Namespace) -> float:
    """The RL learning rate of the ``--learning`` runs: ``--learning-lr`` (checked positive) or the default."""
    from rlvr.bench.learning import DEFAULT_LEARNING_LR

    if args.learning_lr is not None and not args.learning_lr > 0:
        raise ConfigError(f"--learning-lr must be a positive learning rate, got {args.learning_lr}")
    return DEFAULT_LEARNING_LR if args.learning_lr is None else args.learning_lr


def learning_plan(args: argparse.Namespace, out: Path) -> list[Any]:
    """The ``--learning`` runs that ``args`` ask for (none without ``--learning``); nothing runs yet."""
    if not args.learning:
        return []
    from rlvr.bench.learning import DEFAULT_LEARNING_ENVS, DEFAULT_LEARNING_SCHEMES, LEARNING_SCHEMES, plan_learning

    chosen = list(dict.fromkeys(args.learning_schemes or DEFAULT_LEARNING_SCHEMES))
    unknown = [s for s in chosen if s not in LEARNING_SCHEMES]
    if unknown:
        raise ConfigError(f"unknown --learning-schemes {unknown}; expected some of {list(LEARNING_SCHEMES)}")
    learning_seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    lr = learning_lr(args)
    if args.quick:  # the pipeline end to end at the smallest scale: one seed, GuessNumber in 2 turns, one step of one group
        return plan_learning(out, chosen, learning_seeds, steps=args.learning_steps or 1,
                             envs=["rlvr/GuessNumber-v0"], eval_episodes=2, eval_every=0,
                             warmup_steps=1, warmup_episodes=4, group_size=4, tasks_per_step=1, lr=lr,
                             env_kwargs={"max_turns": 2}, max_new_tokens=28)
    learning_envs = [e if e.startswith("rlvr/") else f"rlvr/{e}" for e in args.learning_envs or DEFAULT_LEARNING_ENVS]
    return plan_learning(out, chosen, learning_seeds, steps=args.learning_steps, envs=learning_envs, lr=lr)


def ig_model(args: argparse.Namespace) -> str | None:
    """The model scoring the ``igpo-lm`` scheme: ``--ig-model``, else the embedded one (none under ``--quick``)."""
    from rlvr.agents.models import DEFAULT_MODEL

    if args.ig_model is None:
        return None if args.quick else DEFAULT_MODEL
    return None if args.ig_model.lower() == "none" else args.ig_model


def run(args: argparse.Namespace) -> int:
    """Run ``rlvr bench rewards`` with parsed ``args``; write the outputs and print the report."""
    from rlvr.bench import report
    from rlvr.bench.schemes import SCHEMES, applies, resolve_schemes

    if args.list_schemes:
        for name, s in SCHEMES.items():
            print(f"{name:20s} {'(control) ' if s.control else ''}{s.description}")
        return 0
    schemes = resolve_schemes(args.schemes, dapo=not args.no_dapo)
    out = Path(args.out)
    t0 = time.perf_counter()
    if args.from_file:
        rows = report.write_offline(out, rescore_file(args.from_file, schemes), args.from_file)
        print((out / "report.md").read_text())
        print(f"re-scored {args.from_file}: wrote {out / 'report.md'}, {out / 'offline.csv'} and "
              f"{out / 'results.json'}")
        return 0 if rows else 1
    from rlvr.bench.credit import SYNTHETIC_FIELDS, TASKS, CreditConfig, run_credit
    from rlvr.bench.exploits import agents_for, run_exploits
    from rlvr.registry import env_info

    seeds = args.seeds if args.seeds else ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    tasks = list(TASKS) if args.tasks is None else [t for t in args.tasks if t != "none"]
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"unknown synthetic task {t!r}; expected some of {list(TASKS)} or 'none'")
    if args.envs == ["none"]:
        envs: list[str] = []
    elif args.envs:
        envs = [e if e.startswith("rlvr/") else f"rlvr/{e}" for e in args.envs]
        for e in envs:
            env_info(e)  # a clear error with a did-you-mean for an unknown id
    else:
        from rlvr.registry import ENVS

        envs = list(QUICK_ENVS) if args.quick else [e.id for e in ENVS]
    steps = args.steps or (30 if args.quick else 200)
    cfg = CreditConfig(steps=steps, groups=4 if args.quick else 8, group_size=8)
    # controls only matter against exploits; --quick leaves the +dapo variants to the exploit part
    credit_schemes = [s for s in schemes if applies(s, SYNTHETIC_FIELDS)
                      and not SCHEMES[s.removesuffix("+dapo")].control and not (args.quick and s.endswith("+dapo"))]
    total = len(tasks) * len(credit_schemes) * len(seeds) + sum(len(agents_for(e)) for e in envs)
    bar = None

    def tick(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

    learning_runs = learning_plan(args, out)
    total += len(learning_runs)
    bar = _bar(total, args.quiet)
    try:
        credit = run_credit(credit_schemes, seeds, cfg, tasks, progress=tick) if tasks else None
        exploits = run_exploits(envs, schemes, seeds, progress=tick, ig_model=ig_model(args)) if envs else None
        learning = None
        if learning_runs:
            from rlvr.bench.learning import collect_learning, run_learning

            run_learning(learning_runs, progress=tick, jobs=args.learning_jobs)
            learning = collect_learning(learning_runs)
    finally:
        if bar is not None:
            bar.close()
    claims = report.check_claims(credit, exploits, learning)
    meta = {"schemes": schemes, "seeds": seeds, "tasks": tasks, "envs": envs, "quick": args.quick,
            "steps": steps, "wall_s": round(time.perf_counter() - t0, 1)}
    if learning_runs:  # the learning runs' own seeds and plan (they differ from the microbenchmark's)
        meta["learning"] = {"seeds": sorted({r.seed for r in learning_runs}), "envs": sorted({r.env for r in learning_runs}),
                            "schemes": list(dict.fromkeys(r.scheme for r in learning_runs)), "runs": len(learning_runs),
                            "lr": learning_lr(args)}
    results = report.write_outputs(out, credit, exploits, claims, meta, learning)
    print(report.summary(results))
    print(f"\nwrote {out / 'report.md'}, CSV, {out / 'results.json'}"
          + (f" and {len(results['plots'])} plots" if results["plots"] else "") + f" in {meta['wall_s']} s")
    return 0

