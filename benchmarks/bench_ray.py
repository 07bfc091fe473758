"""Rollouts on Ray against the local executor, side by side in one run (oracle agent: the environments' path).

For GuessNumber and DeepSearch: episodes/s of the local executor (threads, ``concurrency`` = the
number of environments; it builds them in every call, which ``local build s`` measures apart) and
of the Ray executor at 1, 2, 4 and 8 workers (``--envs-per-worker`` each, workers
started and environments built beforehand), on the same seeds. Per step, Ray's overhead in microseconds:

* ``cpu_us``: CPU time of the policy process (all its threads, Ray's included) per environment step:
  what distributing the environments costs the policy. Target: < 1000 at 8 workers.
* ``call_us`` (median, p90): round trip of a step call seen from the policy minus the environment's
  own time on the worker: what one step waits for (pickling, transport, scheduling, and on a small
  machine the wait for a core among the worker processes).

Also Ray's start-up: ``ray.init`` of a local Ray, and per worker count the time until the workers are
placed and have built their environments (the first rollout). Prints the table and writes
benchmarks/results/ray.json; ``--quick`` runs in under a minute on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import ray

import rlvr  # noqa: F401
from rlvr.agents.base import OracleAgent
from rlvr.agents.ray_rollout import RayExecutor
from rlvr.agents.rollout import make_env, rollout

ENVS = {"GuessNumber": ("rlvr/GuessNumber-v0", {}), "DeepSearch": ("rlvr/DeepSearch-v0", {})}
TARGET_CPU_US = 1000.0


def _steps(trajs) -> int:
    return sum(t.num_turns for t in trajs)


def _local(env_id: str, kwargs: dict, episodes: int, concurrency: int) -> dict:
    rollout(env_id, OracleAgent(), episodes=concurrency, seed=10_000, concurrency=concurrency, env_kwargs=kwargs)
    t0 = time.perf_counter()
    for env in [make_env(env_id, kwargs) for _ in range(concurrency)]:
        env.close()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    trajs = rollout(env_id, OracleAgent(), episodes=episodes, seed=0, concurrency=concurrency, env_kwargs=kwargs)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "build_s": build, "steps": _steps(trajs), "episodes_per_s": episodes / wall}


def _ray(env_id: str, kwargs: dict, episodes: int, workers: int, k: int) -> dict:
    with RayExecutor(workers=workers, envs_per_worker=k) as ex:
        t0 = time.perf_counter()
        ex.rollout(env_id, OracleAgent(), episodes=workers * k, seed=10_000, env_kwargs=kwargs)  # start + build envs
        start = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        trajs = ex.rollout(env_id, OracleAgent(), episodes=episodes, seed=0, env_kwargs=kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    over = [t.timings["call_s"] - t.timings["step_s"] for tr in trajs for t in tr.turns]
    steps = _steps(trajs)
    return {"wall_s": wall, "steps": steps, "episodes_per_s": episodes / wall, "workers_start_s": start,
            "cpu_us": 1e6 * cpu / steps, "call_us": 1e6 * statistics.median(over),
            "call_us_p90": 1e6 * statistics.quantiles(over, n=10)[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer episodes and worker counts (under a minute)")
    p.add_argument("--envs-per-worker", type=int, default=4)
    args = p.parse_args()
    k = args.envs_per_worker
    counts = [1, 8] if args.quick else [1, 2, 4, 8]
    episodes = {"GuessNumber": 32 if args.quick else 128, "DeepSearch": 16 if args.quick else 64}
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0
    rows = []
    try:
        for name, (env_id, kwargs) in ENVS.items():
            for n in counts:
                loc = _local(env_id, kwargs, episodes[name], n * k)
                rem = _ray(env_id, kwargs, episodes[name], n, k)
                rows.append({"env": name, "workers": n, "envs": n * k, "episodes": episodes[name],
                             "local_eps_per_s": loc["episodes_per_s"], "ray_eps_per_s": rem["episodes_per_s"],
                             "ratio": rem["episodes_per_s"] / loc["episodes_per_s"], "cpu_us": rem["cpu_us"],
                             "call_us": rem["call_us"], "call_us_p90": rem["call_us_p90"],
                             "local_build_s": loc["build_s"], "workers_start_s": rem["workers_start_s"],
                             "steps": rem["steps"]})
    finally:
        t1 = time.perf_counter()
        ray.shutdown()
        shutdown_s = time.perf_counter() - t1
    head = ["env", "workers", "envs", "local ep/s", "ray ep/s", "ray/local", "cpu us", "call us", "p90 us",
            "local build s", "start s"]
    print(f"ray.init (local, 2 CPUs): {init_s:.2f} s; ray.shutdown: {shutdown_s:.2f} s; {k} envs per worker")
    print("  ".join(f"{h:>13}" for h in head))
    for r in rows:
        vals = [r["env"], r["workers"], r["envs"], f"{r['local_eps_per_s']:.1f}", f"{r['ray_eps_per_s']:.1f}",
                f"{r['ratio']:.2f}", f"{r['cpu_us']:.0f}", f"{r['call_us']:.0f}", f"{r['call_us_p90']:.0f}",
                f"{r['local_build_s']:.2f}", f"{r['workers_start_s']:.2f}"]
        print("  ".join(f"{v:>13}" for v in vals))
    at8 = [r["cpu_us"] for r in rows if r["workers"] == 8]
    verdict = all(v < TARGET_CPU_US for v in at8)
    print(f"policy-side overhead per step at 8 workers: {', '.join(f'{v:.0f}' for v in at8)} us CPU "
          f"(target < {TARGET_CPU_US:.0f}): {'met' if verdict else 'NOT met'}")
    out = Path(__file__).parent / "results" / "ray.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"ray_version": ray.__version__, "init_s": init_s, "shutdown_s": shutdown_s,
                               "envs_per_worker": k, "quick": args.quick, "rows": rows,
                               "target_cpu_us": TARGET_CPU_US, "target_met": verdict}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
