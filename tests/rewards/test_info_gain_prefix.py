"""The cached information-gain scorer's prefix pass fills the KV cache without building [B, L, V] logits."""

import pytest
import torch

from rlvr.rewards.info_gain import answer_logprobs_cached, answer_logprobs_naive

transformers = pytest.importorskip("transformers")


def test_prefix_pass_keeps_one_position_of_logits_and_the_values_hold():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(cfg).eval()
    logits_shapes = []
    model.register_forward_hook(lambda m, args, kwargs, out: logits_shapes.append(
        (kwargs.get("past_key_values") is None and kwargs.get("cache") is None, tuple(out.logits.shape))),
        with_kwargs=True)
    seqs = [list(range(3, 43)), list(range(5, 62))]
    bounds, answers = [[5, 17, 40], [10, 30]], [[1, 2, 3], [4, 5]]
    cached = answer_logprobs_cached(model, seqs, bounds, [7, 8], answers, batch_size=2)
    prefix = [shape for fresh, shape in logits_shapes if fresh]
    assert prefix == [(2, 1, 97)]  # the one pass without a cache: logits of its last position only
    naive = answer_logprobs_naive(model, seqs, bounds, [7, 8], answers)
    assert all(c == pytest.approx(n, abs=1e-4) for cr, nr in zip(cached, naive) for c, n in zip(cr, nr))
