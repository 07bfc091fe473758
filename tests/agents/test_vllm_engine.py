"""The vLLM paths against a fake engine that behaves like vLLM's default one (tests/agents/_fake_vllm.py):
an engine process reached through msgpack unless the agent builds it in-process."""

import copy
import os
import sys

import pytest
import torch

from _fake_vllm import FakeVLLM
from _trainer_helpers import answer_policy, smollm2_tokenizer, tiny_llama
from rlvr.agents.trainer.config import TrainConfig
from rlvr.errors import ConfigError


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


@pytest.fixture
def fake(monkeypatch):
    f = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", f.module)
    yield f
    f.close()


@pytest.fixture
def folder(tmp_path, tok):
    path = tmp_path / "tiny"
    answer_policy(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _config(tmp_path, **kw):
    base = dict(env="rlvr/GuessNumber-v0", env_kwargs={"low": 1, "high": 4, "max_turns": 3}, steps=2,
                tasks_per_step=2, group_size=4, max_new_tokens=24, output_dir=str(tmp_path / "run"), lr=1e-2,
                micro_batch_size=3, backend="vllm", plot=False)
    base.update(kw)
    return TrainConfig(**base)


def test_the_default_multiprocess_engine_refuses_functions(fake, folder):
    """What broke the weight sync: vLLM's engine process cannot receive a function through msgpack."""
    from rlvr.agents.vllm import VLLMAgent

    agent = VLLMAgent(str(folder), in_process=False)
    assert not fake.llms[0].in_process
    with pytest.raises(TypeError, match="is not serializable"):
        agent.llm.collective_rpc(lambda worker: None)
    with pytest.raises(ConfigError, match="in_process=True"):
        agent.load_weights([])
    conv = [{"role": "user", "content": "hi"}]
    assert agent.act_batch([conv], seeds=[1])[0].completion_ids  # generation itself crosses the process fine


def test_agent_builds_the_engine_in_process_and_syncs_weights(fake, folder, tok):
    from rlvr.agents.vllm import VLLMAgent

    before = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    agent = VLLMAgent(str(folder))
    assert fake.llms[0].in_process and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == before
    assert fake.llms[0].kwargs["dtype"] == "bfloat16" and fake.llms[0].kwargs["logprobs_mode"] == "processed_logprobs"
    model = tiny_llama(tok)
    agent.load_weights(model.named_parameters())
    assert fake.llms[0].state()["loaded"] == [[n for n, _ in model.named_parameters()]]


def test_a_prompt_over_the_context_is_an_overflow_not_an_engine_error(fake, folder):
    from rlvr.agents.vllm import VLLMAgent

    agent = VLLMAgent(str(folder), max_new_tokens=16, max_model_len=64)
    gens = agent.act_ids([list(range(5, 75)), list(range(5, 65)), list(range(5, 15))], seeds=[1, 2, 3])
    assert gens[0].finish_reason == "context_overflow" and gens[0].completion_ids == []
    assert gens[1].finish_reason != "context_overflow" and gens[2].completion_ids
    (_, _, max_tokens, _), = [c for c in fake.llms[0].state()["calls"] if c[0] == "generate"]
    assert max_tokens == [4, 16]  # clamped to what the context leaves, only the requests that fit


def test_vllm_row_seeds_fix_each_sample_whatever_the_batch(fake, folder):
    """A request's seed depends on the run seed and its own row seed only, and stays 32-bit for any run seed."""
    from rlvr.agents.vllm import VLLMAgent, request_seed

    agent = VLLMAgent(str(folder), seed=10**12)
    conv = [{"role": "user", "content": "hi"}]
    agent.act_batch([conv, conv, conv], seeds=[7, 8, 9])
    agent.act_batch([conv], seeds=[8])
    first, alone = [c[1] for c in fake.llms[0].state()["calls"] if c[0] == "generate"]
    assert alone == [first[1]] and len(set(first)) == 3 and all(0 <= s < 2**32 for s in first)
    assert request_seed([10**30, 5]) == request_seed([10**30, 5]) != request_seed([10**30, 6])
    with pytest.raises(ConfigError, match="1 seeds for 2 conversations; give one per row"):
        agent.act_batch([conv, conv], seeds=[1])


def test_top_p_below_one_is_refused_with_vllm(tmp_path, folder):
    with pytest.raises(ConfigError, match="needs top_p=1"):
        _config(tmp_path, model=str(folder), top_p=0.9)
    from rlvr.agents.trainer.backends import VLLMBackend

    with pytest.raises(ConfigError, match="needs top_p=1"):
        VLLMBackend(str(folder), max_new_tokens=8, temperature=1.0, top_p=0.9, gpu_memory_utilization=0.3,
                    max_context=512, seed=0)


def test_training_with_the_vllm_backend(tmp_path, fake, tok, monkeypatch):
    """train(model=obj): the engine loads that policy (not config.model); each update sleeps the engine,
    frees the gradients, wakes the weights, loads them, then wakes the KV cache; rollouts run outside
    the trainer's autocast; later turns are token-exact."""
    from rlvr.agents.vllm import VLLMAgent
    from rlvr.agents.trainer.trainer import train

    model = answer_policy(tok)
    grads_at_wake = []
    wake = VLLMAgent.wake_up

    def spy(self, tags=None):
        grads_at_wake.append(any(p.grad is not None for p in model.parameters()))
        return wake(self, tags)

    monkeypatch.setattr(VLLMAgent, "wake_up", spy)
    res = train(_config(tmp_path, precision="bf16", steps=2, tasks_per_step=1), model=model, tokenizer=tok)
    llm = fake.llms[0]
    assert llm.model == str(tmp_path / "run" / "vllm_policy")
    from transformers import AutoModelForCausalLM

    initial = dict(answer_policy(tok).named_parameters())  # what train() was given, before its updates
    reloaded = dict(AutoModelForCausalLM.from_pretrained(llm.model).named_parameters())
    assert set(reloaded) == set(initial) and all(torch.equal(reloaded[n], initial[n]) for n in initial)
    calls = llm.state()["calls"]
    gens = [c for c in calls if c[0] == "generate"]
    assert gens and not any(c[3] for c in gens)  # never under autocast
    assert all(len(set(c[1])) == len(c[1]) for c in gens)  # identical prompts get distinct samples
    updates = [c for c in calls if c[0] not in ("generate", "reset_prefix_cache")]
    assert updates == [["sleep", 1], ["wake_up", ["weights"]], ["load_weights", True], ["wake_up", ["kv_cache"]]] * 2
    assert grads_at_wake and not any(grads_at_wake)
    assert set(llm.state()["loaded"][0]) == {n for n, _ in model.named_parameters()}
    assert all(m["tokens/prompt_mismatch_turns"] == 0 for m in res.metrics)
    assert max(m["turns/mean"] for m in res.metrics) > 1


def test_lora_weight_sync_leaves_the_base_weights_untouched(tok):
    from peft import LoraConfig, get_peft_model

    from rlvr.agents.trainer.backends import policy_weights

    peft_model = get_peft_model(copy.deepcopy(tiny_llama(tok)), LoraConfig(r=2, target_modules="all-linear"))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    base = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" not in n}
    first = dict(policy_weights(peft_model))
    for _ in range(20):
        last = dict(policy_weights(peft_model))
    assert all(torch.equal(p, base[n]) for n, p in peft_model.named_parameters() if "lora_" not in n)
    assert all(torch.equal(first[n], last[n]) for n in first)
    merged = dict(copy.deepcopy(peft_model).merge_and_unload().named_parameters())
    assert set(first) == set(merged) and all(torch.allclose(first[n], merged[n], atol=1e-6) for n in merged)
