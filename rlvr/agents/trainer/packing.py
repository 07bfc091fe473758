"""Shared-prefix packing: one forward pass over a group's common prompt.

The rollouts of a GRPO group share their prompt token for token (on many environments every task
shares its system prompt and tool list too). Forwarding each sequence in full recomputes that prefix
once per sequence. A *packed row* instead holds the prefix once, followed by each sequence's
continuation::

    prefix (P tokens) | continuation 1 | continuation 2 | ... | continuation k

with a 4-D attention mask in which every continuation attends causally to itself and to the whole
prefix but not to the other continuations, and position ids that restart at ``P`` for every
continuation. Each continuation then sees exactly the context it has in its own sequence, so its
log-probs are those of the unpacked forward, and the prefix's gradient is the sum over the
continuations, as in the unpacked batch. The prefix stops at the first policy token at the latest, so
every trained token lies in a continuation; the first token after the prefix is predicted by the
prefix's last position, shared by all members.

Pure functions of token ids and lengths: :func:`plan_pack` (whether and how a micro-batch packs),
:func:`packed_inputs` (ids, positions, mask), :func:`source_index` (where in the packed row each
original position's prediction lies) and :func:`prefix_micro_batches` (micro-batches cut so that
sequences sharing a prompt land together). The forward pass itself is
:func:`rlvr.agents.trainer.update.policy_logprobs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlvr.agents.trajectory import common_prefix
from rlvr.errors import ConfigError

__all__ = ["MIN_SHARED_PREFIX", "PackPlan", "common_prefix_length", "forward_stats", "packed_inputs", "plan_pack",
           "prefix_micro_batches", "source_index"]

MIN_SHARED_PREFIX = 16
"""Shortest common prefix (tokens) worth packing; below it a micro-batch takes the padded path."""


@dataclass(frozen=True)
class PackPlan:
    """How the sequences of one micro-batch share a row: ``prefix`` tokens in common, then each
    member's continuation (its tokens from ``prefix`` on) in member order."""

    prefix: int
    lengths: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.prefix < 1 or not self.lengths or min(self.lengths) < self.prefix:
            raise ConfigError(f"a pack needs a prefix of >= 1 token no longer than any member; got prefix "
                              f"{self.prefix} for lengths {list(self.lengths)}")

    @property
    def offsets(self) -> list[int]:
        """Where each member's continuation starts in the packed row."""
        out, at = [], self.prefix
        for n in self.lengths:
            out.append(at)
            at += n - self.prefix
        return out

    @property
    def packed_length(self) -> int:
        """Tokens of the packed row: the prefix once plus every continuation."""
        return self.prefix + sum(n - self.prefix for n in self.lengths)

    @property
    def saved_tokens(self) -> int:
        """Positions the packed row does not forward compared with the members' own lengths."""
        return sum(self.lengths) - self.packed_length


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all ``rows`` share (0 for no rows)."""
    if not rows:
        return 0
    n = len(rows[0])
    for r in rows[1:]:
        n = common_prefix(rows[0], r, n)
    return n


def _first_policy(mask: Sequence[int]) -> int:
    for k, m in enumerate(mask):
        if m:
            return k
    return len(mask)


def plan_pack(rows: Sequence[Sequence[int]], loss_masks: Sequence[Sequence[int]], *,
              min_prefix: int = MIN_SHARED_PREFIX) -> PackPlan | None:
    """The :class:`PackPlan` of sequences with token ids ``rows`` and ``loss_masks``, or None when packing
    would not pay: fewer than two members, or a common prefix shorter than ``min_prefix`` tokens.

    The prefix is the longest common one, cut at the earliest policy token of any member (so every
    trained token lies in a continuation)."""
    if len(rows) < 2:
        return None
    if len(rows) != len(loss_masks) or any(len(r) != len(m) for r, m in zip(rows, loss_masks)):
        raise ConfigError("plan_pack needs one loss mask per sequence, each as long as its token ids")
    prefix = min([common_prefix_length(rows)] + [_first_policy(m) for m in loss_masks])
    if prefix < max(min_prefix, 1):
        return None
    return PackPlan(prefix, tuple(len(r) for r in rows))


def packed_inputs(plan: PackPlan, rows: Sequence[Sequence[int]], *, device: torch.device | None = None,
                  additive_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``position_ids`` ``[1, T]`` and a 4-D ``attention_mask`` ``[1, 1, T, T]`` of the
    packed row (``T = plan.packed_length``).

    The mask is boolean (True: may attend) unless ``additive_dtype`` is given, then additive in that
    dtype (0 where attending, the dtype's minimum elsewhere), which eager attention implementations add
    to their scores."""
    if len(rows) != len(plan.lengths) or any(len(r) != n for r, n in zip(rows, plan.lengths)):
        raise ConfigError(f"packed_inputs got rows of lengths {[len(r) for r in rows]} for a plan of "
                          f"{list(plan.lengths)}")
    p = plan.prefix
    ids = list(rows[0][:p])
    pos = list(range(p))
    seg = [0] * p
    for k, r in enumerate(rows):
        ids.extend(r[p:])
        pos.extend(range(p, len(r)))
        seg.extend([k + 1] * (len(r) - p))
    seg_t = torch.tensor(seg, device=device)
    idx = torch.arange(len(seg), device=device)
    causal = idx[None, :] <= idx[:, None]  # [query, key]
    visible = (seg_t[None, :] == 0) | (seg_t[None, :] == seg_t[:, None])
    mask = (causal & visible)[None, None]
    if additive_dtype is not None:
        mask = torch.zeros(mask.shape, dtype=additive_dtype, device=device).masked_fill(
            ~mask, torch.finfo(additive_dtype).min)
    return {"input_ids": torch.tensor([ids], dtype=torch.long, device=device),
            "position_ids": torch.tensor([pos], dtype=torch.long, device=device), "attention_mask": mask}


def source_index(plan: PackPlan, start: int, width: int, *, device: torch.device | None = None) -> torch.Tensor:
    """``[B, width - start - 1]`` packed-row positions whose hidden states predict the original positions
    ``start + 1 .. width - 1`` of each member (the columns :func:`policy_logprobs` computes).

    Position ``j`` of member ``b`` is predicted by the state at its position ``j - 1``: in the prefix
    (shared) while ``j <= prefix``, else in the member's continuation. Positions past a member's end
    (padding of the ``[B, width]`` batch) point at position 0; their values are masked out."""
    if width > max(plan.lengths) or start < 0:
        raise ConfigError(f"source_index: columns {start}..{width} do not fit members of lengths {list(plan.lengths)}")
    j = torch.arange(start + 1, width, device=device)[None, :]
    lengths = torch.tensor(plan.lengths, device=device)[:, None]
    offsets = torch.tensor(plan.offsets, device=device)[:, None]
    src = torch.where(j <= plan.prefix, j - 1, offsets + j - plan.prefix - 1)
    return torch.where(j < lengths, src, torch.zeros_like(src))


def prefix_micro_batches(rows: Sequence[Sequence[int]], loss_masks: Sequence[Sequence[int]], order: Sequence[int],
                         size: int, *, min_prefix: int = MIN_SHARED_PREFIX, bucketing: bool = True
                         ) -> list[tuple[list[int], PackPlan | None]]:
    """Micro-batches of at most ``size`` indices of ``order``, each with its :class:`PackPlan` (None: the
    padded path).

    The indices are sorted by their prompt (the tokens before their first policy token), then length, so
    sequences that share a prompt are adjacent and a micro-batch of them packs into one row. The indices
    of micro-batches that do not pack are cut again by length (``bucketing``), as without packing."""
    from rlvr.agents.trainer.update import micro_batches

    if size < 1:
        raise ConfigError(f"micro-batch size must be >= 1; got {size}")
    ranked = sorted(order, key=lambda i: (tuple(rows[i][:_first_policy(loss_masks[i])]), len(rows[i])))
    out: list[tuple[list[int], PackPlan | None]] = []
    rest: list[int] = []
    for k in range(0, len(ranked), size):
        idx = ranked[k:k + size]
        plan = plan_pack([rows[i] for i in idx], [loss_masks[i] for i in idx], min_prefix=min_prefix)
        if plan is None:
            rest.extend(idx)
        else:
            out.append((idx, plan))
    out.extend((idx, None) for idx in micro_batches([len(r) for r in rows], rest, size, bucketing))
    return out


def forward_stats(lengths: Sequence[int], batches: Sequence[tuple[Sequence[int], PackPlan | None]]
                  ) -> dict[str, float]:
    """``perf/padding_frac`` (padded share of the positions forwarded: a padded micro-batch is as wide as
    its longest member, a packed row has no padding) and ``perf/prefix_shared_frac`` (share of the
    sequences' tokens that packing did not forward again) of a list of micro-batches."""
    real = sum(lengths[i] for idx, _ in batches for i in idx)
    positions = sum(plan.packed_length if plan else len(idx) * max(lengths[i] for i in idx)
                    for idx, plan in batches if idx)
    forwarded = sum(plan.packed_length if plan else sum(lengths[i] for i in idx) for idx, plan in batches)
    return {"perf/padding_frac": 1.0 - forwarded / positions if positions else 0.0,
            "perf/prefix_shared_frac": 1.0 - forwarded / real if real else 0.0}
