"""Training metrics to TensorBoard and W&B (offline) next to metrics.jsonl: ``rlvr train --report-to``."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types

import pytest
from _cli import rlvr_cli

from rlvr.agents.reporting import ReportingLog, check_report_to, destinations, with_reporters
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.records import MetricsLog
from rlvr.errors import ConfigError

HAS_TB = importlib.util.find_spec("tensorboard") is not None


@pytest.mark.slow  # trains a tiny model in a fresh process (~20 s idle, more on a busy machine)
@pytest.mark.skipif(not HAS_TB, reason="tensorboard is not installed (the train extra installs it)")
def test_rlvr_train_writes_tensorboard_scalars_equal_to_metrics_jsonl(tmp_path):
    from _trainer_helpers import answer_policy, smollm2_tokenizer
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tok = smollm2_tokenizer()
    answer_policy(tok).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    p = rlvr_cli("train", "rlvr/GuessNumber-v0", "--model", str(tmp_path / "tiny"), "--group-size", "2",
                 "--tasks-per-step", "1", "--steps", "2", "--max-new-tokens", "7", "--env-kwargs", '{"high": 2}',
                 "--output-dir", str(tmp_path / "run"), "--no-plot", "--report-to", "tensorboard", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert {"reward/mean", "success_rate", "loss/policy"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("reward/mean")
    assert [e.step for e in events] == [r["step"] for r in rows]
    assert [e.value for e in events] == pytest.approx([r["reward/mean"] for r in rows], rel=1e-6)


@pytest.mark.skipif(not HAS_TB, reason="tensorboard is not installed (the train extra installs it)")
def test_tensorboard_reporter_writes_each_numeric_field_at_its_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = with_reporters(MetricsLog(tmp_path / "metrics.jsonl"), "tensorboard", tmp_path)
    log.append({"step": 3, "reward/mean": 0.25, "flag": True, "episodes": 8})
    log.append({"step": 4, "reward/mean": 0.75, "episodes": 8})
    log.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["episodes", "reward/mean"]  # booleans and the step are not scalars
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(3, 0.25), (4, 0.75)]


def test_destinations_and_errors(monkeypatch):
    assert destinations("none") == []
    if HAS_TB:
        assert "tensorboard" in destinations("auto")
    with pytest.raises(ConfigError, match="report_to must be one of auto, tensorboard, wandb, none, got 'tb'"):
        check_report_to("tb")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # nothing installed
    assert destinations("auto") == []
    with pytest.raises(ConfigError, match=r"report_to='wandb' needs the 'wandb' package, which is not installed: "
                                          r"pip install wandb, or use --report-to auto / none"):
        TrainConfig(report_to="wandb")


def test_wandb_runs_offline_and_gets_every_row(tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        def log(self, data, step):
            calls.append(("log", data, step))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kw: calls.append(("init", kw)) or FakeRun()  # the test seam: no real W&B here
    monkeypatch.setitem(sys.modules, "wandb", fake)
    log = with_reporters(MetricsLog(tmp_path / "metrics.jsonl"), "wandb", tmp_path, {"lr": 0.1})
    assert isinstance(log, ReportingLog)
    log.append({"step": 0, "reward/mean": 0.5, "success_rate": 1.0, "note": "text", "inf": float("inf")})
    log.close()
    log.close()  # once only
    assert calls[0] == ("init", {"mode": "offline", "dir": str(tmp_path), "project": "rlvr", "config": {"lr": 0.1}})
    assert calls[1] == ("log", {"reward/mean": 0.5, "success_rate": 1.0}, 0) and calls[2:] == [("finish",)]
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["note"] == "text"  # metrics.jsonl keeps everything
    assert log.rows[0]["note"] == "text" and log.path == tmp_path / "metrics.jsonl"


def test_report_to_none_keeps_the_plain_log(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    assert with_reporters(log, "none", tmp_path) is log
