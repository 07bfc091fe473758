"""The lean PPO update: bucketing, single reference pass, no needless recomputation, one host sync,
chunked log-softmax, the bf16-state optimiser and the memory accounting."""

import copy
import math
import types

import pytest
import torch

from _trainer_helpers import smollm2_tokenizer, tiny_llama
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.memory import SavedTensorMeter, model_memory, return_freed_memory, tensor_bytes
from rlvr.agents.trainer.optim import BF16StateAdamW, make_optimizer
from rlvr.agents.trainer.sequences import TokenSequence, collate, first_prediction
from rlvr.agents.trainer.update import (chunked_token_logprobs, micro_batches, needs_old_logprobs, padding_fraction,
                                        policy_logprobs, ppo_update, sequence_logprobs)
from rlvr.errors import ConfigError

CPU = torch.device("cpu")
ENV_KW = {"low": 1, "high": 2, "max_turns": 2}


def _cfg(**kw):
    base = dict(env="rlvr/GuessNumber-v0", env_kwargs=ENV_KW, micro_batch_size=2, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def _seq(ids, n_prompt, logps=None, mismatches=()):
    mask = [0] * n_prompt + [1] * (len(ids) - n_prompt)
    lp = logps if logps is not None else [0.0] * n_prompt + [-1.0] * (len(ids) - n_prompt)
    return TokenSequence(list(ids), mask, [1] * len(ids), lp, [(n_prompt, len(ids))], list(mismatches))


class TinyLM(torch.nn.Module):
    """A causal LM small enough to count every call: embedding, one causal mixing layer, tied head."""

    def __init__(self, vocab=32, hidden=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, hidden)
        self.mix = torch.nn.Linear(hidden, hidden)
        self.head = torch.nn.Linear(hidden, vocab, bias=False)
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, use_cache=False, logits_to_keep=0, **_):
        self.calls += 1
        h = self.emb(input_ids)
        h = torch.tanh(self.mix(h.cumsum(1) / torch.arange(1, h.shape[1] + 1)[None, :, None]))
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return types.SimpleNamespace(logits=self.head(h))


def _fill_exact(model, seqs):
    """Give the sequences their exact log-probs under ``model`` (as a rollout would)."""
    got = sequence_logprobs(model, seqs, range(len(seqs)), _cfg(), pad_id=0, device=CPU)
    for i, s in enumerate(seqs):
        s.old_logprobs = [float(v) if m else 0.0 for v, m in zip(got[i].tolist(), s.loss_mask)]


def _batch(lengths=(5, 12, 6, 11), seed=0):
    g = torch.Generator().manual_seed(seed)
    seqs = [_seq(torch.randint(1, 32, (n,), generator=g).tolist(), 3) for n in lengths]
    adv = [[(1.0 if k % 2 else -1.0) * m for m in s.loss_mask] for k, s in enumerate(seqs)]
    return seqs, adv


# --- pure functions ----------------------------------------------------------------------------------

def test_micro_batches_sort_by_length_and_cut_padding():
    lengths = [5, 12, 6, 11]
    assert micro_batches(lengths, [0, 1, 2, 3], 2, bucketing=False) == [[0, 1], [2, 3]]
    assert micro_batches(lengths, [3, 1, 2, 0], 2) == [[0, 2], [3, 1]]
    assert micro_batches(lengths, [1, 0], 4) == [[0, 1]]
    # arrival order: (2*12 + 2*11) padded positions for 34 real ones; bucketed: (2*6 + 2*12) for 34
    assert padding_fraction(lengths, [[0, 1], [2, 3]]) == pytest.approx(1 - 34 / 46)
    assert padding_fraction(lengths, [[0, 2], [3, 1]]) == pytest.approx(1 - 34 / 36)
    assert padding_fraction(lengths, []) == 0.0
    with pytest.raises(ConfigError, match="micro-batch size must be >= 1"):
        micro_batches(lengths, [0], 0)


def test_needs_old_logprobs_only_where_the_rollout_ones_are_not_exact():
    assert not needs_old_logprobs(_seq([1, 2, 3, 4], 2))
    assert needs_old_logprobs(_seq([1, 2, 3, 4], 2, mismatches=[1]))
    assert needs_old_logprobs(_seq([1, 2, 3, 4], 2, logps=[0.0, 0.0, -1.0, math.nan]))
    assert not needs_old_logprobs(_seq([1, 2, 3, 4], 2, logps=[math.nan, 0.0, -1.0, -2.0]))  # not a policy token


def test_chunked_log_softmax_matches_whole_logits_values_and_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(2, 7, 8, requires_grad=True)
    head = torch.nn.Linear(8, 50, bias=False)
    targets = torch.randint(0, 50, (2, 7))
    whole = torch.log_softmax(head(hidden) / 0.7, -1).gather(-1, targets[..., None]).squeeze(-1)
    (g_whole,) = torch.autograd.grad(whole.sum(), hidden)
    logp, ent = chunked_token_logprobs(hidden, head, targets, temperature=0.7, chunk=3, entropy=True)
    (g_chunk,) = torch.autograd.grad(logp.sum(), hidden)
    assert torch.allclose(logp, whole, atol=1e-5) and torch.allclose(g_chunk, g_whole, atol=1e-5)
    p = torch.softmax(head(hidden) / 0.7, -1)
    assert torch.allclose(ent, -(p * p.log()).sum(-1), atol=1e-4) and not ent.requires_grad


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def test_policy_logprobs_chunked_equals_whole_on_a_llama(tok):
    model = tiny_llama(tok)
    seqs, _ = _batch()
    batch = collate(seqs, 0)
    start = first_prediction(seqs)
    whole, ent_whole, big = policy_logprobs(model, batch, start, temperature=0.8)
    chunked, ent_chunk, small = policy_logprobs(model, batch, start, temperature=0.8, chunk=4)
    assert torch.allclose(whole, chunked, atol=1e-5) and torch.allclose(ent_whole, ent_chunk, atol=1e-4)
    assert small < big  # one block of logits, not all of them
    assert whole.requires_grad and not ent_whole.requires_grad  # entropy without autograd by default
    _, ent_grad, _ = policy_logprobs(model, batch, start, temperature=0.8, entropy_grad=True)
    assert ent_grad.requires_grad


# --- the update --------------------------------------------------------------------------------------

def _count_calls(model):
    calls = []
    model.register_forward_hook(lambda m, a, k: calls.append(torch.is_grad_enabled()), with_kwargs=False)
    return calls


def test_no_reference_pass_without_kl_and_one_per_step_with_it():
    model = TinyLM()
    seqs, adv = _batch()
    _fill_exact(model, seqs)
    ref = copy.deepcopy(model)
    ref_calls, calls = _count_calls(ref), _count_calls(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ppo_update(model, opt, seqs, adv, _cfg(kl_coef=0.0, micro_batch_size=1), pad_id=0, device=CPU, ref_model=ref)
    assert ref_calls == [] and len(calls) == 4  # one grad forward per micro-batch, no recomputed old log-probs
    calls.clear()
    stats = ppo_update(model, opt, seqs, adv, _cfg(kl_coef=0.1, micro_batch_size=1, ppo_epochs=3), pad_id=0,
                       device=CPU, ref_model=ref)
    assert len(ref_calls) == 4 and not any(ref_calls)  # once per sequence, for all three epochs, without grad
    assert len(calls) == 12 and all(calls)
    assert stats["loss/kl"] > 0


def test_old_logprobs_recomputed_only_for_sequences_that_need_it():
    model = TinyLM()
    seqs, adv = _batch()
    _fill_exact(model, seqs)
    seqs[1].old_logprobs = [v - 3.0 if m else v for v, m in zip(seqs[1].old_logprobs, seqs[1].loss_mask)]
    seqs[1].prompt_mismatches = [1]  # its recorded log-probs are not conditioned on this sequence
    calls = _count_calls(model)
    stats = ppo_update(model, torch.optim.SGD(model.parameters(), lr=0.0), seqs, adv, _cfg(micro_batch_size=4),
                       pad_id=0, device=CPU)
    assert calls == [False, True]  # one no-grad pass for the stale sequence, then the update's
    assert stats["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-5)  # the wrong values were not used


def test_bucketing_keeps_the_gradient_and_cuts_the_padding():
    seqs, adv = _batch()
    deltas, pads = [], []
    for bucketing in (False, True):
        model = TinyLM()
        _fill_exact(model, seqs)
        before = [p.detach().clone() for p in model.parameters()]
        stats = ppo_update(model, torch.optim.SGD(model.parameters(), lr=1.0), seqs, adv,
                           _cfg(micro_batch_size=2, length_bucketing=bucketing, max_grad_norm=0.0), pad_id=0,
                           device=CPU, generator=torch.Generator().manual_seed(0))
        deltas.append([p.detach() - b for p, b in zip(model.parameters(), before)])
        pads.append(stats["perf/padding_frac"])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*deltas))
    assert pads[1] < pads[0]


def test_host_syncs_do_not_grow_with_the_micro_batches(monkeypatch):
    counts = {"n": 0}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, **k):
            counts["n"] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    seqs, adv = _batch(lengths=(5, 12, 6, 11, 7, 9, 8, 10))
    syncs = []
    for micro in (8, 1):
        model = TinyLM()
        counts["n"] = 0
        ppo_update(model, torch.optim.SGD(model.parameters(), lr=0.1), seqs, adv, _cfg(micro_batch_size=micro),
                   pad_id=0, device=CPU, generator=torch.Generator().manual_seed(0))
        syncs.append(counts["n"])
    assert syncs[0] == syncs[1] <= 2  # the permutation, the one statistics transfer


def test_gradients_are_freed_after_the_update_and_memory_is_reported():
    model = TinyLM()
    seqs, adv = _batch()
    _fill_exact(model, seqs)
    stats = ppo_update(model, torch.optim.AdamW(model.parameters()), seqs, adv, _cfg(), pad_id=0, device=CPU)
    assert all(p.grad is None for p in model.parameters())
    assert stats["mem/activations_mb"] > 0 and stats["mem/logits_mb"] > 0


# --- memory and optimiser ----------------------------------------------------------------------------

def test_model_memory_counts_tied_weights_once_and_a_separate_reference():
    model = TinyLM()
    model.head.weight = model.emb.weight  # tied: one storage
    n = 32 * 8 + 8 * 8 + 8
    assert sum(p.numel() for p in model.parameters()) == n
    opt = make_optimizer("adamw_bf16", model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    opt.step()
    mem = model_memory(model, opt, copy.deepcopy(model))
    assert mem["mem/weights_mb"] == pytest.approx(n * 4 / 2**20)
    assert mem["mem/grads_mb"] == pytest.approx(n * 4 / 2**20)
    assert mem["mem/optimizer_mb"] == pytest.approx(n * 2 * 2 / 2**20)  # two bf16 moments per weight
    assert mem["mem/reference_mb"] == pytest.approx(mem["mem/weights_mb"])
    assert model_memory(model, None, model)["mem/reference_mb"] == 0.0  # LoRA: the policy, adapters off
    t = torch.zeros(10)
    assert tensor_bytes([t, t[2:], t.view(2, 5)]) == 40 and tensor_bytes([t, torch.zeros(10)]) == 80


def test_saved_tensor_meter_sees_activations_not_parameters():
    lin = torch.nn.Linear(64, 64)
    x = torch.randn(32, 64, requires_grad=True)
    meter = SavedTensorMeter(lin.parameters())
    with meter:
        y = torch.relu(lin(x))  # saves x (input) and the relu output
    assert meter.last_bytes >= 2 * 32 * 64 * 4 and meter.last_bytes < 4 * 32 * 64 * 4
    with meter:
        with torch.no_grad():
            lin(x)
    assert meter.last_bytes == 0 and meter.peak_bytes > 0
    y.sum().backward()


def test_bf16_state_adamw_follows_torch_adamw():
    torch.manual_seed(0)
    a = torch.nn.Linear(16, 8)
    b = copy.deepcopy(a)
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.1)
    opt_b = BF16StateAdamW(b.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(5):
        x = torch.randn(4, 16)
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            (m(x) ** 2).sum().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=2e-3), (pa - pb).abs().max()
    assert all(v.dtype == torch.bfloat16 for s in opt_b.state.values() for k, v in s.items() if k != "step")
    big_a = torch.nn.Parameter(torch.randn(1100, 1000) * 0.02)  # more elements than one update chunk
    big_b = torch.nn.Parameter(big_a.detach().clone())
    opt_a, opt_b = torch.optim.AdamW([big_a], lr=1e-3), BF16StateAdamW([big_b], lr=1e-3)
    for _ in range(3):
        for w, o in ((big_a, opt_a), (big_b, opt_b)):
            o.zero_grad()
            (w ** 3).sum().backward()
            o.step()
    assert torch.allclose(big_a, big_b, atol=1e-4)
    with pytest.raises(ConfigError, match="optimizer must be 'adamw' or 'adamw_bf16'"):
        make_optimizer("sgd", a.parameters(), lr=1e-3)


def test_lora_with_gradient_checkpointing_trains(tmp_path, tok):
    from rlvr.agents.trainer.trainer import _load_policy

    config = _cfg(lora=True, lora_r=2, gradient_checkpointing=True, logit_chunk_tokens=4,
                  output_dir=str(tmp_path / "run"))
    model, _ = _load_policy(config, CPU, tiny_llama(tok), tok)
    seqs, adv = _batch()
    _fill_exact(model, seqs)
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = make_optimizer("adamw", [p for p in model.parameters() if p.requires_grad], lr=1e-2)
    stats = ppo_update(model, opt, seqs, adv, config, pad_id=0, device=CPU)
    assert stats["loss/grad_norm"] > 0
    assert any(not torch.equal(p, lora[n]) for n, p in model.named_parameters() if p.requires_grad)


def test_return_freed_memory_sets_the_glibc_threshold():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert return_freed_memory(1 << 20) is True


def test_a_logit_chunk_holds_its_token_budget_over_all_rows():
    """``chunk`` counts token positions over the whole batch: B rows get chunk // B positions each."""
    from rlvr.agents.trainer.update import chunk_positions

    assert chunk_positions(4, 64) == 16 and chunk_positions(1, 64) == 64 and chunk_positions(100, 64) == 1
    torch.manual_seed(0)
    hidden = torch.randn(4, 9, 8, requires_grad=True)
    shapes = []

    class Head(torch.nn.Linear):
        def forward(self, x):
            shapes.append(tuple(x.shape))
            return super().forward(x)

    head = Head(8, 30, bias=False)
    targets = torch.randint(0, 30, (4, 9))
    whole = torch.log_softmax(head(hidden), -1).gather(-1, targets[..., None]).squeeze(-1)
    shapes.clear()
    logp, _ = chunked_token_logprobs(hidden, head, targets, chunk=8)
    assert {s[1] for s in shapes} <= {2, 1} and all(s[0] * s[1] <= 8 for s in shapes)  # 2 positions x 4 rows
    assert torch.allclose(logp, whole, atol=1e-6)


def test_trim_heap_runs_on_the_cpu_only():
    from rlvr.agents.trainer.memory import trim_heap

    assert trim_heap("cpu") in (True, False)  # False only where the C library is not glibc
    assert trim_heap(torch.device("cpu")) == trim_heap("cpu")
    assert trim_heap("cuda") is False and trim_heap(torch.device("meta")) is False
