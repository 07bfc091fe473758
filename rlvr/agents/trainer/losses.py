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
    "PolicyLossOutput",
    "aggregate",
    "entropy_from_logits",
    "k3_kl",
    "ppo_clip_loss",
    "token_logprobs",
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


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model`` on a right-padded batch; return per-token log-probs (and entropies)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logp = token_logprobs_from_logits(logits, input_ids)
    ent = entropy_from_logits(logits).detach() if with_entropy else None
    return logp, ent


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
