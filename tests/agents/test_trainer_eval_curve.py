"""The held-out learning curve: ``eval_every`` evaluates during training and logs ``eval/*``."""

import json

import pytest

from _trainer_helpers import answer_policy, smollm2_tokenizer
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.trainer import train
from rlvr.errors import ConfigError


def test_eval_every_logs_a_held_out_curve(tmp_path):
    tok = smollm2_tokenizer()
    config = TrainConfig(env="rlvr/GuessNumber-v0", env_kwargs={"low": 1, "high": 2, "max_turns": 2}, steps=3,
                         tasks_per_step=1, group_size=2, max_new_tokens=7, output_dir=str(tmp_path / "run"),
                         eval_episodes=2, eval_every=1, plot=False, save_trajectories=False)
    res = train(config, model=answer_policy(tok), tokenizer=tok)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # steps 1 and 2 get a periodic evaluation; after the last step the final evaluation is eval_after
    assert ["eval/success_rate" in r for r in rows] == [True, True, False]
    for r in rows[:2]:
        assert 0.0 <= r["eval/success_rate"] <= 1.0 and r["eval/mean_turns"] >= 1
    for n in (1, 2):
        lines = (tmp_path / "run" / f"eval_step{n}" / "trajectories.jsonl").read_text().splitlines()
        assert len(lines) == 2
    assert not (tmp_path / "run" / "eval_step3").exists() and res.eval_after is not None
    # the same held-out seeds every time: the first evaluation's tasks are the final one's
    first = [json.loads(x)["task_id"] for x in (tmp_path / "run" / "eval_step1" / "trajectories.jsonl").read_text().splitlines()]
    last = [json.loads(x)["task_id"] for x in (tmp_path / "run" / "eval_after" / "trajectories.jsonl").read_text().splitlines()]
    assert sorted(first) == sorted(last)


def test_eval_every_must_not_be_negative():
    with pytest.raises(ConfigError, match="eval_every"):
        TrainConfig(eval_every=-1)


def test_runs_of_different_seeds_clone_disjoint_demonstrations():
    from rlvr.agents.trainer.trainer import demonstration_seed

    spans = []
    for seed in range(4):
        cfg = TrainConfig(seed=seed, warmup_sft_episodes=16)
        first = demonstration_seed(cfg)
        spans.append(set(range(first, first + cfg.warmup_sft_episodes)))
    assert all(not (a & b) for i, a in enumerate(spans) for b in spans[i + 1:])


def test_runs_of_different_seeds_evaluate_on_disjoint_tasks():
    from rlvr.agents.trainer.trainer import EVAL_SEED_OFFSET, SFT_SEED_OFFSET, eval_seed

    spans = [set(range(eval_seed(c), eval_seed(c) + c.eval_episodes))
             for c in (TrainConfig(seed=seed, eval_episodes=8) for seed in range(4))]
    assert all(not (a & b) for i, a in enumerate(spans) for b in spans[i + 1:])
    assert min(spans[0]) == EVAL_SEED_OFFSET  # seed 0 keeps its held-out tasks
    assert max(spans[-1]) < SFT_SEED_OFFSET  # far from the demonstrations
