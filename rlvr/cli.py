"""The ``rlvr`` command line: ``rlvr list``, ``rlvr run``, ``rlvr train``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from rlvr.errors import RLVRError

__all__ = ["main"]


def _parse_kv(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse, else kept as strings (a key given twice is an error).

    Nothing else is converted: the registry checks each value against the environment's annotations.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RLVRError(f"expected key=value for --env-arg, got {item!r}")
        if key in out:
            raise RLVRError(f"--env-arg {key!r} is given twice ({out[key]!r} and {value!r}); give it once")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_list(args: argparse.Namespace) -> int:
    from rlvr import list_envs

    rows = [(e.id, e.family, e.description) for e in list_envs()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'id':<{w0}}  {'family':<{w1}}  description")
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}")
    return 0


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _cmd_run(args: argparse.Namespace) -> int:
    import rlvr  # noqa: F401 - registers the ids
    from rlvr.agents.factory import make_agent
    from rlvr.agents.rollout import infra_failure, is_success, rollout, summarize
    from rlvr.errors import AgentError
    from rlvr.registry import check_env_args

    env_kwargs = _parse_kv(args.env_arg)
    check_env_args(args.env, env_kwargs)  # id, keyword names and value types, before an agent (a model) loads
    agent = make_agent(
        args.agent, seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        batch_size=args.concurrency,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    finished: list[Any] = []
    interrupted: dict[str, Any] | None = None
    pending: BaseException | None = None  # what stopped the run, handled once the summary is written
    try:
        trajs = rollout(
            args.env, agent, episodes=args.episodes, seed=args.seed, concurrency=args.concurrency, out=out,
            env_kwargs=env_kwargs, progress=not args.quiet, on_episode=finished.append,
        )
    except (Exception, KeyboardInterrupt) as e:
        if not isinstance(e, (AgentError, KeyboardInterrupt)) and not finished:
            raise  # nothing finished (say, a configuration error at the first reset): no summary to write
        trajs = sorted(finished, key=lambda t: t.reset_info.get("episode", 0))
        why = "interrupted by the user" if isinstance(e, KeyboardInterrupt) else (
            "the agent failed" if isinstance(e, AgentError) else "the run failed")
        interrupted = {"reason": why, "error": f"{type(e).__name__}: {e}", "finished_episodes": len(trajs),
                       "requested_episodes": args.episodes}
        pending = e
    wall = time.perf_counter() - t0
    comp_names = sorted({k for t in trajs for k in t.component_totals()})
    header = ["ep", "task", "turns", "reward", *comp_names, "success", "end"]
    rows = []
    for i, t in enumerate(trajs):
        totals = t.component_totals()
        end = "terminated" if t.terminated else ("truncated" if t.truncated else "?")
        if infra_failure(t) is not None:
            end = "infra_failure"
        rows.append([i, t.task_id[:28], t.num_turns, t.total_reward, *[totals.get(c, 0.0) for c in comp_names], is_success(t), end])
    widths = [max(len(h), *(len(_fmt(r[j])) for r in rows)) if rows else len(h) for j, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(_fmt(x).rjust(w) for x, w in zip(r, widths)))
    summary = summarize(trajs)
    summary.update(env=args.env, agent=args.agent, seed=args.seed, wall_s=wall,
                   episodes_per_min=60 * len(trajs) / wall if wall > 0 else None)
    if interrupted is not None:
        summary["interrupted"] = interrupted
    print(
        f"\n{args.env} with {args.agent}: {summary['episodes']} episodes, mean reward {summary.get('mean_reward', 0):.3f}, "
        f"success {summary.get('success_rate', 0):.1%}, mean turns {summary.get('mean_turns', 0):.2f}, {wall:.1f} s"
    )
    for k, v in summary.get("components", {}).items():
        print(f"  {k:>16}: {v:.4f}")
    if summary.get("infra_failures"):
        causes = "; ".join(summary.get("infra_causes", []))
        print(f"WARNING: {summary['infra_failures']} of {summary['episodes']} episodes ended by an infrastructure "
              f"failure (not the agent's fault); they are left out of the mean reward and success rate above "
              f"(over all episodes: mean reward {summary['mean_reward_all']:.3f}, success "
              f"{summary['success_rate_all']:.1%}). First causes: {causes}", file=sys.stderr)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'trajectories.jsonl'} and {out / 'summary.json'}")
    if interrupted is not None:
        print(f"rlvr: error: run interrupted after {interrupted['finished_episodes']} of {args.episodes} episodes: "
              f"{interrupted['reason']}: {interrupted['error']}. The finished episodes are in "
              f"{out / 'trajectories.jsonl'}; {out / 'summary.json'} says the run was interrupted", file=sys.stderr)
        if not isinstance(pending, (RLVRError, KeyboardInterrupt)):
            raise pending  # type: ignore[misc]  # a bug, not a configuration or agent failure: keep its traceback
        return 130 if isinstance(pending, KeyboardInterrupt) else (1 if isinstance(pending, AgentError) else 2)
    return 0


def _cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    from rlvr.agents.trainer.config import TrainConfig

    # configuration errors (env id, env keywords, reward component names) surface before torch or a model loads
    config = TrainConfig.from_args(rest)
    from rlvr.agents.trainer import train_main

    return int(train_main(rest, config=config) or 0)


def build_parser() -> argparse.ArgumentParser:
    from rlvr.agents.factory import AGENT_SPECS

    p = argparse.ArgumentParser(prog="rlvr", description="Gymnasium environments and training for multi-turn LLM agents")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered environments")
    r = sub.add_parser("run", help="run an agent on an environment and write trajectories")
    r.add_argument("env", help="environment id, e.g. rlvr/GuessNumber-v0")
    r.add_argument("--agent", default="oracle", help=f"one of: {AGENT_SPECS}")
    r.add_argument("--episodes", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="runs/latest", help="output folder (trajectories.jsonl, summary.json)")
    r.add_argument("--concurrency", type=int, default=8, help="environments at once (and generation batch size)")
    r.add_argument("--max-new-tokens", type=int, default=256)
    r.add_argument("--temperature", type=float, default=0.7)
    r.add_argument("--env-arg", "-e", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the environment (JSON values), repeatable")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("train", help="train a policy with turn-aware GRPO (rlvr train --help)", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "train":
        try:
            return _cmd_train(argparse.Namespace(), argv[1:])
        except RLVRError as e:
            print(f"rlvr: error: {e}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    try:
        return {"list": _cmd_list, "run": _cmd_run}[args.command](args)
    except RLVRError as e:
        print(f"rlvr: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
