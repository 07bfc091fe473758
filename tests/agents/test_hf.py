"""The embedded SmolLM2 model and HFAgent on CPU: loading, token-exact generations, log-probs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rlvr.agents.hf import HFAgent  # noqa: E402
from rlvr.agents.models import EMBEDDED, locate_embedded, resolve_model_path  # noqa: E402
from rlvr.agents.rollout import rollout  # noqa: E402
from rlvr.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def agent():
    return HFAgent("smollm2", temperature=0.0, max_new_tokens=24, device="cpu")


def test_embedded_gguf_is_found_and_verified():
    path = locate_embedded("smollm2")
    assert path.name == EMBEDDED["smollm2"].filename
    assert resolve_model_path("some/hub-id") == "some/hub-id"


def test_greedy_generation_is_token_exact(agent):
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    g1, g2 = agent.act_batch([msgs, [{"role": "user", "content": "Say hello."}]])
    assert "Paris" in g1.text
    assert g1.prompt_ids == agent.encode(msgs)
    assert len(g1.completion_ids) == len(g1.logprobs) > 0
    assert all(lp <= 0 for lp in g1.logprobs)
    assert agent.tokenizer.decode(g1.completion_ids, skip_special_tokens=True) == g1.text
    assert g1.finish_reason in ("stop", "length")
    if g1.finish_reason == "stop":
        assert g1.completion_ids[-1] in agent.eos_ids
    # batching (left padding) does not change a greedy generation
    (alone,) = agent.act_batch([msgs])
    assert alone.completion_ids == g1.completion_ids


def test_logprobs_match_a_forward_pass(agent):
    msgs = [{"role": "user", "content": "Count: one, two,"}]
    (g,) = agent.act_batch([msgs])
    ids = torch.tensor([g.prompt_ids + g.completion_ids])
    with torch.no_grad():
        logits = agent.model(ids).logits[0, len(g.prompt_ids) - 1 : -1].float()
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(g.completion_ids)[:, None])[:, 0]
    assert torch.allclose(ref, torch.tensor(g.logprobs), atol=1e-3)


def test_sampling_is_seeded():
    a = HFAgent("smollm2", temperature=1.0, max_new_tokens=8, seed=5, device="cpu")
    msgs = [{"role": "user", "content": "Tell me a word."}]
    first = a.act_batch([msgs])[0].completion_ids
    a2 = HFAgent(a.model, a.tokenizer, temperature=1.0, max_new_tokens=8, seed=5)
    assert a2.act_batch([msgs])[0].completion_ids == first
    with pytest.raises(ConfigError, match="temperature"):
        HFAgent(a.model, a.tokenizer, temperature=-1)


def test_smollm2_rollout_end_to_end(agent, tmp_path):
    trajs = rollout("rlvr/GuessNumber-v0", agent, episodes=2, concurrency=2, out=tmp_path, env_kwargs={"max_turns": 2})
    assert len(trajs) == 2
    for t in trajs:
        assert t.repro.model_id == "smollm2" and t.repro.chat_template_hash
        for turn in t.turns:
            assert turn.completion_ids and len(turn.logprobs) == len(turn.completion_ids)
    assert (tmp_path / "trajectories.jsonl").read_text().count("\n") == 2
