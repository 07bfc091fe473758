"""The learning harness: its plan parses as ``rlvr train`` configurations, and runs are read back right.

The runs themselves load a model (minutes each on CPU); here a runner seam writes what ``rlvr train`` writes.
"""

from __future__ import annotations

import json

import pytest

from rlvr.agents.trainer.config import Advantage, RewardScheme, TrainConfig
# imported here, not in the runner: parallel runs call it from threads (CPython 3.11 < 3.11.8 can fail
# compiling modules in several threads at once)
from rlvr.agents.trajectory import Trajectory, TrajectoryWriter, Turn
from rlvr.bench.learning import LEARNING_ENVS, collect_learning, learned, plan_learning, run_learning
from rlvr.bench.report import check_claims
from rlvr.errors import ConfigError


def test_plan_parses_as_train_configs(tmp_path):
    runs = plan_learning(tmp_path, ["outcome", "grpo", "igpo", "gra"], [0, 1], steps=3)
    assert len(runs) == 2 * 4 * 2
    cfg = {r.scheme: TrainConfig.from_args(list(r.args)) for r in runs if r.env == "rlvr/GuessNumber-v0"}
    assert cfg["igpo"].reward == RewardScheme.INFO_GAIN and cfg["igpo"].advantage == Advantage.IGPO
    assert cfg["gra"].reward == RewardScheme.GATED
    assert cfg["grpo"].env_kwargs == {"low": 1, "high": 4} and cfg["grpo"].steps == 3
    # outcome-only: every non-outcome component weighs 0; IGPO adds the information gain to that, nothing else
    assert cfg["outcome"].reward_weights == {"format": 0.0, "tool_validity": 0.0, "progress": 0.0}
    assert cfg["igpo"].reward_weights == cfg["outcome"].reward_weights and cfg["grpo"].reward_weights == {}
    # every scheme of a seed starts from the same warm start and is evaluated on the same held-out episodes
    assert len({(c.warmup_sft_steps, c.warmup_sft_lr, c.seed, c.eval_episodes, c.eval_every) for c in cfg.values()}) == 1
    assert cfg["grpo"].warmup_sft_steps == 6 and cfg["grpo"].warmup_sft_episodes == 16
    assert cfg["grpo"].eval_every == 2 and not cfg["grpo"].eval_base  # the warm start is the baseline
    ds = [TrainConfig.from_args(list(r.args)) for r in runs if r.env == "rlvr/DeepSearch-v0" and r.scheme == "outcome"]
    assert ds[0].env_kwargs["hops"] == 1 and ds[0].reward_weights["evidence"] == 0.0 and ds[0].steps == 3
    assert ds[0].group_size == 4 and cfg["grpo"].group_size == 8
    assert (ds[0].warmup_sft_steps, ds[0].warmup_sft_episodes) == (8, 24)  # its start in the 30-70% band
    assert "outcome" not in ds[0].reward_weights
    with pytest.raises(ConfigError, match="no learning configuration"):
        plan_learning(tmp_path, ["carr"], [0])
    # the first scheme's run of each (env, seed) trains the warm start; the others load it
    # (DeepSearch: every seed loads the first seed's)
    by = {(r.env, r.scheme, r.seed): r for r in runs}
    for (env, scheme, seed), r in by.items():
        shared = env == "rlvr/DeepSearch-v0" and scheme == "outcome" and seed != 0
        owner = by[(env, "outcome", 0 if shared else seed)]
        assert r.warm_start == (None if scheme == "outcome" and not shared else owner.out)
        assert TrainConfig.from_args(list(r.args)).warm_start_from == (None if r.warm_start is None else str(owner.out))
    assert ds[0].warmup_sft_lr == 5e-5 and cfg["grpo"].warmup_sft_lr == 3e-5
    assert not any(c.save_final for c in cfg.values())  # read through metrics and evaluations: no final checkpoint
    # DeepSearch's long episodes recompute activations in the backward pass; GuessNumber's keep them (faster)
    assert ds[0].gradient_checkpointing and not any(c.gradient_checkpointing for c in cfg.values())


def test_learned_reads_the_gain_interval():
    assert learned(0.25, [0.1, 0.4]) == "yes"
    assert learned(0.25, [-0.1, 0.6]) == "unclear" and learned(0.25, None) == "unclear"
    assert learned(0.0, [-0.1, 0.1]) == "no" and learned(-0.2, None) == "no" and learned(None, None) == "-"


def _fake_runner(run):
    """Writes what a finished run leaves: metrics.jsonl and held-out trajectories after the warm start, at the
    periodic evaluations and after RL."""
    run.out.mkdir(parents=True)
    zero = 0.75 if run.scheme == "outcome" else 0.25
    (run.out / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i, "success_rate": 0.25 * (i + 1), "adv/zero_group_frac": zero}) + "\n" for i in range(3)))
    for folder, wins in (("eval_warmup", [1, 0, 0, 0]), ("eval_step2", [1, 1, 0, 0]),
                         ("eval_after", [1, 1, 0, 0] if run.seed else [1, 1, 1, 0])):
        (run.out / folder).mkdir()
        with TrajectoryWriter(run.out / folder / "trajectories.jsonl") as w:
            for k, won in enumerate(wins):
                w.write(Trajectory(run.env, f"t{k}", k, [], [Turn(0, "a", [], float(won), {"outcome": float(won)},
                                                                   terminated=True, info={"success": bool(won)})]))


def test_runs_are_collected_into_rows_curves_and_the_claim(tmp_path):
    runs = plan_learning(tmp_path, ["outcome", "igpo"], [0, 1], envs=["rlvr/GuessNumber-v0"], steps=3)
    seen = []
    run_learning(runs, runner=_fake_runner, progress=seen.append)
    assert len(seen) == 4
    out = collect_learning(runs)
    rows = {r["scheme"]: r for r in out["rows"]}
    assert rows["outcome"]["held_out_warm"] == 0.25
    assert rows["outcome"]["held_out_after"] == pytest.approx(0.625)  # seeds: 3/4 and 2/4
    assert rows["outcome"]["gain"] == pytest.approx(0.375) and rows["outcome"]["learned"] == "unclear"
    assert rows["outcome"]["train_success"] == 0.5  # steps 0.25, 0.5, 0.75
    assert rows["outcome"]["train_success_start"] == 0.25 and rows["outcome"]["train_success_start_ci"] == [0.25, 0.25]
    curve = out["curves"]["rlvr/GuessNumber-v0/igpo"]
    assert curve["zero_adv"][0][0] == 0.25
    # held-out curve: the warm start (step 0), no evaluation at step 1, step 2, the final evaluation (step 3)
    assert [m for m, _ in curve["held_out"]] == [0.25, None, 0.5, pytest.approx(0.625)]
    claim = next(c for c in check_claims(None, None, out) if c["claim"].startswith("with a language model"))
    assert claim["status"] == "checked" and "outcome 0.750 vs IGPO 0.250" in claim["numbers"]
    # a finished run is not run again (an interrupted benchmark resumes where it stopped)
    run_learning(runs, runner=lambda run: pytest.fail(f"{run.out} ran twice"))


def test_learning_plot_and_table(tmp_path):
    from rlvr.bench.report import write_outputs

    runs = plan_learning(tmp_path, ["outcome", "igpo"], [0, 1], envs=["rlvr/GuessNumber-v0"], steps=3)
    run_learning(runs, runner=_fake_runner)
    results = write_outputs(tmp_path / "out", None, None, check_claims(None, None, collect_learning(runs)),
                            {"quick": True}, collect_learning(runs))
    assert "learning_curves.png" in results["plots"]
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 10_000
    md = (tmp_path / "out" / "report.md").read_text()
    header = next(line for line in md.splitlines() if "held_out_warm" in line)
    assert [c.strip() for c in header.strip("|").split("|")][:6] == ["env", "scheme", "held_out_warm",
                                                                     "held_out_after", "gain", "learned"]


def test_a_run_that_did_not_finish_is_a_clear_error(tmp_path):
    runs = plan_learning(tmp_path, ["grpo"], [0], envs=["rlvr/GuessNumber-v0"])
    with pytest.raises(ConfigError, match="did not finish"):
        collect_learning(runs)


def test_cli_learning_quick_plans_one_guessnumber_seed_per_scheme(tmp_path, monkeypatch, capsys):
    import rlvr.bench.learning as L
    from rlvr.cli import main

    planned = []

    def runner(run, threads=None):
        planned.append(TrainConfig.from_args(list(run.args)))
        _fake_runner(run)

    monkeypatch.setattr(L, "_subprocess_runner", runner)
    # one job: the runner parses configs, and CPython 3.11 < 3.11.8 can fail compiling in several threads at once
    assert main(["bench", "rewards", "none", "--tasks", "none", "--learning", "--quick", "--quiet",
                 "--learning-jobs", "1", "--out", str(tmp_path / "b")]) == 0
    assert [(c.env, c.seed, c.steps, c.group_size, c.warmup_sft_episodes) for c in planned] == [
        ("rlvr/GuessNumber-v0", 0, 1, 4, 4)] * 2
    assert {c.reward for c in planned} == {RewardScheme.ENV, RewardScheme.INFO_GAIN}
    assert "Learning with a language model" in (tmp_path / "b" / "report.md").read_text()
    meta = json.loads((tmp_path / "b" / "results.json").read_text())["meta"]["learning"]
    assert meta == {"seeds": [0], "envs": ["rlvr/GuessNumber-v0"], "schemes": ["outcome", "igpo"], "runs": 2, "lr": 2e-5}
    assert {c.lr for c in planned} == {2e-5} and {c.warmup_sft_lr for c in planned} == {3e-5}
    assert main(["bench", "rewards", "none", "--tasks", "none", "--learning", "--learning-schemes", "carr", "--quiet",
                 "--out", str(tmp_path / "c")]) == 2
    assert "unknown --learning-schemes ['carr']" in capsys.readouterr().err


def test_parallel_jobs_run_every_planned_run_once(tmp_path):
    runs = plan_learning(tmp_path, ["outcome", "igpo"], [0, 1, 2], envs=["rlvr/GuessNumber-v0"], steps=3)
    seen = []
    run_learning(runs, runner=_fake_runner, progress=seen.append, jobs=2)
    assert sorted(seen) == sorted(f"learning/{r.env}/{r.scheme}/seed{r.seed}" for r in runs)
    # every run that loads a warm start finishes after the run that trains it
    for seed in (0, 1, 2):
        assert seen.index(f"learning/rlvr/GuessNumber-v0/outcome/seed{seed}") < seen.index(
            f"learning/rlvr/GuessNumber-v0/igpo/seed{seed}")
    ds = plan_learning(tmp_path / "ds", ["outcome", "igpo"], [0, 1], envs=["rlvr/DeepSearch-v0"], steps=1)
    order, started = [], []

    def runner(run):
        assert run.warm_start is None or (run.warm_start / "eval_after").is_dir(), f"{run.out} started too early"
        started.append(run)
        _fake_runner(run)

    run_learning(ds, runner=runner, progress=order.append, jobs=2)
    # one warm start (seed 0's outcome run) first, then the runs loading it, then the runs loading theirs (igpo's
    # seed 0 and seed 1 may finish in either order: the second starts while the first can still be running)
    assert order[0].endswith("outcome/seed0") and sorted(order) == sorted(f"learning/{r.env}/{r.scheme}/seed{r.seed}" for r in ds)
    assert order.index("learning/rlvr/DeepSearch-v0/outcome/seed1") < order.index("learning/rlvr/DeepSearch-v0/igpo/seed1")
    assert len(collect_learning(runs)["rows"]) == 2
    with pytest.raises(ConfigError, match="jobs must be >= 1"):
        run_learning(runs, runner=_fake_runner, jobs=0)


def test_cli_learning_envs_select_and_unknown_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import rlvr.bench.learning as L
    from rlvr.cli import main

    planned = []
    monkeypatch.setattr(L, "_subprocess_runner", lambda run, threads=None: (planned.append(run), _fake_runner(run)))
    assert main(["bench", "rewards", "none", "--tasks", "none", "--learning", "--learning-envs", "GuessNumber-v0",
                 "--seeds", "0", "--learning-jobs", "1", "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert {(r.env, r.scheme) for r in planned} == {("rlvr/GuessNumber-v0", "outcome"), ("rlvr/GuessNumber-v0", "igpo")}
    assert main(["bench", "rewards", "none", "--tasks", "none", "--learning", "--learning-envs", "ToolCall-v0",
                 "--quiet", "--out", str(tmp_path / "c")]) == 2
    assert "no learning configuration for 'rlvr/ToolCall-v0'" in capsys.readouterr().err
    planned.clear()
    assert main(["bench", "rewards", "none", "--tasks", "none", "--learning", "--learning-envs", "GuessNumber-v0",
                 "--learning-lr", "2e-5", "--seeds", "0", "--learning-jobs", "1", "--quiet", "--out", str(tmp_path / "d")]) == 0
    assert {TrainConfig.from_args(list(r.args)).lr for r in planned} == {2e-5}
    assert json.loads((tmp_path / "d" / "results.json").read_text())["meta"]["learning"]["lr"] == 2e-5
    assert main(["bench", "rewards", "none", "--tasks", "none", "--learning", "--learning-lr", "0", "--quiet",
                 "--out", str(tmp_path / "e")]) == 2
    assert "--learning-lr must be a positive learning rate, got 0.0" in capsys.readouterr().err


@pytest.mark.parametrize("env_id", ["rlvr/GuessNumber-v0", "rlvr/DeepSearch-v0"])
def test_learning_difficulty_is_solvable_by_the_oracle(env_id):
    """The warm start clones the oracle's episodes: at the benchmark's difficulty the oracle must solve every
    task (DeepSearch's short pages and snippets included)."""
    from rlvr.agents.base import OracleAgent
    from rlvr.agents.rollout import is_success, rollout

    trajs = rollout(env_id, OracleAgent(), episodes=8, seeds=list(range(100, 108)), seed=100, concurrency=1,
                    env_kwargs=LEARNING_ENVS[env_id].kwargs)
    assert [is_success(t) for t in trajs] == [True] * 8


def test_deepsearch_learning_questions_use_one_wording_per_relation():
    """paraphrase=1: every question of a relation is asked the same way (the warm policy learns one mapping
    from question to sentence per relation; with three wordings it named the wrong fact)."""
    import gymnasium as gym

    import rlvr  # noqa: F401

    env = gym.make("rlvr/DeepSearch-v0", **LEARNING_ENVS["rlvr/DeepSearch-v0"].kwargs)
    wordings: dict[str, set[str]] = {}
    for task in env.unwrapped.tasks[:60]:
        relation = task.meta["relations"][0]
        if relation != "created_by":  # its role word names the work's kind: painter, director, ...
            wordings.setdefault(relation, set()).add(task.question.replace(task.meta["start"], "X"))
    assert len(wordings) >= 4
    assert all(len(w) == 1 for w in wordings.values()), wordings
