"""The step loop that ``bench_env_overhead.py`` times on rlvr and on GEM, one process per side.

Run as ``python env_step_loop.py rlvr|gem``, with the interpreter of the side (the project's for rlvr,
the side venv's for GEM; the module imports only the standard library until it knows its side).
It builds the environments, runs every scenario once to warm up, prints ``ready`` with a JSON
description, then answers each ``run SCENARIO`` line on stdin with one JSON line of timings, until
``quit``. The parent alternates its requests between the sides, so machine noise hits both alike.
``python env_step_loop.py SIDE count SCENARIO EPISODES`` runs one warm-up and one loop of EPISODES
episodes and exits: under an instruction counter, the difference between EPISODES and 0 is the loop's cost.

The loop, on both sides: 300 episodes; each episode resets with its seed and then guesses 1, 2, ...
in order, one guess per step, until the episode ends; resets are inside the timed region.

* ``matched``: both sides play the same game, so the loop is the same work on both: numbers 1..100,
  12 turns, and a secret above 12, so that each episode is exactly the 12 guesses 1..12 and ends by
  its turn budget (3,600 steps, 300 resets, every reply "higher"). rlvr draws its secret with its seed
  (the usual reset path); GEM, whose own draw may fall in 1..12 and end the episode early, gets the
  secret set on the env after its reset (one attribute write per episode).
* ``registered``: each side as registered, the same guesses until the episode ends: rlvr's
  ``rlvr/GuessNumber-v0`` (1..100, 9 turns) and GEM's ``game:GuessTheNumber-v0-easy`` (1..10, 4 turns,
  and a correct guess ends it), so the sides take different numbers of steps per reset.

Actions are each side's own format for the same guess: rlvr's Hermes tool call
``<tool_call>{"name": "guess", "arguments": {"number": N}}</tool_call>``, GEM's ``\\boxed{N}``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any, Callable

EPISODES = 300
GUESSES = range(1, 13)
MATCHED = {"low": 1, "high": 100, "max_turns": 12}


def _secret(episode: int) -> int:
    """A secret above 12 for GEM's matched game (rlvr draws its own)."""
    return 13 + (episode * 37) % 88


class _Side:
    """One side's environments and actions; ``loop`` runs the timed episodes of a scenario."""

    name: str
    actions: list[str]
    envs: dict[str, Any]

    def reset(self, env: Any, scenario: str, episode: int) -> None:
        raise NotImplementedError

    def loop(self, scenario: str, episodes: int = EPISODES) -> dict[str, Any]:
        env, reset, actions = self.envs[scenario], self.reset, self.actions
        steps = 0
        lengths: dict[int, int] = {}
        gc.collect()
        t0 = time.perf_counter()
        for ep in range(episodes):
            reset(env, scenario, ep)
            n = 0
            for action in actions:
                _, _, terminated, truncated, _ = env.step(action)
                n += 1
                if terminated or truncated:
                    break
            steps += n
            lengths[n] = lengths.get(n, 0) + 1
        elapsed = time.perf_counter() - t0
        if scenario == "matched" and lengths != {len(GUESSES): episodes}:
            raise SystemExit(f"{self.name}: the matched loop must end every episode at step {len(GUESSES)}, "
                             f"got episode lengths {lengths}")
        return {"us_per_step": elapsed / steps * 1e6, "steps": steps, "resets": episodes,
                "seconds": elapsed, "episode_lengths": {str(k): v for k, v in sorted(lengths.items())}}


class _Rlvr(_Side):
    name = "rlvr"

    def __init__(self) -> None:
        import gymnasium as gym

        import rlvr

        self.version = getattr(rlvr, "__version__", "?")
        self.where = rlvr.__file__
        self.envs = {"matched": gym.make("rlvr/GuessNumber-v0", **MATCHED), "registered": gym.make("rlvr/GuessNumber-v0")}
        self.actions = [f'<tool_call>{{"name": "guess", "arguments": {{"number": {n}}}}}</tool_call>' for n in GUESSES]

    def reset(self, env: Any, scenario: str, episode: int) -> None:
        env.reset(seed=episode)


class _Gem(_Side):
    name = "gem"

    def __init__(self) -> None:
        import logging

        import gem

        logging.disable(logging.INFO)  # importing gem configures the root logger at INFO
        from importlib.metadata import version

        self.version = version("gem-llm")
        self.where = gem.__file__
        matched = {"min_number": MATCHED["low"], "max_number": MATCHED["high"], "max_turns": MATCHED["max_turns"]}
        self.envs = {"matched": gem.make("game:GuessTheNumber-v0-easy", **matched),
                     "registered": gem.make("game:GuessTheNumber-v0-easy")}
        self.actions = [f"\\boxed{{{n}}}" for n in GUESSES]

    def reset(self, env: Any, scenario: str, episode: int) -> None:
        env.reset(seed=episode)
        if scenario == "matched":
            env.game_number = _secret(episode)


SIDES: dict[str, Callable[[], _Side]] = {"rlvr": _Rlvr, "gem": _Gem}


def main(argv: list[str]) -> None:
    if len(argv) == 4 and argv[0] in SIDES and argv[1] == "count" and argv[3].isdigit():
        side = SIDES[argv[0]]()  # one warm-up loop and one of EPISODES episodes, for an instruction counter
        side.loop(argv[2], episodes=30)
        n = int(argv[3])  # with 0 the same calls (garbage collection, the JSON line) run around no episode
        result = side.loop(argv[2], episodes=n) if n else (gc.collect(), {"steps": 0})[1]
        print(json.dumps(result), flush=True)
        return
    if len(argv) != 1 or argv[0] not in SIDES:
        raise SystemExit(f"usage: env_step_loop.py {{{'|'.join(SIDES)}}} [count SCENARIO EPISODES]; got {argv}")
    side = SIDES[argv[0]]()
    for scenario in side.envs:  # warm up: imports, caches, the checker wrappers' first-call checks
        side.loop(scenario, episodes=30)
    print("ready " + json.dumps({"side": side.name, "version": side.version, "module": side.where}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd == ["quit"]:
            return
        if len(cmd) != 2 or cmd[0] != "run" or cmd[1] not in side.envs:
            raise SystemExit(f"expected 'run {{{'|'.join(side.envs)}}}' or 'quit', got {line!r}")
        print(json.dumps(side.loop(cmd[1])), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
