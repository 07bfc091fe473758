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


def _cache_kw(model: torch.nn.Module) -> str:
    """The forward argument that takes a KV cache: ``cache`` on newer transformers, else ``past_key_values``."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _returned_cache(out: Any) -> Any:
    return out["cache"] if "cache" in out else out["past_key_values"]


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
    batch_size: int | None = None,
    probe_mode: Literal["auto", "blocks", "loop"] = "auto",
) -> list[list[float]]:
    """Same values as :func:`answer_logprobs_naive`, from one cached prefix pass per batch.

    Sequences are right-padded into batches of ``batch_size`` and cut at their last boundary (later
    tokens are never attended). ``None`` picks 8 on an accelerator and 1 on the CPU, where a batch
    saves no compute and a padded batch's attention mask keeps the attention kernels off their fused
    causal path (2.5-4x slower and several GB more on DeepSearch trajectories).

    One pass fills the KV cache; then every boundary's probe -- the boundary's last context token,
    the prefix, the answer -- is scored against that cache: all
    boundaries in ONE pass with a block attention mask (probe block ``t`` sees the cache up to its
    boundary and itself, causally) for the ``sdpa`` and ``eager`` attention implementations, or one
    pass per boundary index with a 2-D mask for other implementations (``probe_mode`` forces one:
    ``"blocks"`` or ``"loop"``).
    """
    _check_inputs(sequences, boundaries, prefix_ids, answer_ids)
    device = _model_device(model)
    if batch_size is None:
        batch_size = 1 if device.type == "cpu" else 8
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if probe_mode not in ("auto", "blocks", "loop"):
        raise ConfigError(f"probe_mode must be 'auto', 'blocks' or 'loop'; got {probe_mode!r}")
    use_blocks = probe_mode == "blocks" or (probe_mode == "auto" and impl in ("sdpa", "eager"))
    kw = _cache_kw(model)
    out: list[list[float]] = [[] for _ in sequences]
    order = [i for i in range(len(sequences)) if boundaries[i]]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ctx = [list(sequences[i][: max(boundaries[i])]) for i in idx]
        bsz, length = len(idx), max(map(len, ctx))
        n_blocks = max(len(boundaries[i]) for i in idx)
        # probe block (r, t): [context token b-1] + prefix + answer, at positions b-1, b, ...
        width = 1 + len(prefix_ids) + max(len(answer_ids[i]) for i in idx)
        probe = torch.zeros(bsz, n_blocks, width, dtype=torch.long)
        first = torch.ones(bsz, n_blocks, dtype=torch.long)  # position of the block's first token
        ids = torch.zeros(bsz, length, dtype=torch.long)
        ctx_mask = torch.zeros(bsz, length, dtype=torch.long)
        for r, (i, c) in enumerate(zip(idx, ctx)):
            ids[r, : len(c)] = torch.tensor(c)
            ctx_mask[r, : len(c)] = 1
            body = list(prefix_ids) + list(answer_ids[i])
            for t, b in enumerate(boundaries[i]):
                probe[r, t, : len(body) + 1] = torch.tensor([c[b - 1], *body])
                first[r, t] = b - 1
        # the prefix pass only fills the KV cache: one position of logits, not [B, L, V]
        cache = _returned_cache(model(input_ids=ids.to(device), attention_mask=ctx_mask.to(device), use_cache=True,
                                      logits_to_keep=1))
        pos = (first[:, :, None] + torch.arange(width)[None, None, :]).to(device)
        probe = probe.to(device)
        sees_cache = torch.arange(length, device=device)[None, None, :] < first.to(device)[:, :, None]  # [B, T, L]
        if use_blocks:
            q = n_blocks * width
            block = torch.arange(q, device=device) // width
            causal_same_block = (block[:, None] == block[None, :]) & (
                torch.arange(q, device=device)[:, None] >= torch.arange(q, device=device)[None, :])
            allowed = torch.cat([sees_cache.repeat_interleave(width, dim=1),
                                 causal_same_block[None].expand(bsz, q, q)], dim=2)[:, None]  # [B, 1, Q, L+Q]
            if impl == "eager":
                dtype = next(model.parameters()).dtype
                allowed = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(
                    ~allowed, torch.finfo(dtype).min)
            logits = model(input_ids=probe.reshape(bsz, q), attention_mask=allowed, position_ids=pos.reshape(bsz, q),
                           use_cache=True, **{kw: cache}).logits.reshape(bsz, n_blocks, width, -1)
        else:
            chunks = []
            for t in range(n_blocks):
                attn = torch.cat([sees_cache[:, t].long(), torch.ones(bsz, width, dtype=torch.long, device=device)], 1)
                chunks.append(model(input_ids=probe[:, t], attention_mask=attn, position_ids=pos[:, t],
                                    use_cache=True, **{kw: cache}).logits)
                cache.crop(-width)  # drop this probe again (the same call on old and new cache APIs)
            logits = torch.stack(chunks, dim=1)
        for r, i in enumerate(idx):
            n, k = len(answer_ids[i]), 1 + len(prefix_ids) + len(answer_ids[i])
            for t in range(len(boundaries[i])):
                out[i].append(_mean_answer_logprob(logits[r, t, k - n - 1 : k - 1], probe[r, t, :k], n))
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
    batch_size: int | None = None
    """Trajectories per cached scoring pass (``None``: 8 on an accelerator, 1 on the CPU)."""

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
