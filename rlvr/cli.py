"""The ``rlvr`` command line: ``rlvr list``, ``rlvr describe``, ``rlvr run``, ``rlvr train``, ``rlvr reap``,
``rlvr serve``, ``rlvr bench rewards``."""

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


def _parse_json_object(text: str | None, flag: str) -> dict[str, Any]:
    """A JSON object given on the command line (``None``: empty)."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RLVRError(f"{flag} must be a JSON object such as '{{\"temperature\": 0.2}}', got {text!r} ({e.msg})") from e
    if not isinstance(value, dict):
        raise RLVRError(f"{flag} must be a JSON object such as '{{\"temperature\": 0.2}}', got {type(value).__name__} "
                        f"{text!r}")
    return value


def _cmd_list(args: argparse.Namespace) -> int:
    from rlvr import list_envs
    from rlvr.describe import reward_components_of

    rows = [(e.id, e.family, ", ".join(reward_components_of(e.id)), e.description) for e in list_envs()]
    header = ("id", "family", "reward components", "description")
    widths = [max(len(header[j]), *(len(r[j]) for r in rows)) for j in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[3])
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    print("\n`rlvr describe ID` lists an environment's options, reward weights, reset options and tools.")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    import rlvr  # noqa: F401 - registers the ids
    from rlvr.describe import describe_env, format_description

    d = describe_env(args.env, _parse_kv(args.env_arg), build=not args.no_build)
    print(json.dumps(d, indent=2) if args.json else format_description(d))
    return 0


def _cmd_reap(args: argparse.Namespace) -> int:
    import docker

    from rlvr.envs.swe.sandbox import reap_leaked

    try:
        removed = reap_leaked()
    except docker.errors.DockerException as e:
        raise RLVRError(f"rlvr reap removes leaked SWE sandbox containers, but no Docker engine answers ({e}); "
                        "start one (`make docker`) or point DOCKER_HOST at it") from e
    print(f"removed {len(removed)} leaked container(s)" + "".join(f"\n  {c[:12]}" for c in removed))
    return 0


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _run_config(args: argparse.Namespace, env_kwargs: dict[str, Any], agent_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The resolved configuration of a run, as ``config.json`` holds it."""
    import rlvr
    from rlvr.agents.trajectory import plain

    return {
        "env": args.env, "env_kwargs": plain(env_kwargs), "agent": args.agent, "agent_kwargs": plain(agent_kwargs),
        "episodes": args.episodes, "samples": args.samples, "seed": args.seed, "concurrency": args.concurrency,
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
        "package_version": rlvr.__version__, "python": sys.version.split()[0],
    }


def _print_samples(metrics: dict[str, Any]) -> None:
    o = metrics["overall"]
    pct = f"{o['confidence']:.0%}"
    print(f"\nper task ({o['tasks']} tasks x {o['samples_per_task']} samples), {pct} bootstrap intervals over tasks:")
    for key in [k for k in o if k.startswith("pass@") and not k.endswith(("_ci", "_tasks"))] + ["mean_success",
                                                                                                "mean_reward"]:
        if o[key] is None:
            continue
        ci = o[f"{key}_ci"]
        name = f"mean@{o['samples_per_task']}" if key == "mean_success" else key
        print(f"  {name:>16}: {o[key]:.4f}" + (f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))


def _cmd_run(args: argparse.Namespace) -> int:
    import rlvr  # noqa: F401 - registers the ids
    from rlvr import runs
    from rlvr.agents.factory import make_agent
    from rlvr.agents.rollout import infra_failure, is_success, rollout, summarize
    from rlvr.agents.trajectory import TrajectoryWriter, read_trajectories
    from rlvr.errors import AgentError
    from rlvr.registry import check_env_args

    env_kwargs = _parse_kv(args.env_arg)
    agent_kwargs = _parse_json_object(args.agent_kwargs, "--agent-kwargs")
    if args.episodes < 0 or args.samples < 1 or args.concurrency < 1:
        raise RLVRError(f"need --episodes >= 0, --samples >= 1 and --concurrency >= 1, got {args.episodes}, "
                        f"{args.samples} and {args.concurrency}")
    check_env_args(args.env, env_kwargs)  # id, keyword names and value types, before an agent (a model) loads
    out = Path(args.out) if args.out else runs.default_out(args.env)
    config = _run_config(args, env_kwargs, agent_kwargs)
    done = runs.prepare_run_dir(out, config, overwrite=args.overwrite, resume=args.resume)
    total = args.episodes * args.samples
    todo = runs.missing_ranges((t.reset_info.get("episode") for t in done), total)
    if done:
        print(f"resuming {out}: {len(done)} episodes in the file, {sum(b - a for a, b in todo)} to play")
    agent = make_agent(
        args.agent, seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        batch_size=args.concurrency, agent_kwargs=agent_kwargs,
    )
    if args.overwrite:
        runs.clear_run(out)
    runs.write_config(out, config)
    seeds = runs.task_seeds(args.seed, args.episodes, args.samples) if args.samples > 1 else None
    from rlvr.agents.ray_rollout import make_executor

    executor = make_executor(args.executor, address=args.ray_address, workers=args.workers,
                             envs_per_worker=args.envs_per_worker)
    writer = TrajectoryWriter(out / runs.TRAJECTORIES_FILE)
    t0 = time.perf_counter()
    finished: list[Any] = []
    interrupted: dict[str, Any] | None = None
    pending: BaseException | None = None  # what stopped the run, handled once the summary is written
    try:
        for start, stop in todo:  # each range of missing episodes keeps its episode indices and seeds
            def on_episode(traj: Any, start: int = start) -> None:
                traj.reset_info["episode"] = traj.reset_info.get("episode", 0) + start
                writer.write(traj)
                finished.append(traj)

            rollout(
                args.env, agent, episodes=stop - start, seed=args.seed + start,
                seeds=seeds[start:stop] if seeds is not None else None, concurrency=args.concurrency,
                env_kwargs=env_kwargs, progress=not args.quiet, on_episode=on_episode, executor=executor,
            )
    except (Exception, KeyboardInterrupt) as e:
        if not isinstance(e, (AgentError, KeyboardInterrupt)) and not finished:
            writer.close()
            raise  # nothing finished (say, a configuration error at the first reset): no summary to write
        why = "interrupted by the user" if isinstance(e, KeyboardInterrupt) else (
            "the agent failed" if isinstance(e, AgentError) else "the run failed")
        interrupted = {"reason": why, "error": f"{type(e).__name__}: {e}", "finished_episodes": len(finished),
                       "requested_episodes": total, "resume": f"rlvr run ... --out {out} --resume"}
        pending = e
    finally:
        writer.close()
        if executor != "local":
            executor.close()
    wall = time.perf_counter() - t0
    # the summary describes the file, every episode in it (earlier runs of a resumed folder included)
    trajs = sorted(read_trajectories(out / runs.TRAJECTORIES_FILE), key=lambda t: t.reset_info.get("episode", 0))
    comp_names = sorted({k for t in trajs for k in t.component_totals()})
    header = ["ep", "task", "turns", "reward", *comp_names, "success", "end"]
    rows = []
    for t in trajs:
        totals = t.component_totals()
        end = "terminated" if t.terminated else ("truncated" if t.truncated else "?")
        if infra_failure(t) is not None:
            end = "infra_failure"
        rows.append([t.reset_info.get("episode", "?"), t.task_id[:28], t.num_turns, t.total_reward,
                     *[totals.get(c, 0.0) for c in comp_names], is_success(t), end])
    widths = [max(len(h), *(len(_fmt(r[j])) for r in rows)) if rows else len(h) for j, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(_fmt(x).rjust(w) for x, w in zip(r, widths)))
    summary = summarize(trajs)
    summary.update(env=args.env, agent=args.agent, seed=args.seed, samples=args.samples, wall_s=wall,
                   episodes_this_run=len(finished),
                   episodes_per_min=60 * len(finished) / wall if wall > 0 else None,
                   computed_from=runs.TRAJECTORIES_FILE)
    if args.samples > 1:
        summary["pass_at_k"] = runs.sample_metrics(trajs, args.samples, seed=args.seed)
    if interrupted is not None:
        summary["interrupted"] = interrupted
    print(
        f"\n{args.env} with {args.agent}: {summary['episodes']} episodes, mean reward {summary.get('mean_reward', 0):.3f}, "
        f"success {summary.get('success_rate', 0):.1%}, mean turns {summary.get('mean_turns', 0):.2f}, {wall:.1f} s"
    )
    for k, v in summary.get("components", {}).items():
        print(f"  {k:>16}: {v:.4f}")
    if "pass_at_k" in summary:
        _print_samples(summary["pass_at_k"])
    if summary.get("infra_failures"):
        causes = "; ".join(summary.get("infra_causes", []))
        print(f"WARNING: {summary['infra_failures']} of {summary['episodes']} episodes ended by an infrastructure "
              f"failure (not the agent's fault); they are left out of the mean reward and success rate above "
              f"(over all episodes: mean reward {summary['mean_reward_all']:.3f}, success "
              f"{summary['success_rate_all']:.1%}). First causes: {causes}", file=sys.stderr)
    (out / runs.SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / runs.TRAJECTORIES_FILE}, {out / runs.SUMMARY_FILE} and {out / runs.CONFIG_FILE}")
    if interrupted is not None:
        print(f"rlvr: error: run interrupted after {interrupted['finished_episodes']} of {total} episodes: "
              f"{interrupted['reason']}: {interrupted['error']}. The finished episodes are in "
              f"{out / runs.TRAJECTORIES_FILE}; {out / runs.SUMMARY_FILE} says the run was interrupted; "
              f"continue it with --out {out} --resume", file=sys.stderr)
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


def _cmd_bench(args: argparse.Namespace) -> int:
    from rlvr.bench.cli import run as run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    from rlvr.agents.factory import AGENT_SPECS

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="rlvr", description="Gymnasium environments and training for multi-turn LLM agents",
                                formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered environments and their reward components", formatter_class=fmt)
    d = sub.add_parser("describe", formatter_class=fmt,
                       help="an environment's options with types and defaults, reward weights, reset options, tools")
    d.add_argument("env", help="environment id, e.g. rlvr/GuessNumber-v0")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.add_argument("--env-arg", "-e", action="append", default=[], metavar="KEY=VALUE",
                   help="describe the environment made with this keyword argument (JSON values), repeatable")
    d.add_argument("--no-build", action="store_true",
                   help="only the declarations: do not build the environment (no weights in force, no tools)")
    r = sub.add_parser("run", help="run an agent on an environment and write trajectories", formatter_class=fmt)
    r.add_argument("env", help="environment id, e.g. rlvr/GuessNumber-v0")
    r.add_argument("--agent", default="oracle", help=f"one of: {AGENT_SPECS}")
    r.add_argument("--agent-kwargs", default=None, metavar="JSON",
                   help="constructor arguments of the agent as a JSON object, e.g. '{\"temperature\": 0.2}'")
    r.add_argument("--episodes", type=int, default=4, help="episodes (tasks, with --samples) to run")
    r.add_argument("--samples", type=int, default=1,
                   help="runs per task: pass@k and mean@k per task and overall, with bootstrap intervals")
    r.add_argument("--seed", type=int, default=0, help="first seed; task t is reset with seed + t")
    r.add_argument("--out", default=None,
                   help="run folder (config.json, trajectories.jsonl, summary.json); default: a new "
                        "runs/<env>-<date>-<time>")
    r.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    r.add_argument("--resume", action="store_true", help="continue the run in --out: play only the missing episodes")
    r.add_argument("--concurrency", type=int, default=8, help="environments at once (and generation batch size)")
    r.add_argument("--max-new-tokens", type=int, default=256, help="generation budget per turn (model agents)")
    r.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (model agents)")
    r.add_argument("--env-arg", "-e", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the environment (JSON values), repeatable; `rlvr describe ENV` lists them")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where environments run: threads here (local) or Ray workers (ray)")
    r.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --executor ray: 'auto' (this machine's cluster), 'ray://host:10001', or none (local Ray)")
    r.add_argument("--workers", type=int, default=None, help="with --executor ray: worker actors (default from --concurrency)")
    r.add_argument("--envs-per-worker", type=int, default=None, help="with --executor ray: environments per worker (4)")
    sub.add_parser("train", help="train a policy with turn-aware GRPO (rlvr train --help)", add_help=False)
    sub.add_parser("reap", help="remove SWE sandbox containers left behind by processes that died", formatter_class=fmt)
    from rlvr.integrations.serve_cli import add_serve_parser

    add_serve_parser(sub)
    from rlvr.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
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
        from rlvr.integrations.serve_cli import cmd_serve

        return {"list": _cmd_list, "describe": _cmd_describe, "run": _cmd_run, "reap": _cmd_reap,
                "serve": cmd_serve, "bench": _cmd_bench}[args.command](args)
    except RLVRError as e:
        print(f"rlvr: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
