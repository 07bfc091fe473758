"""Real TRL GRPOTrainer steps on rlvr environments: TRL's own tool loop calls the generated methods, and
its reward functions log every rlvr component."""

from __future__ import annotations

import math
import os

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from rlvr.agents.models import load_model, resolve_model_path  # noqa: E402
from rlvr.integrations.trl import dataset, environment_factory, prepare_tokenizer, reward_funcs  # noqa: E402

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

GUESS = '<tool_call>\n{"name": "guess", "arguments": {"number": 50}}\n</tool_call>'
UNKNOWN = '<tool_call>\n{"name": "peek", "arguments": {}}\n</tool_call>'


def _config(tmp_path, rewards, **kw) -> GRPOConfig:
    base = dict(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=4,
                max_completion_length=48, max_tool_calling_iterations=2, reward_weights=rewards.weights,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False,
                gradient_checkpointing=False, seed=0)
    return GRPOConfig(**{**base, **kw})


class _FirstTurnScripted(GRPOTrainer):
    """Test seam: the opening turn of rollouts 0-2 is fixed text (two valid calls, one to an unknown tool);
    every other generation, the post-tool turns included, is the model's own."""

    script = [GUESS, GUESS, UNKNOWN, None]

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        ids, logprobs = super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                      has_tool_images)
        if num_generations == len(self.script):  # the opening turn (post-tool turns come one per sample)
            eos = self._tokenizer.eos_token_id
            for i, text in enumerate(self.script):
                if text is not None:
                    ids[i] = self._tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        return ids, logprobs


def _tiny():
    """SmolLM2's tokenizer with a tiny random Llama: TRL's loop at full speed on CPU."""
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model_path("smollm2")))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id))
    return model, tok


def test_info_gain_reward_is_the_gain_from_opening_to_end():
    from rlvr.rewards.info_gain import answer_logprobs_naive

    model, tok = _tiny()
    Env = environment_factory("rlvr/GuessNumber-v0")
    funcs = {f.__name__: f for f in reward_funcs(Env, scheme="info_gain", model=model, tokenizer=tok, ig_weight=0.5)}
    env = Env()
    env.reset(task_id="guess-1-100-70")
    env.guess(number=50)
    got = funcs["info_gain"](completions=[[{"role": "assistant", "content": "<answer>70</answer>"}]], environments=[env])
    msgs = env._episode.messages
    ids = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=False)
           for m in (msgs[:2], msgs)]
    lp = answer_logprobs_naive(model, ids, [[len(i)] for i in ids], tok("<answer>", add_special_tokens=False)["input_ids"],
                               [tok("70", add_special_tokens=False)["input_ids"]] * 2)
    assert got[0] == pytest.approx(math.exp(lp[1][0]) - math.exp(lp[0][0]), abs=1e-6)
    assert funcs["info_gain"].weight == 0.5 and funcs["total"].weight == 1.0


def test_one_grpo_step_runs_tools_through_trl(tmp_path):
    model, tok = _tiny()
    Env = environment_factory("rlvr/GuessNumber-v0")
    rewards = reward_funcs(Env)
    trainer = _FirstTurnScripted(model=model, reward_funcs=list(rewards), args=_config(tmp_path, rewards),
                                 processing_class=tok, train_dataset=dataset(Env, n=4), environment_factory=Env)
    trainer.train()
    logs = trainer.state.log_history[0]
    for name in rewards.names:
        assert f"rewards/{name}/mean" in logs
    assert logs["tools/call_frequency"] == pytest.approx(3 / 4)  # three scripted calls over four rollouts
    assert logs["tools/failure_frequency"] == pytest.approx(1 / 3)  # the unknown tool, raised for TRL
    assert logs["rewards/progress/mean"] > 0  # the guesses reached the rlvr env and its reward hooks
    assert math.isfinite(logs["loss"])
    pool = trainer._environment_pool[None]
    assert len(pool) == 4 and all(e._episode is not None for e in pool)
    played = sorted(len(e._episode.components) for e in pool)
    assert played[0] >= 1 and played[-1] >= 2  # call turns plus the final-message turn


@pytest.mark.slow
@pytest.mark.parametrize("env_id,kwargs", [("rlvr/GuessNumber-v0", {}), ("rlvr/DeepSearch-v0", {"n_tasks": 8})])
def test_smollm2_grpo_step(tmp_path, env_id, kwargs):
    model, tok = load_model("smollm2", device="cpu")
    tok = prepare_tokenizer(tok)
    Env = environment_factory(env_id, **kwargs)
    rewards = reward_funcs(Env)
    trainer = GRPOTrainer(model=model, reward_funcs=list(rewards), args=_config(tmp_path, rewards), processing_class=tok,
                          train_dataset=dataset(Env, n=4), environment_factory=Env)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "embed" not in n}
    trainer.train()
    logs = trainer.state.log_history[0]
    assert {f"rewards/{n}/mean" for n in rewards.names} <= set(logs)
    assert math.isfinite(logs["loss"]) and all(e._episode is not None for e in trainer._environment_pool[None])
    if logs["reward_std"] > 0:  # a group with different rewards moves the weights
        assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
