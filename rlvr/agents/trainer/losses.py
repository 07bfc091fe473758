"""Policy-gradient loss pieces as small pure tensor functions.

Conventions: tensors are ``[B, L]`` over a right-padded batch of token sequences; ``logp[b, j]`` is
the log-probability of token ``j`` given tokens ``< j`` (column 0 is 0: no prediction), and
``loss_mask`` is 1 exactly on policy-generated tokens. Loss aggregation divides by *global*
normalisers (tokens or sequences of the whole optimisation batch) so that summing the losses of
gradient-accumulation micro-batches equals the loss of the full batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlvr.errors import ConfigError

__all__ = [
    "LossAggregation",
    "MicroBatchLoss",
    "PolicyLossOutput",
    "aggregate",
    "entropy_from_logits",
    "k3_kl",
    "micro_batch_loss",
    "ppo_clip_loss",
    "token_logprobs_from_logits",
]

LossAggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
_AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def token_logprobs_from_logits(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``logp[b, j] = log softmax(logits[b, j-1])[input_ids[b, j]]``; column 0 is 0. Returns float32."""
    logits = logits[:, :-1].float()
    target = input_ids[:, 1:].unsqueeze(-1)
    picked = torch.gather(logits, -1, target).squeeze(-1)
    logp = picked - torch.logsumexp(logits, dim=-1)
    return torch.nn.functional.pad(logp, (1, 0), value=0.0)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution aligned like :func:`token_logprobs_from_logits`."""
    logits = logits[:, :-1].float()
    logz = torch.logsumexp(logits, dim=-1, keepdim=True)
    probs = torch.exp(logits - logz)
    ent = logz.squeeze(-1) - (probs * logits).sum(-1)
    return torch.nn.functional.pad(ent, (1, 0), value=0.0)


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: LossAggregation,
    *,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    norm_length: float | None = None,
) -> torch.Tensor:
    """Reduce per-token ``values`` to a scalar over ``mask``.

    * ``token-mean``: ``sum(values * mask) / num_tokens`` (default: tokens in this batch).
    * ``seq-mean-token-mean``: mean over sequences of each sequence's token mean, the sum divided
      by ``num_seqs`` (default: sequences in this batch).
    * ``seq-mean-token-sum-norm`` (Dr.GRPO): ``sum(values * mask) / (num_seqs * norm_length)``, a
      constant length normaliser so long and short answers weigh per token alike.
    """
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        denom = num_tokens if num_tokens is not None else mask.sum().clamp(min=1.0)
        return (values * mask).sum() / denom
    if mode == "seq-mean-token-mean":
        per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        denom = num_seqs if num_seqs is not None else max(values.shape[0], 1)
        return per_seq.sum() / denom
    if mode == "seq-mean-token-sum-norm":
        if norm_length is None or norm_length <= 0:
            raise ConfigError("seq-mean-token-sum-norm needs a positive norm_length (e.g. the maximum "
                              f"number of policy tokens per sequence); got {norm_length}")
        denom = num_seqs if num_seqs is not None else max(values.shape[0], 1)
        return (values * mask).sum() / (denom * norm_length)
    raise ConfigError(f"loss aggregation must be one of {_AGGREGATIONS}; got {mode!r}")


@dataclass
class PolicyLossOutput:
    """PPO-clip loss and its diagnostics (diagnostics are detached token means over the mask)."""

    loss: torch.Tensor
    clip_fraction: torch.Tensor
    ratio_mean: torch.Tensor
    approx_kl: torch.Tensor


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    aggregation: LossAggregation = "token-mean",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    norm_length: float | None = None,
) -> PolicyLossOutput:
    """PPO-clip: ``-min(rho A, clip(rho, 1-clip_low, 1+clip_high) A)`` with ``rho = exp(logp - old_logp)``.

    ``old_logp`` are the rollout policy's log-probs of the sampled tokens. ``clip_fraction`` is the
    share of policy tokens where the clipped branch is the active one.
    """
    if clip_low < 0 or clip_high < 0:
        raise ConfigError(f"clip ranges must be >= 0; got low={clip_low}, high={clip_high}")
    mask = loss_mask.to(logp.dtype)
    log_ratio = (logp - old_logp) * mask
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    loss = aggregate(per_token, mask, aggregation, num_tokens=num_tokens, num_seqs=num_seqs,
                     norm_length=norm_length)
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        clip_frac = ((clipped < unclipped).to(mask.dtype) * mask).sum() / n
        ratio_mean = (ratio * mask).sum() / n
        approx_kl = (0.5 * log_ratio.pow(2) * mask).sum() / n
    return PolicyLossOutput(loss=loss, clip_fraction=clip_frac, ratio_mean=ratio_mean, approx_kl=approx_kl)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || reference): ``exp(d) - d - 1`` with ``d = ref_logp - logp``.

    Non-negative, unbiased for samples drawn from the policy; ``d`` is clamped to [-20, 20] so one
    extreme token cannot overflow.
    """
    d = torch.clamp(ref_logp - logp, -20.0, 20.0)
    return torch.exp(d) - d - 1.0


@dataclass
class MicroBatchLoss:
    """The loss of one micro-batch and what it adds to the step's statistics.

    ``sums`` are detached tensors (no host sync): ``tokens`` (policy tokens of the micro-batch) and
    token-weighted sums of ``loss/policy``, ``loss/kl``, ``loss/entropy``, ``loss/clip_frac``,
    ``loss/ratio_mean``, ``loss/approx_kl``; summed over micro-batches and divided by the summed
    ``tokens`` they give token means over the whole update.
    """

    loss: torch.Tensor
    sums: dict[str, torch.Tensor]


def micro_batch_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    entropy: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    aggregation: LossAggregation = "token-mean",
    entropy_coef: float = 0.0,
    kl_coef: float = 0.0,
    num_tokens: float,
    num_seqs: float,
    norm_length: float | None = None,
) -> MicroBatchLoss:
    """``ppo_clip - entropy_coef * H + kl_coef * k3_KL(policy || reference)`` of one micro-batch.

    All terms are aggregated with the *mini-batch* normalisers ``num_tokens`` / ``num_seqs`` (see
    :func:`aggregate`), so the micro-batch losses add up to the mini-batch loss. Without ``ref_logp``
    the KL term is 0; with ``entropy_coef == 0`` the entropy carries no gradient.
    """
    norm = dict(num_tokens=num_tokens, num_seqs=num_seqs, norm_length=norm_length)
    out = ppo_clip_loss(logp, old_logp, advantages, loss_mask, clip_low=clip_low, clip_high=clip_high,
                        aggregation=aggregation, **norm)
    if entropy_coef == 0:
        entropy = entropy.detach()
    loss = out.loss - entropy_coef * aggregate(entropy, loss_mask, aggregation, **norm)
    kl = torch.zeros((), device=logp.device)
    if ref_logp is not None:
        kl = aggregate(k3_kl(logp, ref_logp), loss_mask, aggregation, **norm)
        loss = loss + kl_coef * kl
    mask = loss_mask.to(logp.dtype)
    n = mask.sum()
    sums = {"tokens": n, "loss/policy": out.loss.detach() * num_tokens, "loss/kl": kl.detach() * num_tokens,
            "loss/entropy": (entropy.detach() * mask).sum(), "loss/clip_frac": out.clip_fraction * n,
            "loss/ratio_mean": out.ratio_mean * n, "loss/approx_kl": out.approx_kl * n}
    return MicroBatchLoss(loss, sums)
