"""Grounding-v0 costs: crop-and-resize per zoom step on 4K originals, memory per episode, oracle
episodes, and the time to generate a synthetic task.

* zoom step: ``env.step`` with a random valid box (sides log-uniform from 28 to 600 view pixels, so
  small regions are the common case, as targets are) on 4096-pixel-wide canvases: parsing, the box checks, the crop from the original at full resolution, the BICUBIC resize
  into the pixel budget and the message (p50 / p99 of wall time and of this process's CPU time, which a loaded machine
  inflates less; target p50 under 20 ms), and ``crop_view`` alone;
* memory: bytes of the images an episode holds (the original, its opening view, every crop shown) and
  the process's peak RSS growth over the run;
* oracle: steps/s and episodes/s with every task already rendered (warm), and with rendering (cold);
* generation: layout (question, options, gold box) and rendering time per synthetic task.

Run: ``python benchmarks/bench_grounding.py`` (``--quick`` for a run under a minute). Writes
``benchmarks/results/bench_grounding.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlvr.envs.grounding import GroundingEnv, SyntheticConfig, crop_view, generate_tasks  # noqa: E402
from rlvr.envs.grounding.synthetic import bundled_textures  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zoom_steps(n_tasks: int, steps_per_task: int, seed: int) -> dict[str, float]:
    """Per-step latency of zooms on 4K canvases, and of crop_view alone."""
    tasks = generate_tasks(SyntheticConfig(seed=seed, n_tasks=n_tasks, min_side=4096, max_side=4096))
    env = GroundingEnv(tasks, max_turns=steps_per_task + 1, max_images=steps_per_task + 2)
    rng = np.random.default_rng(seed)
    step_ms, step_cpu_ms, crop_ms, held = [], [], [], []
    for i in range(n_tasks):
        env.reset(options={"index": i})
        w, h = env.view.size
        for _ in range(steps_per_task):
            side = float(np.exp(rng.uniform(np.log(28), np.log(600))))
            x, y = float(rng.uniform(0, w - side)), float(rng.uniform(0, h - min(side, h - 1)))
            box = [round(x, 1), round(y, 1), round(x + side, 1), round(min(y + side, h), 1)]
            t0, c0 = time.perf_counter(), time.process_time()
            env.step(json.dumps({"bbox_2d": box}))
            step_ms.append((time.perf_counter() - t0) * 1e3)
            step_cpu_ms.append((time.process_time() - c0) * 1e3)
            region = env.zooms[-1]
            t0 = time.perf_counter()
            crop_view(env.original, region)
            crop_ms.append((time.perf_counter() - t0) * 1e3)
        o, v = env.original, env.view.image
        held.append(3 * (o.width * o.height + v.width * v.height) + 3 * env.pixels_shown - 3 * v.width * v.height)
    return {"steps": len(step_ms), "step_p50_ms": pct(step_ms, 50), "step_p99_ms": pct(step_ms, 99),
            "step_cpu_p50_ms": pct(step_cpu_ms, 50), "step_cpu_p99_ms": pct(step_cpu_ms, 99),
            "crop_p50_ms": pct(crop_ms, 50), "crop_p99_ms": pct(crop_ms, 99),
            "episode_image_mb": float(np.mean(held)) / 2**20, "canvas": "4096 px wide"}


def oracle_run(n_tasks: int, episodes: int, seed: int) -> dict[str, float]:
    from rlvr.agents import OracleAgent
    from rlvr.agents.rollout import rollout

    kw = {"n_tasks": n_tasks, "data_seed": seed}
    t0 = time.perf_counter()
    cold = rollout("rlvr/Grounding-v0", OracleAgent(), episodes=n_tasks, seeds=list(range(n_tasks)), env_kwargs=kw)
    cold_s = time.perf_counter() - t0
    env = GroundingEnv(**kw)
    for i in range(n_tasks):  # render every task once: the warm run measures the episode loop only
        env.reset(options={"index": i})
    steps, t0, correct = 0, time.perf_counter(), 0
    for e in range(episodes):
        env.reset(options={"index": e % n_tasks})
        while True:
            *_, term, trunc, info = env.step(env.oracle_action())
            steps += 1
            if term or trunc:
                correct += bool(info.get("success"))
                break
    warm_s = time.perf_counter() - t0
    return {"cold_episodes": len(cold), "cold_episodes_per_s": len(cold) / cold_s,
            "cold_success": float(np.mean([t.turns[-1].info["success"] for t in cold])),
            "warm_episodes": episodes, "warm_steps_per_s": steps / warm_s, "warm_episodes_per_s": episodes / warm_s,
            "warm_success": correct / episodes}


def generation(n_tasks: int, seed: int) -> dict[str, float]:
    t0 = time.perf_counter()
    tasks = generate_tasks(SyntheticConfig(seed=seed + 1, n_tasks=n_tasks))
    layout_ms = (time.perf_counter() - t0) * 1e3 / n_tasks
    render_ms, render_cpu_ms, sides = [], [], []
    for t in tasks:
        t0, c0 = time.perf_counter(), time.process_time()
        img = t.image()
        render_ms.append((time.perf_counter() - t0) * 1e3)
        render_cpu_ms.append((time.process_time() - c0) * 1e3)
        sides.append(img.width)
    return {"tasks": n_tasks, "layout_ms_per_task": layout_ms, "render_p50_ms": pct(render_ms, 50),
            "render_cpu_p50_ms": pct(render_cpu_ms, 50), "render_max_ms": max(render_ms),
            "mean_canvas_width": float(np.mean(sides)), "textures": len(bundled_textures())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_grounding.json"))
    args = ap.parse_args(argv)
    n, k, eps = (4, 25, 60) if args.quick else (12, 60, 400)
    rss0 = rss_mb()
    zoom = zoom_steps(n, k, args.seed)
    oracle = oracle_run(n, eps, args.seed)
    gen = generation(n, args.seed)
    result = {"zoom": zoom, "oracle": oracle, "generation": gen, "peak_rss_growth_mb": rss_mb() - rss0,
              "quick": args.quick, "python": platform.python_version(), "machine": platform.machine()}
    rows = [
        ("zoom step p50 / p99 (4K)", f"{zoom['step_p50_ms']:.1f} / {zoom['step_p99_ms']:.1f} ms wall, "
                                     f"{zoom['step_cpu_p50_ms']:.1f} / {zoom['step_cpu_p99_ms']:.1f} ms CPU (target p50 < 20)"),
        ("crop_view p50 / p99", f"{zoom['crop_p50_ms']:.1f} / {zoom['crop_p99_ms']:.1f} ms"),
        ("images held per episode", f"{zoom['episode_image_mb']:.1f} MB ({k} zooms on a 4K original)"),
        ("oracle (warm)", f"{oracle['warm_steps_per_s']:.0f} steps/s, {oracle['warm_episodes_per_s']:.0f} episodes/s, "
                          f"success {oracle['warm_success']:.2f}"),
        ("oracle (cold, rendering)", f"{oracle['cold_episodes_per_s']:.1f} episodes/s, success {oracle['cold_success']:.2f}"),
        ("task layout", f"{gen['layout_ms_per_task']:.2f} ms"),
        ("task render p50 / max", f"{gen['render_p50_ms']:.0f} / {gen['render_max_ms']:.0f} ms wall, "
                                  f"p50 {gen['render_cpu_p50_ms']:.0f} ms CPU (mean width {gen['mean_canvas_width']:.0f} px, "
                                  f"{gen['textures']} bundled textures)"),
        ("peak RSS growth", f"{result['peak_rss_growth_mb']:.0f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
