"""Per-step overhead of serving an environment over OpenEnv's protocol, against the same environment in process.

The same oracle action sequences of rlvr/GuessNumber-v0 (steps cost microseconds, so the protocol is
what is measured) are replayed three ways: ``gym.make`` in this process, and :class:`RemoteEnv`
(OpenEnv's WebSocket client) against ``rlvr serve`` running in another process on 127.0.0.1, with one
session and with 16 concurrent sessions (one thread and one connection each). Reported: per-step
latency p50 / p99, steps per second over all sessions, and the overhead per step
(remote p50 minus in-process p50).

Prints a table and writes benchmarks/results/openenv.json. ``--quick`` replays fewer episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym

import rlvr  # noqa: F401
from rlvr.integrations.openenv import RemoteEnv

ENV = "rlvr/GuessNumber-v0"


def _scripts(episodes: int) -> list[tuple[str, list[str]]]:
    """(task id, oracle actions) of ``episodes`` episodes, computed in process."""
    env = gym.make(ENV)
    out = []
    for i in range(episodes):
        _, info = env.reset(seed=i)
        actions, done = [], False
        while not done:
            a = env.unwrapped.oracle_action()
            actions.append(a)
            *_, term, trunc, _ = env.step(a)
            done = term or trunc
        out.append((info["task_id"], actions))
    return out


def _replay(env, scripts) -> list[float]:
    """Seconds per step while replaying ``scripts`` on ``env``."""
    times = []
    for task_id, actions in scripts:
        env.reset(options={"task_id": task_id})
        for a in actions:
            t0 = time.perf_counter()
            env.step(a)
            times.append(time.perf_counter() - t0)
    return times


def _run(make, scripts, sessions: int) -> dict:
    envs = [make() for _ in range(sessions)]
    per: list[list[float]] = [[] for _ in range(sessions)]
    barrier = threading.Barrier(sessions)

    def work(k: int) -> None:
        barrier.wait()
        per[k] = _replay(envs[k], scripts)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(sessions)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for e in envs:
        e.close()
    flat = sorted(x for p in per for x in p)
    return {"sessions": sessions, "steps": len(flat), "p50_us": 1e6 * statistics.median(flat),
            "p99_us": 1e6 * flat[min(len(flat) - 1, int(0.99 * len(flat)))], "steps_per_s": len(flat) / wall}


def _start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "rlvr.cli", "serve", ENV, "--port", "0", "--max-sessions", "32"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    line = proc.stdout.readline()
    m = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, m.group(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer episodes (under a minute)")
    a = p.parse_args()
    episodes = 20 if a.quick else 100
    scripts = _scripts(episodes)
    proc, url = _start_server()
    try:
        rows = []
        for sessions in (1, 16):
            local = _run(lambda: gym.make(ENV), scripts, sessions)
            remote = _run(lambda: RemoteEnv(url), scripts, sessions)
            rows.append({"path": "in-process", **local})
            rows.append({"path": "openenv", **remote, "overhead_us_per_step": remote["p50_us"] - local["p50_us"],
                         "latency_ratio": remote["p50_us"] / local["p50_us"]})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
    print(f"{ENV}, {episodes} oracle episodes per session, server in another process on 127.0.0.1")
    print(f"{'path':>10} {'sessions':>8} {'steps':>7} {'p50 us':>9} {'p99 us':>9} {'steps/s':>9} {'overhead us':>12}")
    for r in rows:
        over = f"{r['overhead_us_per_step']:.0f}" if "overhead_us_per_step" in r else "-"
        print(f"{r['path']:>10} {r['sessions']:>8} {r['steps']:>7} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f} "
              f"{r['steps_per_s']:>9.0f} {over:>12}")
    out = Path(__file__).parent / "results" / "openenv.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"env": ENV, "episodes": episodes, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
