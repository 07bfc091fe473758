"""The trainer learns at all: SmolLM2-135M on a one-turn bandit, on CPU, in a few GRPO steps.

The bandit pays 1 for a reply that contains one word ("fruit", to "Name one fruit. Reply with a single word.")
and 0 otherwise. The base model's sampled replies contain it some of the time (5 of 8 in the first group), so
groups mix wins and losses, and a few updates must make it the reply of every rollout.
A trainer whose advantages, log-probs or update were broken (signs, masks, ratios) would not move it.
"""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch

from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.trainer import train
from rlvr.envs.core import AgentEnv, TurnOutcome

BANDIT_ID = "rlvr-test/WordBandit-v0"
STEPS = 4
PROMPT = "Name one fruit. Reply with a single word."


class WordBandit(AgentEnv):
    """One turn: ``outcome`` 1 when the reply contains ``word`` (any case), else 0."""

    reward_components = ("format", "tool_validity", "outcome")

    def __init__(self, word: str = "fruit", **kwargs):
        super().__init__(max_turns=1, **kwargs)
        self.word = word

    def _reset_task(self, options):
        return [{"role": "user", "content": PROMPT}], {"task_id": f"bandit-{self.word}"}

    def _score(self, text: str) -> TurnOutcome:
        won = self.word in text.lower()
        return TurnOutcome([], {"outcome": float(won)}, terminated=True, info={"success": won})

    def _on_no_call(self, text):
        return self._score(text)

    def _on_answer(self, answer):
        return self._score(answer)


@pytest.fixture(scope="module")
def smollm2():
    from rlvr.agents.models import load_model

    return load_model("smollm2", device="cpu", dtype=torch.float32)


def test_grpo_teaches_smollm2_a_one_turn_bandit(tmp_path, smollm2):
    if BANDIT_ID not in gym.registry:
        gym.register(BANDIT_ID, entry_point=WordBandit)
    model, tokenizer = smollm2
    config = TrainConfig(env=BANDIT_ID, steps=STEPS, tasks_per_step=1, group_size=8, max_new_tokens=8, lr=5e-5,
                         temperature=1.0, eval_episodes=0, save_final=False, plot=False, report_to="none",
                         output_dir=str(tmp_path / "run"), device="cpu", seed=0)
    train(config, model=model, tokenizer=tokenizer)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    success = [r["success_rate"] for r in rows]
    assert len(success) == STEPS
    assert 0 < success[0] < 1, success  # the base policy says it in some replies: groups mix wins and losses
    # three updates make it the reply of every rollout (seed 0: 0.625 -> 1.0, 0.75, 1.0); a trainer that did not
    # learn would stay near its base rate (8 of 8 at a rate of 0.625 happens 2% of the time)
    assert success[-1] == 1.0 and sum(success[1:]) / (STEPS - 1) >= success[0] + 0.2, success

