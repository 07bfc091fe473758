"""``rlvr bench rewards --quick`` end to end, and ``--from`` re-scoring."""

from __future__ import annotations

import json

import pytest

from rlvr.cli import main
from rlvr.errors import ConfigError


def test_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "rewards", "ToolCall-v0", "--quick", "--quiet", "--tasks", "chain", "--seeds", "0",
                 "--schemes", "grpo", "igpo", "matchtir-hungarian", "matchtir-unmatched", "dra", "pure",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Claims:" in text and "information gain lowers" in text
    results = json.loads((out / "results.json").read_text())
    assert {r["scheme"] for r in results["credit"]["rows"]} == {"grpo", "igpo", "pure", "dra"}  # MatchTIR: tool calls
    spam = [r for r in results["exploits"]["rows"] if r["agent"] == "spam" and r["scheme"] == "matchtir-unmatched"]
    assert spam and spam[0]["margin"] > 0
    status = {c["claim"].split()[0]: c["status"] for c in results["claims"]}
    assert status["Hungarian"] == "checked" and status["gating"] == "not measured"
    assert status["min-form"] == "checked"  # the step splitter gains under D-RA, not under PURE
    assert status["a"] == "not measured"  # IG inflation: no DeepSearch, no language model under --quick
    for name in ("report.md", "credit.csv", "exploits.csv"):
        assert (out / name).stat().st_size > 0


def test_from_rescores_a_trajectories_file(tmp_path, capsys):
    from rlvr.agents.base import OracleAgent
    from rlvr.agents.rollout import rollout

    rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=2, seeds=[5, 5], out=tmp_path)
    out = tmp_path / "re"
    assert main(["bench", "rewards", "--from", str(tmp_path / "trajectories.jsonl"), "--schemes", "grpo", "igpo",
                 "--no-dapo", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["offline"]
    by = {r["scheme"]: r for r in rows}
    assert by["grpo"]["zero_adv_frac"] == 1.0  # the oracle always wins: outcome-only collapses
    assert by["grpo"]["J"] == 1.0 and by["grpo"]["groups"] == 1


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "rewards", "--from", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "rewards", "--schemes", "gpro", "--out", str(tmp_path)]) == 2
    assert "did you mean" in capsys.readouterr().err


@pytest.mark.slow
def test_the_quick_configuration_runs_in_under_a_minute(tmp_path):
    import time

    from tests._cli import rlvr_cli

    t0 = time.perf_counter()
    proc = rlvr_cli("bench", "rewards", "--quick", "--quiet", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "[checked]" in proc.stdout
    assert time.perf_counter() - t0 < 90  # under a minute on an idle machine; slack for a shared one
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["env"] for r in results["exploits"]["rows"]} >= {"rlvr/ToolCall-v0", "rlvr/DeepSearch-v0"}


def test_the_default_learning_plan_is_guess_number_and_deepsearch_is_asked_for_by_name(tmp_path):
    from rlvr.bench.cli import learning_plan
    from rlvr.cli import build_parser

    def plan(*flags):
        args = build_parser().parse_args(["bench", "rewards", "--learning", "--out", str(tmp_path), *flags])
        return learning_plan(args, tmp_path)

    runs = plan()
    assert {r.env for r in runs} == {"rlvr/GuessNumber-v0"}
    assert {(r.scheme, r.seed) for r in runs} == {(s, k) for s in ("outcome", "igpo") for k in (0, 1, 2)}
    both = plan("--learning-envs", "GuessNumber-v0", "DeepSearch-v0")
    assert {r.env for r in both} == {"rlvr/GuessNumber-v0", "rlvr/DeepSearch-v0"} and len(both) == 12
    assert plan("--learning-envs", "DeepSearch-v0", "--seeds", "4")[0].seed == 4
    assert learning_plan(build_parser().parse_args(["bench", "rewards", "--out", str(tmp_path)]), tmp_path) == []
    with pytest.raises(ConfigError, match="no learning configuration"):
        plan("--learning-envs", "ToolCall-v0")


def test_the_igpo_lm_model_is_the_embedded_one_unless_quick_or_none():
    import argparse

    from rlvr.bench.cli import add_parser, ig_model

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    parse = lambda *a: p.parse_args(["bench", "rewards", *a])  # noqa: E731
    assert ig_model(parse()) == "smollm2"
    assert ig_model(parse("--quick")) is None
    assert ig_model(parse("--quick", "--ig-model", "smollm2")) == "smollm2"
    assert ig_model(parse("--ig-model", "None")) is None


def test_the_ig_inflation_claim_reads_the_echo_rows():
    from rlvr.bench.report import check_claims

    def row(scheme, margin):
        return {"env": "rlvr/DeepSearch-v0", "agent": "echo_answer", "scheme": scheme, "margin": margin}

    claim = lambda rows: next(c for c in check_claims(None, {"rows": rows}) if "IG inflation" in c["claim"])  # noqa: E731
    assert claim([row("igpo-lm", 0.14), row("igpo", 0.0)])["status"] == "checked"
    assert claim([row("igpo-lm", 0.0), row("igpo", 0.0)])["status"] == "not reproduced"
    assert claim([row("igpo", 0.0)])["status"] == "not measured"
