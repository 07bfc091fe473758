"""Information gain: the KV-cached path equals the naive reference; gains and settings."""

import math

import pytest
import torch

from rlvr.errors import ConfigError
from rlvr.rewards.info_gain import (
    InformationGain,
    answer_logprobs_cached,
    answer_logprobs_naive,
    information_gain,
)

transformers = pytest.importorskip("transformers")


def _tiny(attn="sdpa"):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, attn_implementation=attn,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # sharpen the random model so answer probabilities differ across contexts
        model.lm_head.weight.mul_(40.0)
    return model


@pytest.fixture(scope="module")
def tiny_model():
    return _tiny()


def _data():
    g = torch.Generator().manual_seed(3)
    seqs = [torch.randint(0, 97, (n,), generator=g).tolist() for n in (40, 57, 23, 31)]
    bounds = [[5, 17, 40], [10, 30], [3, 11, 19, 23], [31]]
    answers = [[1, 2, 3], [4, 5], [9], [6, 7, 8, 9]]
    return seqs, bounds, answers


@pytest.mark.parametrize("prefix", [[7, 8], []])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_cached_equals_naive(tiny_model, prefix, batch_size):
    seqs, bounds, answers = _data()
    naive = answer_logprobs_naive(tiny_model, seqs, bounds, prefix, answers)
    cached = answer_logprobs_cached(tiny_model, seqs, bounds, prefix, answers, batch_size=batch_size)
    assert [len(r) for r in cached] == [len(b) for b in bounds]
    for a, b in zip(naive, cached):
        assert b == pytest.approx(a, abs=1e-4)
    spread = max(v for r in naive for v in r) - min(v for r in naive for v in r)
    assert spread > 0.1  # the values genuinely depend on the context, so equality is meaningful


@pytest.mark.parametrize("attn,mode", [("eager", "auto"), ("sdpa", "loop"), ("eager", "loop")])
def test_cached_probe_modes_and_attention_implementations(attn, mode):
    model = _tiny(attn)
    seqs, bounds, answers = _data()
    naive = answer_logprobs_naive(model, seqs, bounds, [7, 8], answers)
    cached = answer_logprobs_cached(model, seqs, bounds, [7, 8], answers, batch_size=3, probe_mode=mode)
    for a, b in zip(naive, cached):
        assert b == pytest.approx(a, abs=1e-4)
    with pytest.raises(ConfigError, match="probe_mode"):
        answer_logprobs_cached(model, seqs, bounds, [7, 8], answers, probe_mode="fast")


def test_naive_matches_a_manual_forward(tiny_model):
    seq, prefix, ans = list(range(10, 30)), [5], [40, 41]
    (row,) = answer_logprobs_naive(tiny_model, [seq], [[12]], prefix, [ans])
    ids = torch.tensor([seq[:12] + prefix + ans])
    logp = torch.log_softmax(tiny_model(ids).logits[0], -1)
    manual = (logp[12, 40] + logp[13, 41]).item() / 2  # positions 12 and 13 predict the answer tokens
    assert row[0] == pytest.approx(manual, abs=1e-5)


def test_information_gain_variants():
    lps = [math.log(0.1), math.log(0.4), math.log(0.2)]
    assert information_gain(lps, "prob_diff") == pytest.approx([0.3, -0.2])
    assert information_gain(lps, "log_prob_diff") == pytest.approx([math.log(4), math.log(0.5)])
    assert information_gain([0.0]) == []
    with pytest.raises(ConfigError, match="prob_diff"):
        information_gain(lps, "ratio")


def test_input_validation(tiny_model):
    with pytest.raises(ConfigError, match="boundary 50"):
        answer_logprobs_cached(tiny_model, [[1, 2, 3]], [[50]], [], [[1]])
    with pytest.raises(ConfigError, match="no tokens"):
        answer_logprobs_naive(tiny_model, [[1, 2, 3]], [[2]], [], [[]])
    with pytest.raises(ConfigError, match="one of each"):
        answer_logprobs_naive(tiny_model, [[1, 2, 3]], [], [], [[1]])


class _CharTokenizer:
    """Maps characters to ids (enough for InformationGain's tokenisation)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 97 for c in text]}


def test_information_gain_reward_end_to_end(tiny_model):
    seqs, bounds, _ = _data()
    ig = InformationGain(answer_prefix="<a>", variant="prob_diff")
    gains = ig(tiny_model, _CharTokenizer(), seqs, bounds, ["42", ["7", "alias"], "x", "abc"])
    assert [len(g) for g in gains] == [2, 1, 3, 0]
    naive = InformationGain(answer_prefix="<a>", method="naive")(
        tiny_model, _CharTokenizer(), seqs, bounds, ["42", ["7", "alias"], "x", "abc"])
    for a, b in zip(gains, naive):
        assert a == pytest.approx(b, abs=1e-4)
    assert tiny_model.training is False
    with pytest.raises(ConfigError, match="ground-truth answer"):
        ig(tiny_model, _CharTokenizer(), seqs[:1], bounds[:1], [""])
    with pytest.raises(ConfigError, match="variant"):
        InformationGain(variant="diff")
