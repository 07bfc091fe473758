"""The rlvr command line end to end."""

from __future__ import annotations

import json

from rlvr.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "rlvr/GuessNumber-v0" in out and "game" in out


def test_run_writes_table_and_files(tmp_path, capsys):
    assert main(["run", "rlvr/GuessNumber-v0", "--agent", "oracle", "--episodes", "3", "--out", str(tmp_path), "--quiet",
                 "-e", "high=50"]) == 0
    out = capsys.readouterr().out
    assert "success 100.0%" in out and "outcome" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["success_rate"] == 1.0
    lines = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["task_id"].startswith("guess-1-50-")


def test_run_reports_errors_cleanly(tmp_path, capsys):
    assert main(["run", "rlvr/GuessNumber-v0", "--agent", "gpt", "--out", str(tmp_path)]) == 2
    assert "unknown agent 'gpt'" in capsys.readouterr().err
    assert main(["run", "rlvr/GuessNumber-v0", "-e", "hihg=3", "--out", str(tmp_path), "--quiet"]) == 2
    assert "did you mean 'high'" in capsys.readouterr().err


def test_custom_agent_example_is_short_and_wins():
    import runpy
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "custom_agent.py"
    assert len(path.read_text().splitlines()) < 40
    agent = runpy.run_path(str(path))["BisectionAgent"]()
    from rlvr.agents.rollout import rollout, summarize

    assert summarize(rollout("rlvr/GuessNumber-v0", agent, episodes=4))["success_rate"] == 1.0
