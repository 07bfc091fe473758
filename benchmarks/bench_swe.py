"""SWE sandbox benchmark: cold container starts against warm-pool resets, and oracle episodes per minute.

Measured side by side in one run:

* ``cold docker run --rm``: ``docker run --rm --network none IMAGE true`` through the CLI (the baseline);
* ``cold sandbox + tree``: a new sandbox container plus loading a task tree (what an episode costs
  without a pool);
* ``pool acquire + reset``: a used warm sandbox (changed files, new files, a background process)
  restored with ``git reset --hard`` + ``git clean -fdx`` and its processes killed (same task);
* ``pool acquire + new task``: a warm sandbox given another task's tree (fresh single-commit repository);
* oracle episodes per minute at concurrency 1, 4 and 8 through :func:`rlvr.agents.rollout.rollout`.

Prints a table and writes ``benchmarks/results/bench_swe.json``. Needs a Docker engine
(``containers/provision.sh``).

    python benchmarks/bench_swe.py [--repeats 30] [--episodes 6 12 16]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

from rlvr.agents.base import OracleAgent
from rlvr.agents.rollout import rollout
from rlvr.envs.swe import images
from rlvr.envs.swe.env import SWEEnv
from rlvr.envs.swe.generator import SWESmithGenerator
from rlvr.envs.swe.pool import SandboxPool
from rlvr.envs.swe.sandbox import DockerBackend


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--episodes", type=int, nargs="+", default=[6, 12, 16], help="episodes per concurrency level")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_swe.json"))
    ap.add_argument("--quick", action="store_true", help="under a minute: 5 repeats, concurrency 1 and 4")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.concurrency, args.episodes = 5, [1, 4], [4, 8]
    if len(args.episodes) != len(args.concurrency):
        ap.error("--episodes needs one value per --concurrency level")

    backend = DockerBackend()
    image = images.ensure_env_image(backend.client)
    gen = SWESmithGenerator()
    tasks = [gen.task(s) for s in range(8)]
    trees = [(t.tree(), t.metadata["tree_digest"]) for t in tasks]

    cold_cli = timed(lambda: subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"],
                                            check=True, capture_output=True), args.repeats)

    def cold_sandbox():
        with backend.create(image) as sb:
            sb.load_tree(trees[0][0])

    cold_sb = timed(cold_sandbox, max(5, args.repeats // 3))

    rows = {}
    with SandboxPool(backend, image, size=1, max_size=1) as pool:
        pool.warm()
        with pool.acquire(lambda sb: sb.load_tree(trees[0][0], digest=trees[0][1])):
            pass

        def dirty():  # an episode leaves changes, new files and a background process behind (not timed)
            with pool.acquire() as sb:
                sb.exec("echo dirty >> README.md; mkdir -p build && echo x > build/out.txt; "
                        "setsid sleep 600 >/dev/null 2>&1 < /dev/null & sleep 0.05")

        warm_same_t, warm_new_t = [], []
        for _ in range(args.repeats):
            dirty()
            t = time.perf_counter()
            with pool.acquire(lambda sb: sb.reset()) as sb:
                pass
            warm_same_t.append(time.perf_counter() - t)
            assert sb.diff() == "", "reset left changes behind"
        for i in range(args.repeats):
            dirty()
            tree, digest = trees[i % len(trees)]
            t = time.perf_counter()
            with pool.acquire(lambda sb, tree=tree, digest=digest: sb.load_tree(tree, digest=digest)):
                pass
            warm_new_t.append(time.perf_counter() - t)

    for name, xs in [("cold docker run --rm", cold_cli), ("cold sandbox + tree", cold_sb),
                     ("pool acquire + reset", warm_same_t), ("pool acquire + new task", warm_new_t)]:
        rows[name] = {"n": len(xs), "p50_s": pct(xs, 50), "p99_s": pct(xs, 99), "mean_s": statistics.fmean(xs)}
    base = rows["cold docker run --rm"]["p50_s"]
    for r in rows.values():
        r["p50_ratio_to_cold"] = r["p50_s"] / base

    throughput = {}
    for conc, n_ep in zip(args.concurrency, args.episodes):
        with SandboxPool(backend, image, size=conc, max_size=conc) as pool:
            pool.warm()

            def factory():
                return SWEEnv(pool=pool, max_turns=8, command_timeout_s=30, test_timeout_s=120)

            t = time.perf_counter()
            trajs = rollout(factory, OracleAgent(), episodes=n_ep, seed=1000 * conc, concurrency=conc)
            wall = time.perf_counter() - t
        resolved = sum(bool(tr.turns and tr.turns[-1].info.get("resolved")) for tr in trajs)
        throughput[conc] = {"episodes": n_ep, "wall_s": wall, "episodes_per_min": 60 * n_ep / wall,
                            "resolved": resolved}
    one = throughput[args.concurrency[0]]["episodes_per_min"]
    for v in throughput.values():
        v["speedup_vs_c1"] = v["episodes_per_min"] / one

    print(f"\nSWE sandbox latency ({args.repeats} repeats; image {image})")
    print(f"{'path':<26}{'n':>4}{'p50 s':>9}{'p99 s':>9}{'p50 / cold':>12}")
    for name, r in rows.items():
        print(f"{name:<26}{r['n']:>4}{r['p50_s']:>9.3f}{r['p99_s']:>9.3f}{r['p50_ratio_to_cold']:>12.2f}")
    print("\nOracle episodes (apply gold patch, run tests, submit)")
    print(f"{'concurrency':>11}{'episodes':>10}{'wall s':>9}{'ep/min':>9}{'vs c=1':>8}{'resolved':>10}")
    for c, v in throughput.items():
        print(f"{c:>11}{v['episodes']:>10}{v['wall_s']:>9.1f}{v['episodes_per_min']:>9.1f}"
              f"{v['speedup_vs_c1']:>8.2f}{v['resolved']:>7}/{v['episodes']}")
    target = rows["pool acquire + reset"]["p50_ratio_to_cold"]
    print(f"\nwarm reset / cold start (p50): {target:.3f}  (target <= 0.2: {'met' if target <= 0.2 else 'NOT met'})")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "bench_swe", "image": image, "machine": {"cpus": __import__("os").cpu_count(),
                                                             "python": platform.python_version()},
        "latency": rows, "throughput": {str(k): v for k, v in throughput.items()},
        "warm_reset_over_cold_p50": target,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
