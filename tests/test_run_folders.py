"""Honest run folders and pass@k through ``python -m rlvr run``: one run per folder, --overwrite / --resume,
``config.json``, a summary computed from the file, a fresh default folder, ``--samples K``."""

from __future__ import annotations

import json
import math

import pytest
from _cli import rlvr_cli

from rlvr.agents.trajectory import read_trajectories
from rlvr.errors import ConfigError
from rlvr.runs import clear_run, missing_ranges, pass_at_k, prepare_run_dir, sample_metrics, task_seeds

FLAKY_AGENT = '''
import os

class Flaky:
    """Bisects; raises on its 12th call while the STOP file exists (a backend that goes down)."""

    calls = 0

    def bind(self, env):
        return Bound(env)

    def act(self, messages):
        raise AssertionError("bound per environment")


class Bound:
    def __init__(self, env):
        self.env = env

    def act(self, messages):
        Flaky.calls += 1
        if Flaky.calls == 12 and os.path.exists("STOP"):
            raise RuntimeError("backend went down")
        return self.env.unwrapped.oracle_action()
'''


def _lines(path):
    return path.read_text().splitlines()


def test_a_folder_holds_one_run_overwrite_starts_again(tmp_path):
    run = ["run", "rlvr/GuessNumber-v0", "--agent", "oracle", "--episodes", "3", "--quiet", "--out", "r"]
    p = rlvr_cli(*run, "-e", "high=20", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "r"
    config = json.loads((out / "config.json").read_text())
    assert config["env"] == "rlvr/GuessNumber-v0" and config["env_kwargs"] == {"high": 20}
    assert (config["agent"], config["seed"], config["episodes"], config["samples"], config["concurrency"]) == \
        ("oracle", 0, 3, 1, 8)
    assert config["package_version"] and config["format_version"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["computed_from"] == "trajectories.jsonl"

    p = rlvr_cli(*run, "-e", "high=20", cwd=tmp_path)  # the same command again: refused, nothing appended
    assert p.returncode == 2 and "already holds a run" in p.stderr and "--resume" in p.stderr
    assert len(_lines(out / "trajectories.jsonl")) == 3

    p = rlvr_cli(*run, "--episodes", "2", "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(_lines(out / "trajectories.jsonl")) == 2
    assert json.loads((out / "summary.json").read_text())["episodes"] == 2
    assert json.loads((out / "config.json").read_text())["env_kwargs"] == {}

    p = rlvr_cli(*run, "--overwrite", "--resume", cwd=tmp_path)
    assert p.returncode == 2 and "exclude each other" in p.stderr
    p = rlvr_cli(*run, "--overwrite", "--agent", "nosuch.module:Agent", cwd=tmp_path)  # cannot start: keeps the run
    assert p.returncode == 2 and len(_lines(out / "trajectories.jsonl")) == 2


def test_default_folder_is_new_for_every_run(tmp_path):
    args = ["run", "rlvr/GuessNumber-v0", "--episodes", "1", "--quiet"]
    first, second = rlvr_cli(*args, cwd=tmp_path), rlvr_cli(*args, cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("GuessNumber-v0-") for f in folders)
    assert all(len(_lines(f / "trajectories.jsonl")) == 1 for f in folders)
    assert not (tmp_path / "runs" / "latest").exists()


def test_resume_plays_only_the_missing_episodes_and_gives_the_uninterrupted_run(tmp_path):
    (tmp_path / "flaky.py").write_text(FLAKY_AGENT)
    (tmp_path / "STOP").write_text("")
    run = ["run", "rlvr/GuessNumber-v0", "--agent", "flaky:Flaky", "--episodes", "6", "--concurrency", "2",
           "--quiet", "-e", "high=20"]
    p = rlvr_cli(*run, "--out", "r", cwd=tmp_path)
    assert p.returncode == 1 and "--resume" in p.stderr
    out = tmp_path / "r"
    partial = json.loads((out / "summary.json").read_text())
    assert partial["interrupted"]["reason"] == "the agent failed" and 0 < partial["episodes"] < 6
    with open(out / "trajectories.jsonl", "a") as f:
        f.write('{"env_id": "rlvr/GuessN')  # and the writer died mid-line

    p = rlvr_cli(*run, "--out", "r", "--resume", "-e", "low=2", cwd=tmp_path)
    assert p.returncode == 2 and "not the run in" in p.stderr and "env_kwargs" in p.stderr

    (tmp_path / "STOP").unlink()
    p = rlvr_cli(*run, "--out", "r", "--resume", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"{partial['episodes']} episodes in the file, {6 - partial['episodes']} to play" in p.stdout
    resumed = sorted(read_trajectories(out / "trajectories.jsonl"), key=lambda t: t.reset_info["episode"])
    assert [t.reset_info["episode"] for t in resumed] == list(range(6))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 6 and "interrupted" not in summary
    assert summary["episodes_this_run"] == 6 - partial["episodes"]

    p = rlvr_cli(*run, "--out", "whole", cwd=tmp_path)  # the same run, never interrupted
    assert p.returncode == 0, p.stderr
    whole = sorted(read_trajectories(tmp_path / "whole" / "trajectories.jsonl"), key=lambda t: t.reset_info["episode"])
    assert [(t.seed, t.task_id, [x.action for x in t.turns]) for t in resumed] == \
        [(t.seed, t.task_id, [x.action for x in t.turns]) for t in whole]


def test_samples_report_pass_at_k_and_mean_at_k_with_intervals(tmp_path):
    p = rlvr_cli("run", "rlvr/GuessNumber-v0", "--agent", "random", "--episodes", "3", "--samples", "4", "--quiet",
                 "-e", "high=4", "--out", "s", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    trajs = list(read_trajectories(tmp_path / "s" / "trajectories.jsonl"))
    assert summary["episodes"] == 12 and sorted(t.seed for t in trajs) == [0] * 4 + [1] * 4 + [2] * 4
    assert len({t.repro.seed for t in trajs}) == 3
    metrics = summary["pass_at_k"]
    overall, per_task = metrics["overall"], metrics["per_task"]
    assert [r["seed"] for r in per_task] == [0, 1, 2] and all(r["samples"] == 4 for r in per_task)
    for r in per_task:
        assert r["pass@1"] == pytest.approx(r["successes"] / 4) and r["mean_success"] == pytest.approx(r["pass@1"])
        assert r["pass@4"] == (1.0 if r["successes"] else 0.0)
    assert overall["pass@1"] == pytest.approx(sum(r["pass@1"] for r in per_task) / 3)
    assert overall["mean@4"] == overall["mean_success"]
    for key in ("pass@1", "pass@2", "pass@4", "mean_reward"):
        lo, hi = overall[f"{key}_ci"]
        assert lo <= overall[key] <= hi
    assert "pass@2:" in p.stdout and "bootstrap" in p.stdout


def test_pass_at_k_estimator():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 0.5
    assert pass_at_k(5, 3, 3) == 1.0  # fewer failures than k: some success is certain
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(2, 1, 3)


def test_sample_metrics_leave_out_infrastructure_failures():
    from rlvr.agents.trajectory import Trajectory, Turn

    def traj(seed, success, infra=False):
        info = {"success": success, **({"infra_failure": {"where": "tool", "message": "down"}} if infra else {})}
        return Trajectory("e", f"t{seed}", seed, [], [Turn(0, "a", [], float(success), {}, terminated=True, info=info)])

    m = sample_metrics([traj(0, True), traj(0, False), traj(1, False), traj(1, False, infra=True)], 2)
    t0, t1 = m["per_task"]
    assert (t0["pass@2"], t0["pass@1"]) == (1.0, 0.5)
    assert t1["scored"] == 1 and t1["pass@2"] is None and t1["pass@1"] == 0.0
    assert m["overall"]["pass@2_tasks"] == 1 and m["overall"]["pass@1"] == 0.25


def test_run_dir_helpers(tmp_path):
    assert task_seeds(10, 2, 3) == [10, 10, 10, 11, 11, 11]
    assert missing_ranges({0, 1, 3, 6}, 8) == [(2, 3), (4, 6), (7, 8)]
    assert missing_ranges(range(4), 4) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        prepare_run_dir(tmp_path / "f", {})
    with pytest.raises(ConfigError, match="holds no run to resume"):
        prepare_run_dir(tmp_path / "empty", {}, resume=True)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    assert prepare_run_dir(tmp_path / "r", {}) == []  # files that are not a run's are no run
    (tmp_path / "r" / "trajectories.jsonl").write_text("")
    with pytest.raises(ConfigError, match="has no config.json"):
        prepare_run_dir(tmp_path / "r", {}, resume=True)
    prepare_run_dir(tmp_path / "r", {}, overwrite=True)
    assert (tmp_path / "r" / "trajectories.jsonl").exists()  # nothing removed before the new run can start
    clear_run(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["notes.txt"]  # only the run's files go
