"""rlvr/ToolCall-v0 throughput and MatchTIR matching cost, side by side.

1. Environment steps per second on BFCL multi-turn (every case of the four multi-turn categories)
   with the oracle agent, against a baseline that replays the same gold calls straight on BFCL's
   backends with the same state check and no environment around it. Tools run under the per-call
   timeout thread (the default) or inline (``tool_timeout_s=None``).
2. Matching time for 8x8 and 64x64 call sets: building the similarity matrix, then Hungarian
   (scipy), Sinkhorn (POT) and the published greedy matching, as ratios to Hungarian.

Prints two tables and writes benchmarks/results/toolcall.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from rlvr.envs.toolcall import ToolCallEnv, load_bfcl
from rlvr.envs.toolcall.bfcl import MULTI_TURN_CATEGORIES
from rlvr.rewards.matchtir import (
    call_rewards,
    greedy_assignment,
    hungarian_assignment,
    similarity_matrix,
    sinkhorn_assignment,
)

ROUNDS = 3
MATCH_REPEATS = {8: 400, 64: 12}


def _oracle_pass(env: ToolCallEnv, n: int) -> tuple[int, int, float]:
    steps = episodes = 0
    t0 = time.perf_counter()
    for i in range(n):
        env.reset(options={"index": i})
        while True:
            *_, term, trunc, _ = env.step(env.oracle_action())
            steps += 1
            if term or trunc:
                break
        episodes += 1
    return steps, episodes, time.perf_counter() - t0


def _raw_pass(tasks) -> tuple[int, int, float]:
    """The gold calls straight on the backends, with the same state comparison, no env."""
    calls = 0
    t0 = time.perf_counter()
    for t in tasks:
        model, gold = t.backend(), t.backend()
        mf, gf = model.functions(), gold.functions()
        for req in t.requests:
            for c in req.gold:
                for fns in (mf, gf):
                    try:
                        fns[c.name](**c.arguments)
                    except Exception:  # noqa: BLE001 - a few gold calls fail by design
                        pass
                calls += 1
            if req.gold:
                _ = model.state() == gold.state()
    return calls, len(tasks), time.perf_counter() - t0


def bench_env() -> list[dict]:
    tasks = load_bfcl(MULTI_TURN_CATEGORIES)
    envs = {
        "ToolCallEnv, tools under timeout threads": ToolCallEnv("bfcl", categories=list(MULTI_TURN_CATEGORIES)),
        "ToolCallEnv, tools inline": ToolCallEnv("bfcl", categories=list(MULTI_TURN_CATEGORIES), tool_timeout_s=None),
    }
    for e in envs.values():
        e.reset(options={"index": 0})  # load outside the timing
    samples: dict[str, list[tuple[int, int, float]]] = {"raw backend replay (no env)": []} | {k: [] for k in envs}
    for _ in range(ROUNDS):
        samples["raw backend replay (no env)"].append(_raw_pass(tasks))
        for name, e in envs.items():
            samples[name].append(_oracle_pass(e, len(tasks)))
    rows = []
    base_ep = None
    print(f"\nBFCL multi-turn, oracle agent, {len(tasks)} cases, median of {ROUNDS} rounds")
    print(f"{'variant':<42} {'steps/s':>9} {'ms/step':>8} {'episodes/s':>11} {'ms/episode':>11} {'x raw':>7}")
    for name, xs in samples.items():
        steps, eps, secs = sorted(xs, key=lambda x: x[2])[len(xs) // 2]
        ep_ms = secs / eps * 1e3
        base_ep = base_ep or ep_ms
        row = {"variant": name, "steps": steps, "episodes": eps, "seconds": secs, "steps_per_s": steps / secs,
               "ms_per_step": secs / steps * 1e3, "episodes_per_s": eps / secs, "ms_per_episode": ep_ms,
               "ratio_to_raw": ep_ms / base_ep}
        rows.append(row)
        unit = "calls" if name.startswith("raw") else "steps"
        print(f"{name:<42} {row['steps_per_s']:9.0f} {row['ms_per_step']:8.3f} {row['episodes_per_s']:11.1f} "
              f"{ep_ms:11.2f} {row['ratio_to_raw']:7.2f}" + ("   (steps = gold calls)" if unit == "calls" else ""))
    return rows


def _calls(rng: np.random.Generator, n: int) -> tuple[list[dict], list[dict]]:
    tools = [f"tool_{i}" for i in range(max(2, n // 4))]
    golds = []
    for _ in range(n):
        keys = rng.choice(["a", "b", "c", "d", "e"], size=int(rng.integers(1, 5)), replace=False)
        golds.append({"name": str(rng.choice(tools)), "arguments": {str(k): int(rng.integers(0, 3)) for k in keys}})
    preds = []
    for g in golds:
        p = {"name": g["name"], "arguments": dict(g["arguments"])}
        r = rng.random()
        if r < 0.3:
            k = next(iter(p["arguments"]))
            p["arguments"][k] = 99
        elif r < 0.45:
            p["name"] = str(rng.choice(tools))
        preds.append(p)
    rng.shuffle(preds)
    return preds, golds


def _median_us(fn, repeats: int) -> float:
    xs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        xs.append((time.perf_counter() - t0) / repeats * 1e6)
    return statistics.median(xs)


def bench_matching() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    print(f"\nMatchTIR matching, microseconds per call set (median of 5)")
    print(f"{'size':<7} {'step':<34} {'us':>10} {'x Hungarian':>12} {'total credit':>13}")
    for n, reps in MATCH_REPEATS.items():
        preds, golds = _calls(rng, n)
        s = similarity_matrix(preds, golds)
        variants = {
            "similarity matrix": (lambda: similarity_matrix(preds, golds), None),
            "Hungarian (scipy)": (lambda: hungarian_assignment(s), hungarian_assignment),
            "Sinkhorn (POT, reg 0.1)": (lambda: sinkhorn_assignment(s), None),
            "greedy (published)": (lambda: greedy_assignment(s), greedy_assignment),
            "end to end: call_rewards hungarian": (lambda: call_rewards(preds, golds, "hungarian"), None),
            "end to end: call_rewards sinkhorn": (lambda: call_rewards(preds, golds, "sinkhorn"), None),
            "end to end: call_rewards greedy": (lambda: call_rewards(preds, golds, "greedy"), None),
        }
        timings = {name: _median_us(fn, reps) for name, (fn, _) in variants.items()}
        base = timings["Hungarian (scipy)"]
        credit = {
            "Hungarian (scipy)": float(call_rewards(preds, golds, "hungarian").sum()),
            "Sinkhorn (POT, reg 0.1)": float(call_rewards(preds, golds, "sinkhorn").sum()),
            "greedy (published)": float(call_rewards(preds, golds, "greedy").sum()),
        }
        for name, us in timings.items():
            row = {"size": f"{n}x{n}", "step": name, "us": us, "ratio_to_hungarian": us / base, "total_credit": credit.get(name)}
            rows.append(row)
            cr = f"{credit[name]:13.3f}" if name in credit else " " * 13
            print(f"{n}x{n:<5} {name:<34} {us:10.1f} {us / base:12.2f} {cr}")
    return rows


def main() -> None:
    env_rows = bench_env()
    match_rows = bench_matching()
    out = Path(__file__).parent / "results" / "toolcall.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rounds": ROUNDS, "env": env_rows, "matching": match_rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
