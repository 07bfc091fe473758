"""PPO-clip, aggregation, k3 KL and token log-prob helpers on hand-computed tensors."""

import math

import pytest
import torch

from rlvr.agents.trainer.losses import (
    aggregate,
    entropy_from_logits,
    k3_kl,
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
