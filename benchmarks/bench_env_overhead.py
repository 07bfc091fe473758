"""Per-step overhead of AgentEnv (parsing, schema validation, budgets, info, trajectory records)
over a raw gymnasium env doing the same work (regex + json.loads + the tool function), side by side.

Target: at most 50 us of overhead per step. Prints a table and writes benchmarks/results/env_overhead.json.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import gymnasium as gym

import rlvr  # noqa: F401
from rlvr.agents.trajectory import Turn
from rlvr.envs.guess_number import GuessNumberEnv

STEPS = 2000
ROUNDS = 7
HIGH = 1_000_000
ACTIONS = [f'<tool_call>{{"name": "guess", "arguments": {{"number": {n}}}}}</tool_call>' for n in range(1, 400)]


class RawGuessEnv(gym.Env):
    """The same game with the bare minimum: extract the call, decode JSON, run the function."""

    _re = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)

    def __init__(self):
        self.secret = HIGH // 2

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "go"}], {}

    def step(self, action):
        call = json.loads(self._re.search(action).group(1))
        n = call["arguments"]["number"]
        out = "higher" if n < self.secret else "lower" if n > self.secret else "correct"
        return [{"role": "tool", "name": "guess", "content": out}], 0.0, False, False, {}


def _time(env, record: bool) -> float:
    env.reset(seed=0)
    u = env.unwrapped
    t0 = time.perf_counter()
    for i in range(STEPS):
        a = ACTIONS[i % len(ACTIONS)]
        obs, r, term, trunc, info = env.step(a)
        if record:
            Turn(i, a, obs, r, info["reward_components"], term, trunc, info["tool_calls"], info["error"])
        if term or trunc:
            env.reset(seed=0)
        if isinstance(u, GuessNumberEnv):
            u.lo, u.hi = 1, HIGH  # keep the interval wide so every step does the same work
    return (time.perf_counter() - t0) / STEPS * 1e6


def main() -> None:
    variants = {
        "raw gymnasium env": lambda: (RawGuessEnv(), False),
        "AgentEnv (unwrapped)": lambda: (GuessNumberEnv(high=HIGH, max_turns=10**9), False),
        "AgentEnv + Turn record": lambda: (GuessNumberEnv(high=HIGH, max_turns=10**9), True),
        "gym.make (checker wrappers) + record": lambda: (gym.make("rlvr/GuessNumber-v0", high=HIGH, max_turns=10**9), True),
        "AgentEnv, tool under timeout thread": lambda: (_timeout_env(), True),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(ROUNDS):  # interleaved rounds: machine noise hits every variant alike
        for name, make in variants.items():
            env, record = make()
            samples[name].append(_time(env, record))
    base = statistics.median(samples["raw gymnasium env"])
    rows = []
    print(f"{'variant':<40} {'us/step':>9} {'overhead us':>12} {'ratio':>7}")
    for name, xs in samples.items():
        med = statistics.median(xs)
        rows.append({"variant": name, "us_per_step": med, "overhead_us": med - base, "ratio": med / base})
        print(f"{name:<40} {med:9.1f} {med - base:12.1f} {med / base:7.2f}")
    overhead = rows[2]["overhead_us"]
    print(f"\nAgentEnv overhead incl. records: {overhead:.1f} us/step (target <= 50 us): {'PASS' if overhead <= 50 else 'FAIL'}")
    out = Path(__file__).parent / "results" / "env_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"steps": STEPS, "rounds": ROUNDS, "rows": rows, "target_us": 50, "overhead_us": overhead}, indent=2))


def _timeout_env() -> GuessNumberEnv:
    env = GuessNumberEnv(high=HIGH, max_turns=10**9)
    env.tools["guess"].inline = False
    env.tools["guess"].timeout_s = 5.0
    return env


if __name__ == "__main__":
    main()
