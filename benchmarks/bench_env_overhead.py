"""Per-step cost of AgentEnv, against a raw gymnasium env and against GEM, side by side in one run.

1. Overhead: AgentEnv (parsing, schema validation, budgets, info, trajectory records) over a raw
   gymnasium env doing the same work (regex + json.loads + the tool function). Target: at most 50 us.
2. GEM: the loop "300 episodes, guesses 1..12 in order, resets included" on ``rlvr/GuessNumber-v0``
   and on GEM's ``game:GuessTheNumber-v0-easy`` (PyPI ``gem-llm``), each side in its own process
   (GEM in a side venv, created once in ``benchmarks/.gem-venv``), runs alternated round by round.
   See ``env_step_loop.py`` for the loop and why its ``matched`` scenario is the same work on both
   sides. Target: rlvr at most 2x GEM's us/step, judged on both scenarios. ``--before REF`` adds rlvr as
   of a git revision (its ``rlvr`` package, extracted to a temporary folder) to the same rounds. When
   gem-llm cannot be installed (offline), the table says so and still gives rlvr's figures.
3. ``--instructions``: the same loops' instructions per step under valgrind, a count machine load does
   not change (the timings of a busy machine vary by 2x between rounds).

Prints the tables and writes benchmarks/results/env_overhead.json; ``--quick`` runs in under a minute
once the side venv exists.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

import rlvr  # noqa: F401
from rlvr._tar import extract_data
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


def overhead_table(rounds: int) -> dict[str, Any]:
    """Table 1: AgentEnv's per-step overhead over the raw env."""
    variants = {
        "raw gymnasium env": lambda: (RawGuessEnv(), False),
        "AgentEnv (unwrapped)": lambda: (GuessNumberEnv(high=HIGH, max_turns=10**9), False),
        "AgentEnv + Turn record": lambda: (GuessNumberEnv(high=HIGH, max_turns=10**9), True),
        "gym.make (checker wrappers) + record": lambda: (gym.make("rlvr/GuessNumber-v0", high=HIGH, max_turns=10**9), True),
        "AgentEnv, tool under timeout thread": lambda: (_timeout_env(), True),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):  # interleaved rounds: machine noise hits every variant alike
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
    return {"steps": STEPS, "rounds": rounds, "rows": rows, "target_us": 50, "overhead_us": overhead}


def _timeout_env() -> GuessNumberEnv:
    env = GuessNumberEnv(high=HIGH, max_turns=10**9)
    env.tools["guess"].inline = False
    env.tools["guess"].timeout_s = 5.0
    return env


# ----------------------------------------------------------------------------- against GEM
HERE = Path(__file__).resolve().parent
LOOP = HERE / "env_step_loop.py"
GEM_VENV = HERE / ".gem-venv"
GEM_REQUIREMENT = "gem-llm==0.1.0"
TARGET_RATIO = 2.0


def gem_python() -> tuple[Path | None, str]:
    """The side venv's interpreter with gem-llm importable, creating the venv once; or ``None`` and why not."""
    py = GEM_VENV / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import gem"], capture_output=True).returncode == 0:
        return py, f"{GEM_REQUIREMENT} in {GEM_VENV.name} (cached)"
    print(f"creating {GEM_VENV} with {GEM_REQUIREMENT} from the package index (once; about a minute) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", GEM_VENV], check=True, capture_output=True)
        r = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", GEM_REQUIREMENT],
                           capture_output=True, text=True, timeout=1200)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"could not create the side venv: {type(e).__name__}: {e}"
    if r.returncode != 0:
        lines = [x for x in (r.stderr or r.stdout).splitlines() if x.strip() and not x.startswith("WARNING")]
        return None, f"pip install {GEM_REQUIREMENT} failed (offline?): {lines[-1] if lines else r.returncode}"
    return py, f"{GEM_REQUIREMENT} installed in {GEM_VENV.name}"


def extract_revision(ref: str, into: Path) -> Path:
    """The ``rlvr`` package as of git revision ``ref``, extracted under ``into`` (read-only git use)."""
    root = HERE.parent
    r = subprocess.run(["git", "-C", root, "archive", "--format=tar", ref, "rlvr"], capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"--before {ref!r}: git archive failed: {r.stderr.decode(errors='replace').strip()} "
                         "(give a commit of this repository, e.g. --before HEAD~1)")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        extract_data(tar, into)
    return into


class Worker:
    """One side's loop process (``env_step_loop.py``), answering ``run SCENARIO`` with its timings."""

    def __init__(self, label: str, python: Path | str, side: str, pythonpath: Path | None = None) -> None:
        env = dict(os.environ)
        if pythonpath is not None:  # this rlvr package first, before the installed one
            env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [env.get("PYTHONPATH")])])
        self.label = label
        self.proc = subprocess.Popen([str(python), str(LOOP), side], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=HERE)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        while line and not line.startswith("ready "):  # anything a library prints on import
            print(f"[{label}] {line.rstrip()}")
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            self.proc.kill()
            raise SystemExit(f"{label}: the loop process did not start (exit {self.proc.wait()}); see its output above")
        self.meta = json.loads(line[len("ready "):])

    def run(self, scenario: str) -> dict[str, Any]:
        self.proc.stdin.write(f"run {scenario}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit(f"{self.label}: the loop process died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)


def gem_table(rounds: int, before: str | None) -> dict[str, Any]:
    """Table 2: the same loop on rlvr (now, and at ``before``) and on GEM, alternated round by round."""
    gem_py, gem_note = gem_python()
    workers: list[Worker] = []
    with tempfile.TemporaryDirectory(prefix="rlvr-before-") as tmp:
        try:
            workers.append(Worker("rlvr", sys.executable, "rlvr"))
            if before is not None:
                workers.append(Worker(f"rlvr @ {before}", sys.executable, "rlvr", extract_revision(before, Path(tmp))))
            if gem_py is not None:
                workers.append(Worker("gem", gem_py, "gem"))
            scenarios = ("matched", "registered")
            samples: dict[tuple[str, str], list[dict[str, Any]]] = {(s, w.label): [] for s in scenarios for w in workers}
            for r in range(rounds):  # alternated: each round runs every side once, the order rotated
                order = workers[r % len(workers):] + workers[:r % len(workers)]
                for scenario in scenarios:
                    for w in order:
                        samples[scenario, w.label].append(w.run(scenario))
        finally:
            for w in workers:
                w.close()
    rows = []
    for scenario in scenarios:
        gem_runs = samples.get((scenario, "gem"))
        for w in workers:
            runs = samples[scenario, w.label]
            us = [x["us_per_step"] for x in runs]
            row = {"scenario": scenario, "side": w.label, "module": w.meta["module"], "version": w.meta["version"],
                   "steps": runs[0]["steps"], "resets": runs[0]["resets"], "episode_lengths": runs[0]["episode_lengths"],
                   "us_per_step_median": statistics.median(us), "us_per_step_min": min(us), "us_per_step": us}
            if gem_runs:  # the ratio of the runs of one round, next to each other in time; its median over rounds
                row["ratio_to_gem"] = statistics.median(a["us_per_step"] / b["us_per_step"] for a, b in zip(runs, gem_runs))
            rows.append(row)
    print(f"\nThe loop: 300 episodes, guesses 1..12 in order until the episode ends, resets included; "
          f"{rounds} alternated rounds. GEM: {gem_note if gem_py else 'NOT RUN: ' + gem_note}")
    print(f"{'scenario':<11} {'side':<22} {'steps':>6} {'resets':>6} {'us/step':>8} {'min':>7} {'x GEM':>7}")
    for row in rows:
        ratio = f"{row['ratio_to_gem']:7.2f}" if "ratio_to_gem" in row else f"{'-':>7}"
        print(f"{row['scenario']:<11} {row['side']:<22} {row['steps']:6d} {row['resets']:6d} "
              f"{row['us_per_step_median']:8.2f} {row['us_per_step_min']:7.2f} {ratio}")
    verdicts = []
    for scenario, what in (("registered", "registered defaults"), ("matched", "matched game")):
        mine = next(r for r in rows if r["scenario"] == scenario and r["side"] == "rlvr")
        verdicts.append(f"rlvr / GEM, {what}: {mine['ratio_to_gem']:.2f}x (target <= {TARGET_RATIO:g}x): "
                        f"{'PASS' if mine['ratio_to_gem'] <= TARGET_RATIO else 'FAIL'}" if "ratio_to_gem" in mine else
                        "rlvr / GEM: not measured, GEM is not installed")
    verdict = "; ".join(dict.fromkeys(verdicts))
    print("\n".join(dict.fromkeys(verdicts)))
    return {"gem": gem_note if gem_py else None, "gem_missing": None if gem_py else gem_note, "rounds": rounds,
            "before": before, "target_ratio": TARGET_RATIO, "rows": rows, "verdict": verdict}


def instruction_table(before: str | None, episodes: int = 2000) -> dict[str, Any]:
    """Table 3: instructions per step of the same loops under valgrind (``callgrind``), which machine load
    does not change: each side's loop of ``episodes`` episodes minus the same process with none."""
    if shutil.which("valgrind") is None:
        print("\ninstructions: valgrind is not installed; skipped")
        return {"skipped": "valgrind is not installed"}
    gem_py, _ = gem_python()
    sides = [("rlvr", sys.executable, "rlvr", None)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rlvr-before-") as tmp:
        if before is not None:
            sides.append((f"rlvr @ {before}", sys.executable, "rlvr", extract_revision(before, Path(tmp))))
        if gem_py is not None:
            sides.append(("gem", gem_py, "gem", None))

        def count(python: Any, side: str, scenario: str, n: int, path: Path | None) -> tuple[int, dict]:
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            if path is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(path), *filter(None, [env.get("PYTHONPATH")])])
            proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(python),
                                   str(LOOP), side, "count", scenario, str(n)], capture_output=True, text=True,
                                  env=env, cwd=HERE)
            found = re.search(r"Collected : (\d+)", proc.stderr)
            if proc.returncode != 0 or found is None:
                raise SystemExit(f"valgrind run of {side} {scenario} failed (exit {proc.returncode}): {proc.stderr[-400:]}")
            return int(found.group(1)), json.loads(proc.stdout.strip().splitlines()[-1])

        for scenario in ("matched", "registered"):
            for label, python, side, path in sides:
                base, _ = count(python, side, scenario, 0, path)
                total, loop = count(python, side, scenario, episodes, path)
                rows.append({"scenario": scenario, "side": label, "steps": loop["steps"],
                             "instructions_per_step": (total - base) / loop["steps"]})
    gem_rows = {r["scenario"]: r["instructions_per_step"] for r in rows if r["side"] == "gem"}
    print(f"\nInstructions per step (valgrind, {episodes} episodes, resets included; load does not change them)")
    print(f"{'scenario':<11} {'side':<22} {'steps':>6} {'instr/step':>11} {'x GEM':>7}")
    for r in rows:
        if r["scenario"] in gem_rows:
            r["ratio_to_gem"] = r["instructions_per_step"] / gem_rows[r["scenario"]]
        ratio = f"{r['ratio_to_gem']:7.2f}" if "ratio_to_gem" in r else f"{'-':>7}"
        print(f"{r['scenario']:<11} {r['side']:<22} {r['steps']:6d} {r['instructions_per_step']:11.0f} {ratio}")
    return {"episodes": episodes, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds: under a minute once the GEM venv exists")
    ap.add_argument("--before", metavar="REF", help="also time rlvr as of this git revision (e.g. HEAD~1)")
    ap.add_argument("--no-gem", action="store_true", help="skip the GEM comparison (table 1 only)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions per step of both loops under valgrind (minutes; not with --quick)")
    args = ap.parse_args()
    result = {**overhead_table(3 if args.quick else ROUNDS)}
    if not args.no_gem:
        result["gem_comparison"] = gem_table(5 if args.quick else 15, args.before)
    if args.instructions and not args.quick:
        result["instructions"] = instruction_table(args.before)
    out = HERE / "results" / "env_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
