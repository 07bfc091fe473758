"""PPO-clip, aggregation, k3 KL and token log-prob helpers on hand-computed tensors."""

import math

import pytest
import torch

from rlvr.agents.trainer.losses import (
    aggregate,
    entropy_from_logits,
    k3_kl,
    micro_batch_loss,
    ppo_clip_loss,
    token_logprobs_from_logits,
)
from rlvr.errors import ConfigError


def test_token_logprobs_alignment_and_entropy():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [0.0, 0.0]]])  # [1, 3, 2]
    ids = torch.tensor([[1, 0, 1]])
    logp = token_logprobs_from_logits(logits, ids)
    # token 1 predicted by position 0 (uniform) -> log 1/2 ; token 2 by position 1 -> p(1) = 1/4
    assert logp.tolist()[0] == pytest.approx([0.0, math.log(0.5), math.log(0.25)])
    ent = entropy_from_logits(logits)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert ent.tolist()[0] == pytest.approx([0.0, math.log(2), h])


def test_ppo_clip_hand_example():
    # ratios: e^0.5 (>1.2, positive adv: clipped), e^-0.5 (<0.8, positive adv: unclipped branch is smaller),
    # e^0.1 (within), masked token ignored
    logp = torch.tensor([[0.5, -0.5, 0.1, 7.0]])
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 1.0, -2.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = ppo_clip_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    r = [math.exp(0.5), math.exp(-0.5), math.exp(0.1)]
    per_tok = [-min(r[0], 1.2), -min(r[1], 0.8), -min(-2 * r[2], -2 * min(max(r[2], 0.8), 1.2))]
    assert out.loss.item() == pytest.approx(sum(per_tok) / 3, rel=1e-6)
    assert out.clip_fraction.item() == pytest.approx(1 / 3)
    assert out.ratio_mean.item() == pytest.approx(sum(r) / 3, rel=1e-6)


def test_ppo_gradient_zero_when_clipped():
    logp = torch.tensor([[0.5, 0.0]], requires_grad=True)
    out = ppo_clip_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2))
    out.loss.backward()
    assert logp.grad[0, 0].item() == 0.0  # ratio 1.65 > 1.2 with A > 0: clipped, no gradient
    assert logp.grad[0, 1].item() == pytest.approx(-0.5)  # d(-ratio*A)/dlogp / 2 tokens


def test_aggregations():
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(v, m, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(v, m, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(v, m, "seq-mean-token-sum-norm", norm_length=5).item() == pytest.approx(10 / (2 * 5))
    # global normalisers make micro-batch losses add up to the full-batch loss
    parts = [aggregate(v[i : i + 1], m[i : i + 1], "token-mean", num_tokens=4) for i in range(2)]
    assert sum(p.item() for p in parts) == pytest.approx(10 / 4)
    parts = [aggregate(v[i : i + 1], m[i : i + 1], "seq-mean-token-mean", num_seqs=2) for i in range(2)]
    assert sum(p.item() for p in parts) == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="norm_length"):
        aggregate(v, m, "seq-mean-token-sum-norm")
    with pytest.raises(ConfigError, match="token-mean"):
        aggregate(v, m, "sum")


def test_k3_kl():
    logp = torch.tensor([math.log(0.5), math.log(0.25)])
    ref = torch.tensor([math.log(0.25), math.log(0.25)])
    kl = k3_kl(logp, ref)
    d = math.log(0.5)
    assert kl.tolist() == pytest.approx([math.exp(d) - d - 1, 0.0])
    assert (k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def test_micro_batch_loss_by_hand():
    logp = torch.tensor([[0.0, 0.1, -0.2]])
    adv = torch.tensor([[0.0, 1.0, -1.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0]])
    entropy = torch.tensor([[9.0, 0.5, 1.0]])
    # both ratios (e^0.1, e^-0.2) inside [0.8, 1.2]; the mini-batch has 4 policy tokens, this micro-batch 2
    out = micro_batch_loss(logp, torch.zeros(1, 3), adv, mask, entropy, torch.zeros(1, 3), entropy_coef=0.1,
                           kl_coef=0.5, num_tokens=4, num_seqs=2)
    r1, r2 = math.exp(0.1), math.exp(-0.2)
    policy = (-r1 + r2) / 4
    kl = ((math.exp(-0.1) + 0.1 - 1) + (math.exp(0.2) - 0.2 - 1)) / 4
    assert out.loss.item() == pytest.approx(policy - 0.1 * 1.5 / 4 + 0.5 * kl, rel=1e-6)
    s = {k: v.item() for k, v in out.sums.items()}
    assert s["tokens"] == 2 and s["loss/policy"] == pytest.approx(policy * 4, rel=1e-6)
    assert s["loss/kl"] == pytest.approx(kl * 4, rel=1e-5) and s["loss/entropy"] == pytest.approx(1.5)
    assert s["loss/clip_frac"] == 0.0 and s["loss/ratio_mean"] == pytest.approx(r1 + r2, rel=1e-6)
    assert s["loss/approx_kl"] == pytest.approx(0.5 * (0.01 + 0.04), rel=1e-5)
    assert all(not v.requires_grad for v in out.sums.values())


def test_micro_batch_loss_without_reference_or_entropy_bonus():
    logp = torch.tensor([[0.0, 0.5]], requires_grad=True)
    entropy = torch.tensor([[0.0, 2.0]], requires_grad=True)
    out = micro_batch_loss(logp, torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]]), entropy,
                           num_tokens=1, num_seqs=1)
    assert out.loss.item() == pytest.approx(-1.2)  # ratio e^0.5 clipped at 1.2
    assert out.sums["loss/kl"].item() == 0.0 and out.sums["loss/clip_frac"].item() == 1.0
    out.loss.backward()
    assert entropy.grad is None  # entropy_coef 0: the entropy carries no gradient
    # equal micro-batches under global normalisers add up to the mini-batch loss
    halves = [micro_batch_loss(torch.tensor([[0.0, v]]), torch.zeros(1, 2), torch.ones(1, 2),
                               torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), num_tokens=2, num_seqs=2).loss
              for v in (0.1, -0.1)]
    whole = micro_batch_loss(torch.tensor([[0.0, 0.1], [0.0, -0.1]]), torch.zeros(2, 2), torch.ones(2, 2),
                             torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.zeros(2, 2), num_tokens=2, num_seqs=2).loss
    assert (halves[0] + halves[1]).item() == pytest.approx(whole.item())
