"""The learning harness: its plan parses as ``rlvr train`` configurations, and runs are read back right.

The runs themselves load a model (minutes each on CPU); here a runner seam writes what ``rlvr train`` writes.
"""

from __future__ import annotations

import json

import pytest

from rlvr.agents.trainer.config import Advantage, RewardScheme, TrainConfig
from rlvr.bench.learning import collect_learning, plan_learning, run_learning
from rlvr.bench.report import check_claims
from rlvr.errors import ConfigError


def test_plan_parses_as_train_configs(tmp_path):
    runs = plan_learning(tmp_path, ["grpo", "igpo", "gra"], [0, 1], steps=3)
    assert len(runs) == 2 * 3 * 2
    cfg = {r.scheme: TrainConfig.from_args(list(r.args)) for r in runs if r.env == "rlvr/GuessNumber-v0"}
    assert cfg["igpo"].reward == RewardScheme.INFO_GAIN and cfg["igpo"].advantage == Advantage.IGPO
    assert cfg["gra"].reward == RewardScheme.GATED
    assert cfg["grpo"].env_kwargs == {"low": 1, "high": 8} and cfg["grpo"].steps == 3
    assert cfg["grpo"].warmup_sft_steps == 2  # every scheme starts from the same warm start
    with pytest.raises(ConfigError, match="no learning configuration"):
        plan_learning(tmp_path, ["carr"], [0])


def _fake_runner(run):
    """Writes what a finished run leaves: metrics.jsonl and held-out trajectories after the warm start and RL."""
    from rlvr.agents.trajectory import Trajectory, TrajectoryWriter, Turn

    run.out.mkdir(parents=True)
    zero = 0.75 if run.scheme == "grpo" else 0.25
    (run.out / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i, "success_rate": 0.5, "adv/zero_group_frac": zero}) + "\n" for i in range(3)))
    for folder, wins in (("eval_warmup", [1, 0, 0, 0]), ("eval_after", [1, 1, 0, 0] if run.seed else [1, 1, 1, 0])):
        (run.out / folder).mkdir()
        with TrajectoryWriter(run.out / folder / "trajectories.jsonl") as w:
            for k, won in enumerate(wins):
                w.write(Trajectory(run.env, f"t{k}", k, [], [Turn(0, "a", [], float(won), {"outcome": float(won)},
                                                                   terminated=True, info={"success": bool(won)})]))


def test_runs_are_collected_into_rows_curves_and_the_claim(tmp_path):
    runs = plan_learning(tmp_path, ["grpo", "igpo"], [0, 1], envs=["rlvr/GuessNumber-v0"])
    seen = []
    run_learning(runs, runner=_fake_runner, progress=seen.append)
    assert len(seen) == 4
    out = collect_learning(runs)
    rows = {r["scheme"]: r for r in out["rows"]}
    assert rows["grpo"]["held_out_warm"] == 0.25
    assert rows["grpo"]["held_out_after"] == pytest.approx(0.625)  # seeds: 3/4 and 2/4
    assert rows["grpo"]["gain"] == pytest.approx(0.375)
    assert out["curves"]["rlvr/GuessNumber-v0/igpo"]["zero_adv"][0][0] == 0.25
    claim = next(c for c in check_claims(None, None, out) if c["claim"].startswith("with a language model"))
    assert claim["status"] == "checked" and "GRPO 0.750 vs IGPO 0.250" in claim["numbers"]


def test_a_run_that_did_not_finish_is_a_clear_error(tmp_path):
    runs = plan_learning(tmp_path, ["grpo"], [0], envs=["rlvr/GuessNumber-v0"])
    with pytest.raises(ConfigError, match="did not finish"):
        collect_learning(runs)
