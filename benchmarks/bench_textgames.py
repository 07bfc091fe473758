"""Text games: wrapper overhead against raw textworld, reset cost, generation time, ALFWorld steps/s.

Side by side in one run, on the same game and the same commands:

* TextWorld steps/s through ``textworld.start`` directly and through rlvr/TextWorld-v0, with and
  without admissible commands (overhead target: at most 10%);
* reset cost of both environments;
* generation time per game (a TextWorld coin-collector game, one ALFWorld game per task type, in a
  fresh cache directory);
* ALFWorld steps/s, with and without admissible commands in the observation (the engine computes them
  either way).

Steps/s count the CPU time of this process (``time.process_time``; the engines run in-process), which a
shared machine disturbs far less than wall time; resets and generation are wall time. Prints a table and writes ``benchmarks/results/textgames.json``. ``--quick`` (under a minute once the
default games are cached) uses fewer steps and two ALFWorld task types.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

COMMANDS = ["look", "inventory", "xyzzy", "go north", "examine coin", "go south", "look", "take the moon"]


def _raw_textworld(path: Path, admissible: bool, steps: int) -> float:
    import textworld

    infos = textworld.EnvInfos(feedback=True, won=True, lost=True, score=True, max_score=True, objective=True,
                               command_templates=True, extras=["walkthrough"], admissible_commands=admissible)
    env = textworld.start(str(path), request_infos=infos)
    env.reset()
    start = time.process_time()
    for i in range(steps):
        env.step(COMMANDS[i % len(COMMANDS)])
    elapsed = time.process_time() - start
    env.close()
    return steps / elapsed


def _ours(env, steps: int) -> float:
    env.reset(options={"game": 0})
    start = time.process_time()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(f"<action>{COMMANDS[i % len(COMMANDS)]}</action>")
        if terminated or truncated:
            env.reset(options={"game": 0})
    return steps / (time.process_time() - start)


def _reset_ms(env, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        env.reset(options={"game": 0})
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from rlvr.envs.textgames import alfgen, twgen
    from rlvr.envs.textgames.alfworld_env import ALFWorldEnv
    from rlvr.envs.textgames.textworld_env import TextWorldEnv

    steps = 150 if args.quick else 600
    rows: list[tuple[str, str, float, str]] = []
    for admissible in (False, True):
        env = TextWorldEnv(pool_size=1, list_admissible=admissible, max_turns=10**6)
        path = env.game_path(0)
        raw, ours = [], []
        for _ in range(5):  # interleaved, best of five
            raw.append(_raw_textworld(path, admissible, steps))
            ours.append(_ours(env, steps))
        tag = "with" if admissible else "without"
        rows.append((f"TextWorld raw textworld, {tag} admissible", "steps/s", max(raw), ""))
        rows.append((f"TextWorld rlvr env, {tag} admissible", "steps/s", max(ours),
                     f"overhead {100 * (max(raw) / max(ours) - 1):+.1f}%"))
        if admissible:
            rows.append(("TextWorld reset", "ms", _reset_ms(env, 10), ""))
        env.close()

    types = alfgen.TASK_TYPES[:2] if args.quick else alfgen.TASK_TYPES
    for admissible in (False, True):
        env = ALFWorldEnv(task_types=types, pool_size=len(types), list_admissible=admissible, max_turns=10**6)
        rows.append((f"ALFWorld rlvr env, {'with' if admissible else 'without'} admissible", "steps/s",
                     _ours(env, steps // 5), ""))
        if admissible:
            rows.append(("ALFWorld reset", "ms", _reset_ms(env, 3), ""))
        env.close()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RLVR_CACHE"] = tmp
        start = time.perf_counter()
        twgen.generate("coin_collector", twgen.check_settings("coin_collector", None), 12345)
        rows.append(("generate TextWorld coin_collector game", "s/game", time.perf_counter() - start, ""))
        times = []
        seeds = (12345,) if args.quick else (12345, 12346, 12347)
        for kind in types:
            draws = []
            for seed in seeds:
                start = time.perf_counter()
                path = alfgen.generate(kind, seed)
                times.append(time.perf_counter() - start)
                draws.append(json.loads((path.parent / "traj_data.json").read_text())["rlvr_draws"])
            targets = sum(len(alfgen.candidates(kind, s)) for s in alfgen.scene_types().values())
            rows.append((f"ALFWorld {kind}", "draws", sum(draws) / len(draws),
                         f"{len(seeds)} games verified; {targets} (object, receptacle) targets to draw from"))
        rows.append((f"generate ALFWorld game ({len(types)} types)", "s/game", sum(times) / len(times),
                     f"max {max(times):.1f} s"))
        os.environ.pop("RLVR_CACHE")

    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'unit':8} {'value':>9}  note")
    for name, unit, value, note in rows:
        print(f"{name.ljust(width)}  {unit:8} {value:9.1f}  {note}")
    out = Path(__file__).parent / "results" / "textgames.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps([{"measure": n, "unit": u, "value": v, "note": t} for n, u, v, t in rows], indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
