"""TrainConfig: typed choices checked at construction, files, command-line flags, help texts."""

import dataclasses

import pytest

from rlvr.agents.trainer.config import Advantage, RewardScheme, TrainConfig, field_docs
from rlvr.errors import ConfigError


def test_defaults_and_enums():
    c = TrainConfig()
    assert c.advantage is Advantage.GRPO and c.reward is RewardScheme.ENV
    c = TrainConfig(advantage="igpo", reward="info_gain")
    assert c.advantage is Advantage.IGPO and c.reward is RewardScheme.INFO_GAIN
    assert c.effective_gamma == 1.0 and c.effective_std_kind == "population"
    assert TrainConfig(advantage="dual").effective_gamma == 0.9
    assert TrainConfig(advantage="dual", gamma=0.5).effective_gamma == 0.5
    assert TrainConfig(advantage="dr_grpo").effective_loss_aggregation == "seq-mean-token-sum-norm"
    assert TrainConfig().effective_std_kind == "unbiased"


@pytest.mark.parametrize("kwargs,match", [
    ({"advantage": "grpoo"}, r"advantage must be one of .* \(did you mean 'grpo'\?\)"),
    ({"reward": "gate"}, r"did you mean 'gated'"),
    ({"loss_aggregation": "token_mean"}, r"did you mean 'token-mean'"),
    ({"backend": "trt"}, r"backend must be one of \['hf', 'vllm'\]"),
    ({"group_size": 1}, r"group_size must be >= 2"),
    ({"temperature": 0.0}, r"temperature must be > 0"),
    ({"steps": "ten"}, r"steps must be int"),
    ({"lora": "maybe"}, r"lora must be true or false"),
    ({"env": "GuessNumber"}, r"env must be an id like"),
    ({"reward": "gated", "gate_priority": ["outcome", "format"], "gate_thresholds": [1.0]}, r"same length"),
    ({"env_kwargs": "{high: 3}"}, r"env_kwargs must be a JSON object"),
    ({"gamma": 1.5}, r"gamma must be in \[0, 1\]"),
])
def test_bad_values_fail_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_from_dict_rejects_unknown_keys_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown TrainConfig field 'group_sise' \(did you mean 'group_size'\?\)"):
        TrainConfig.from_dict({"group_sise": 4})


def test_yaml_and_toml_files(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("env: rlvr/GuessNumber-v0\nadvantage: gigpo\ngroup_size: 6\nenv_kwargs: {high: 20}\n"
                 "gate_thresholds: [0.5]\nlora: true\n")
    c = TrainConfig.from_file(y)
    assert (c.advantage, c.group_size, c.env_kwargs, c.gate_thresholds, c.lora) == (
        Advantage.GIGPO, 6, {"high": 20}, [0.5], True)
    t = tmp_path / "run.toml"
    t.write_text('advantage = "pure"\nsteps = 3\nreward_weights = { format = 0.5 }\n')
    c = TrainConfig.from_file(t, steps=7)
    assert (c.advantage, c.steps, c.reward_weights) == (Advantage.PURE, 7, {"format": 0.5})
    bad = tmp_path / "run.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        TrainConfig.from_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "missing.yaml")


def test_command_line_flags_are_generated_from_the_fields(tmp_path):
    c = TrainConfig.from_args(["rlvr/GuessNumber-v0", "--advantage", "dual", "--group-size", "8", "--steps", "3",
                               "--reward", "gated", "--gate-priority", "outcome,format", "--gate-thresholds",
                               "1,0", "--env-kwargs", '{"high": 16}', "--lora", "--gamma", "none"])
    assert (c.advantage, c.group_size, c.steps, c.reward, c.lora) == (Advantage.DUAL, 8, 3, RewardScheme.GATED, True)
    assert c.gate_priority == ["outcome", "format"] and c.gate_thresholds == [1.0, 0.0]
    assert c.env_kwargs == {"high": 16} and c.gamma is None
    y = tmp_path / "c.yaml"
    y.write_text("steps: 5\ngroup_size: 3\n")
    c = TrainConfig.from_args(["--config", str(y), "--steps", "9"])
    assert (c.steps, c.group_size) == (9, 3)  # flags win over the file
    flags = {a.dest for a in TrainConfig.argument_parser()._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= flags


def test_every_field_has_a_docstring_shown_in_help():
    docs = field_docs(TrainConfig)
    missing = [f.name for f in dataclasses.fields(TrainConfig) if not docs.get(f.name)]
    assert missing == []
    help_text = TrainConfig.argument_parser().format_help()
    assert "--group-size" in help_text and "Rollouts per task" in help_text
    assert "{grpo,dr_grpo,turn,dual,igpo,gigpo,pure,tempo}" in help_text


def test_to_dict_round_trips():
    c = TrainConfig(advantage="tempo", env_kwargs={"high": 5})
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("argv,message", [
    (["rlvr/GuesNumber-v0"], r"unknown environment id 'rlvr/GuesNumber-v0' \(did you mean 'rlvr/GuessNumber-v0'\?\)"),
    (["rlvr/GuessNumber-v0", "--env-kwargs", '{"hihg": 5}'],
     r"rlvr/GuessNumber-v0 got an unknown keyword argument 'hihg' \(did you mean 'high'\?\)"),
    (["rlvr/GuessNumber-v0", "--reward", "gated", "--gate-priority", "outcom"],
     r"gate_priority: unknown reward component 'outcom' \(did you mean 'outcome'\?\); rlvr/GuessNumber-v0 declares"),
    (["rlvr/GuessNumber-v0", "--outcome-components", "outcom"], r"outcome_components: unknown reward component"),
    (["rlvr/GuessNumber-v0", "--reward-weights", '{"progres": 2}'],
     r"reward_weights: unknown reward component 'progres' \(did you mean 'progress'\?\)"),
    (["rlvr/GuessNumber-v0", "--env-kwargs", '{"low": 5, "high": 2}'], r"need integers low < high"),
])
def test_rlvr_train_fails_fast_before_any_model_loads(argv, message, tmp_path, monkeypatch, capsys):
    """Through the real CLI entry: configuration errors exit 2 within 5 s and no model loading starts."""
    import re
    import time

    import rlvr.agents.models
    import rlvr.agents.trainer.trainer as trainer_mod
    from rlvr.cli import main

    def no_loading(*args, **kwargs):
        raise AssertionError("model loading started before the configuration was checked")

    monkeypatch.setattr(rlvr.agents.models, "load_model", no_loading)
    monkeypatch.setattr(trainer_mod, "_load_policy", no_loading)
    t0 = time.perf_counter()
    code = main(["train", *argv, "--output-dir", str(tmp_path / "run"), "--no-plot"])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert elapsed < 5.0, elapsed


def test_rlvr_train_binary_reports_a_bad_component_name_in_under_5_s(tmp_path):
    """A fresh interpreter, as a user runs it: the check does not wait for torch to import."""
    import subprocess
    import sys
    import time

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", "rlvr/GuessNumber-v0", "--outcome-components",
                           "outcome,evidence", "--output-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert "outcome_components: unknown reward component 'evidence'" in proc.stderr
    assert "rlvr/GuessNumber-v0 declares: format, tool_validity, progress, outcome" in proc.stderr
    assert elapsed < 5.0, elapsed
    assert not (tmp_path / "run").exists()  # nothing was started
