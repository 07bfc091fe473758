"""Information-gain turn reward (IGPO).

After each turn ``t`` of a trajectory, how likely does the policy find the ground-truth answer?
``p_t`` is the geometric-mean probability of the answer tokens, teacher-forced after a fixed answer
prefix (e.g. ``"<answer>"``) appended to the trajectory's tokens up to the end of turn ``t``
(the turn's observation and the next generation prompt included). The turn reward is the gain
``IG_t = p_t - p_{t-1}`` (``variant="prob_diff"``, the paper's form) or the difference of the mean
log-probabilities (``variant="log_prob_diff"``). ``p_0`` is scored on the opening prompt alone.

Two implementations compute the same mean log-probabilities:

* :func:`answer_logprobs_naive` -- one full forward pass per (trajectory, boundary).
* :func:`answer_logprobs_cached` -- one forward pass per batch of trajectories that fills a KV
  cache, then, for each boundary index, one short pass over the probe tokens of every trajectory
  in the batch that attends to the cached prefix up to that trajectory's boundary (cache positions
  past the boundary are masked out and RoPE positions restart at the boundary). Cost: one long pass
  plus ``T`` passes of ``len(probe)`` tokens, instead of ``T`` long passes.

Both take token ids, so they work on the token-exact sequences the trainer builds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlvr.errors import ConfigError

__all__ = [
    "InformationGain",
    "answer_logprobs_cached",
    "answer_logprobs_naive",
    "information_gain",
]

Variant = Literal["prob_diff", "log_prob_diff"]


def _check_inputs(sequences, boundaries, prefix_ids, answer_ids) -> None:
    if len(sequences) != len(boundaries) or len(sequences) != len(answer_ids):
        raise ConfigError(f"got {len(sequences)} sequences, {len(boundaries)} boundary lists and "
                          f"{len(answer_ids)} answers; pass one of each per trajectory")
    for i, (seq, bs, ans) in enumerate(zip(sequences, boundaries, answer_ids)):
        if len(ans) == 0:
            raise ConfigError(f"trajectory {i}: the ground-truth answer tokenises to no tokens; "
                              "information gain needs a non-empty answer")
        for b in bs:
            if not 0 < b <= len(seq):
                raise ConfigError(f"trajectory {i}: boundary {b} outside 1..{len(seq)} (the sequence length)")
    if any(not isinstance(t, int) for t in prefix_ids):
        raise ConfigError("prefix_ids must be a list of token ids (ints)")


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _mean_answer_logprob(logits: torch.Tensor, probe: torch.Tensor, n_answer: int) -> float:
    """Mean log-prob of the last ``n_answer`` tokens of ``probe`` given ``logits`` predicting them."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, probe[-n_answer:].unsqueeze(-1)).squeeze(-1)
    return float(picked.mean())


@torch.no_grad()
def answer_logprobs_naive(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    boundaries: Sequence[Sequence[int]],
    prefix_ids: Sequence[int],
    answer_ids: Sequence[Sequence[int]],
) -> list[list[float]]:
    """Reference: for each trajectory ``i`` and boundary ``b``, run the model on
    ``sequences[i][:b] + prefix_ids + answer_ids[i]`` and return the mean log-prob of the answer tokens.
    """
    _check_inputs(sequences, boundaries, prefix_ids, answer_ids)
    device = _model_device(model)
    out: list[list[float]] = []
    for seq, bs, ans in zip(sequences, boundaries, answer_ids):
        row = []
        for b in bs:
            ids = torch.tensor([list(seq[:b]) + list(prefix_ids) + list(ans)], device=device)
            n = len(ans)
            # only the last n+1 positions' logits are needed (the model body still runs on everything)
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=n + 1).logits[0]
            row.append(_mean_answer_logprob(logits[-n - 1 : -1], ids[0], n))
        out.append(row)
    return out


@torch.no_grad()
def answer_logprobs_cached(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    boundaries: Sequence[Sequence[int]],
    prefix_ids: Sequence[int],
    answer_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
) -> list[list[float]]:
    """Same values as :func:`answer_logprobs_naive`, from one cached prefix pass per batch.

    Sequences are right-padded into batches of ``batch_size``; each is cut at its last boundary
    (later tokens are never attended). Works with any Hugging Face causal LM whose cache supports
    ``crop`` (every ``DynamicCache``).
    """
    _check_inputs(sequences, boundaries, prefix_ids, answer_ids)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    device = _model_device(model)
    out: list[list[float]] = [[] for _ in sequences]
    order = [i for i in range(len(sequences)) if boundaries[i]]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ctx = [list(sequences[i][: max(boundaries[i])]) for i in idx]
        probes = [list(prefix_ids) + list(answer_ids[i]) for i in idx]
        length, k_max, bsz = max(map(len, ctx)), max(map(len, probes)), len(idx)
        ids = torch.zeros(bsz, length, dtype=torch.long, device=device)
        ctx_mask = torch.zeros(bsz, length, dtype=torch.long, device=device)
        for r, c in enumerate(ctx):
            ids[r, : len(c)] = torch.tensor(c, device=device)
            ctx_mask[r, : len(c)] = 1
        cache = model(input_ids=ids, attention_mask=ctx_mask, use_cache=True).past_key_values
        # The probe re-feeds the boundary's last context token (position b-1, cache masked from b-1
        # on) so its logits predict the first probe token even when the prefix is empty.
        k_max = k_max + 1
        probe_mask = torch.zeros(bsz, k_max, dtype=torch.long, device=device)
        for r, p in enumerate(probes):
            probe_mask[r, : len(p) + 1] = 1
        cache_pos = torch.arange(length, device=device)
        for t in range(max(len(boundaries[i]) for i in idx)):
            bs = [boundaries[i][t] if t < len(boundaries[i]) else 1 for i in idx]
            probe_ids = torch.zeros(bsz, k_max, dtype=torch.long, device=device)
            for r, (c, p, b) in enumerate(zip(ctx, probes, bs)):
                probe_ids[r, : len(p) + 1] = torch.tensor([c[b - 1], *p], device=device)
            start_pos = torch.tensor(bs, device=device)[:, None] - 1
            attn = torch.cat([(cache_pos[None, :] < start_pos).long(), probe_mask], dim=1)
            pos = start_pos + torch.arange(k_max, device=device)[None, :]
            logits = model(input_ids=probe_ids, attention_mask=attn, position_ids=pos,
                           past_key_values=cache, use_cache=True).logits
            cache.crop(-k_max)  # drop the probe again: works on both the old and new crop APIs
            for r, i in enumerate(idx):
                if t < len(boundaries[i]):
                    n, k = len(answer_ids[i]), len(probes[r]) + 1
                    out[i].append(_mean_answer_logprob(logits[r, k - n - 1 : k - 1], probe_ids[r, :k], n))
    return out


def information_gain(mean_logprobs: Sequence[float], variant: Variant = "prob_diff") -> list[float]:
    """Turn rewards from the scores at consecutive boundaries: ``v_t - v_{t-1}`` for ``t >= 1``.

    ``v = exp(mean log-prob)`` (geometric-mean probability) for ``prob_diff``, ``v = mean log-prob``
    for ``log_prob_diff``. Returns one value fewer than it is given.
    """
    if variant == "prob_diff":
        v = [math.exp(x) for x in mean_logprobs]
    elif variant == "log_prob_diff":
        v = list(mean_logprobs)
    else:
        raise ConfigError(f"variant must be 'prob_diff' or 'log_prob_diff'; got {variant!r}")
    return [b - a for a, b in zip(v[:-1], v[1:])]


@dataclass(frozen=True)
class InformationGain:
    """IGPO turn reward with its settings; call it with a model, a tokenizer and token sequences.

    ``answer_prefix`` is the text teacher-forced before the answer (the answer tag the environment
    expects); only the first alias of a list-valued answer is scored, as IGPO does.
    """

    answer_prefix: str = "<answer>"
    variant: Variant = "prob_diff"
    method: Literal["cached", "naive"] = "cached"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.variant not in ("prob_diff", "log_prob_diff"):
            raise ConfigError(f"InformationGain.variant must be 'prob_diff' or 'log_prob_diff'; got {self.variant!r}")
        if self.method not in ("cached", "naive"):
            raise ConfigError(f"InformationGain.method must be 'cached' or 'naive'; got {self.method!r}")

    def __call__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        sequences: Sequence[Sequence[int]],
        boundaries: Sequence[Sequence[int]],
        answers: Sequence[str | Sequence[str]],
    ) -> list[list[float]]:
        """Return ``IG`` per trajectory: ``len(boundaries[i]) - 1`` values (boundary 0 = opening prompt)."""
        first = [a if isinstance(a, str) else (a[0] if len(a) else "") for a in answers]
        if any(not a.strip() for a in first):
            raise ConfigError("information gain needs a ground-truth answer for every trajectory "
                              "(reset info['answer']); got an empty one")
        prefix_ids = tokenizer(self.answer_prefix, add_special_tokens=False)["input_ids"]
        answer_ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in first]
        fn = answer_logprobs_cached if self.method == "cached" else answer_logprobs_naive
        kwargs = {"batch_size": self.batch_size} if self.method == "cached" else {}
        was_training = model.training
        model.eval()
        try:
            scores = fn(model, sequences, boundaries, prefix_ids, answer_ids, **kwargs)
        finally:
            model.train(was_training)
        return [information_gain(row, self.variant) for row in scores]
