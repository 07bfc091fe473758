"""The PPO-clip policy update of one training step, lean enough to run at the forward/backward limit.

:func:`ppo_update` runs ``ppo_epochs`` passes over a step's sequences (mini-batches, gradient
accumulation over micro-batches, gradient clipping). What it does not do is the point:

* no reference forward without a KL term, and with one the reference log-probs are computed once
  per step (:func:`sequence_logprobs`), not per micro-batch and epoch;
* the rollout's log-probs are the "old" log-probs of every epoch: nothing is recomputed, except for
  the sequences where they are not exact (:func:`needs_old_logprobs`: a turn prompted with a
  re-rendered context, or missing log-probs), recomputed once before the first epoch;
* the entropy is computed without autograd unless its coefficient is non-zero;
* micro-batches are cut from length-sorted sequences (:func:`micro_batches`), so short and long
  sequences are not padded to each other; :func:`padding_fraction` reports what padding is left;
* with ``logit_chunk_tokens`` the ``[B, L, V]`` logits are never materialised
  (:func:`chunked_token_logprobs`);
* with ``prefix_sharing`` sequences that share a prompt are forwarded as one packed row holding the
  prompt once (:mod:`~rlvr.agents.trainer.packing`): same log-probs and gradients, fewer tokens;
* statistics stay on the device until the end: one host sync per update.

The maths are the pure functions of :mod:`~rlvr.agents.trainer.losses`; the memory accounting is
:mod:`~rlvr.agents.trainer.memory`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch

from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.losses import MicroBatchLoss, micro_batch_loss
from rlvr.agents.trainer.memory import SavedTensorMeter, trim_heap
from rlvr.agents.trainer.multimodal import MultimodalSequence, multimodal_inputs
from rlvr.agents.trainer.packing import PackPlan, forward_stats, packed_inputs, prefix_micro_batches, source_index
from rlvr.agents.trainer.sequences import TokenSequence, collate, first_prediction
from rlvr.errors import ConfigError

__all__ = ["chunked_token_logprobs", "micro_batches", "needs_old_logprobs", "packable", "packed_row",
           "padding_fraction", "plan_micro_batches", "policy_logprobs", "ppo_update", "sequence_logprobs"]


def micro_batches(lengths: Sequence[int], order: Sequence[int], size: int, bucketing: bool = True) -> list[list[int]]:
    """Split the indices ``order`` (one mini-batch) into micro-batches of at most ``size`` indices.

    With ``bucketing`` the indices are first sorted by ``lengths[i]`` (stable, so equal lengths keep
    their order), so each micro-batch holds sequences of similar length and little padding. The
    gradient of a mini-batch is the sum over its micro-batches, so their composition does not change
    the update (up to float rounding).
    """
    if size < 1:
        raise ConfigError(f"micro-batch size must be >= 1; got {size}")
    idx = sorted(order, key=lambda i: lengths[i]) if bucketing else list(order)
    return [idx[k:k + size] for k in range(0, len(idx), size)]


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of padded positions when each batch of indices is right-padded to its longest member."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return 1.0 - sum(lengths[i] for b in batches for i in b) / padded if padded else 0.0


def needs_old_logprobs(seq: TokenSequence) -> bool:
    """Whether ``seq``'s rollout log-probs cannot serve as the PPO "old" log-probs as they are: a turn was
    prompted with a context other than the sequence's prefix (``prompt_mismatches``), or a policy token
    has no log-prob (NaN)."""
    return bool(seq.prompt_mismatches) or any(m and math.isnan(v) for m, v in zip(seq.loss_mask, seq.old_logprobs))


def chunked_token_logprobs(hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor,
                           *, temperature: float = 1.0, chunk: int = 256, entropy: bool = False
                           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` ``[B, K]`` under ``softmax(head(hidden) / temperature)``, at most ``chunk``
    token positions at a time (``chunk // B`` positions of each of the ``B`` rows, at least one);
    ``hidden`` ``[B, K, H]`` are the hidden states predicting them.

    Each chunk's logits are recomputed in the backward pass (activation checkpointing) instead of
    being kept, so memory holds one block of about ``chunk x V`` logits whatever the batch, never
    ``[B, K, V]``. With ``entropy`` the entropies of the same distributions come back too, without
    autograd. Returns float32 tensors.
    """
    from torch.utils.checkpoint import checkpoint

    if hidden.shape[1] == 0:
        empty = hidden.new_zeros(targets.shape, dtype=torch.float32)
        return empty, (empty.clone() if entropy else None)

    def piece(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = head(h).float()
        if temperature != 1.0:
            logits = logits / temperature
        return logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)

    logps, ents = [], []
    step = chunk_positions(hidden.shape[0], chunk)
    for s in range(0, hidden.shape[1], step):
        h, t = hidden[:, s:s + step], targets[:, s:s + step]
        logps.append(checkpoint(piece, h, t, use_reentrant=False) if torch.is_grad_enabled() else piece(h, t))
        if entropy:
            with torch.no_grad():
                ents.append(_entropy(head(h.detach()).float() / temperature))
    return torch.cat(logps, dim=1), (torch.cat(ents, dim=1) if entropy else None)


def chunk_positions(rows: int, chunk: int) -> int:
    """Positions of each row that one chunk of :func:`chunked_token_logprobs` holds: ``chunk`` tokens
    over ``rows`` rows (at least one)."""
    return max(1, chunk // max(1, rows))


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logz = torch.logsumexp(logits, dim=-1, keepdim=True)
    return logz.squeeze(-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def _split_head(model: Any) -> tuple[Any, Any] | None:
    """``(decoder, output layer)`` of a causal LM whose logits are the plain output layer of the decoder's
    last hidden state (no soft-capping or scaling), else None."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return (decoder, head) if decoder is not None and head is not None else None


_PACKABLE_ATTENTION = ("sdpa", "eager")  # implementations that apply a custom 4-D mask as given


def packable(model: Any) -> bool:
    """Whether shared-prefix packing reproduces ``model``'s unpacked forward: a plain output head
    (:func:`_split_head`), an attention implementation that applies a custom 4-D mask (SDPA or eager,
    not flash attention) and only full-attention layers (a sliding window would not be applied to a
    custom mask)."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "_attn_implementation", None) not in _PACKABLE_ATTENTION or _split_head(model) is None:
        return False
    return all(t == "full_attention" for t in (getattr(cfg, "layer_types", None) or ()))


def plan_micro_batches(model: Any, seqs: Sequence[TokenSequence], indices: Sequence[int], size: int, *,
                       prefix_sharing: bool, bucketing: bool = True) -> list[tuple[list[int], PackPlan | None]]:
    """Micro-batches of at most ``size`` of ``seqs[indices]``, each with the :class:`PackPlan` of its packed
    row, or None for the padded path: packed (:func:`~rlvr.agents.trainer.packing.prefix_micro_batches`)
    with ``prefix_sharing`` on a :func:`packable` model and text-only sequences, else cut by length with
    ``bucketing`` (:func:`micro_batches`)."""
    indices = list(indices)
    if prefix_sharing and packable(model) and not any(isinstance(seqs[i], MultimodalSequence) for i in indices):
        return prefix_micro_batches([s.input_ids for s in seqs], [s.loss_mask for s in seqs], indices, size,
                                    bucketing=bucketing)
    return [(idx, None) for idx in micro_batches([len(s) for s in seqs], indices, size, bucketing)]


def packed_row(model: Any, part: Sequence[TokenSequence], plan: PackPlan | None, device: torch.device) -> dict | None:
    """The packed row of ``part`` (:func:`~rlvr.agents.trainer.packing.packed_inputs`, with the mask type
    the model's attention implementation takes), or None without a plan."""
    if plan is None:
        return None
    eager = getattr(model.config, "_attn_implementation", None) == "eager"
    dtype = next(model.parameters()).dtype if eager else None
    return {"plan": plan, **packed_inputs(plan, [s.input_ids for s in part], device=device, additive_dtype=dtype)}


def _packed_logprobs(model: Any, packed: dict, targets: torch.Tensor, start: int, width: int, *, temperature: float,
                     entropy: bool, entropy_grad: bool, chunk: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Log-probs ``[B, width - start - 1]`` (and entropies) from one forward over a packed row: the hidden
    state predicting each member's position is gathered from the row (:func:`source_index`)."""
    decoder, head = _split_head(model)
    hidden = decoder(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                     position_ids=packed["position_ids"], use_cache=False).last_hidden_state[0]
    h = hidden[source_index(packed["plan"], start, width, device=hidden.device)]  # [B, K, H]
    vocab = head.weight.shape[0]
    if chunk > 0 and not entropy_grad:
        logp, ent = chunked_token_logprobs(h, head, targets, temperature=temperature, chunk=chunk, entropy=entropy)
        return logp, ent, h.shape[0] * min(chunk_positions(h.shape[0], chunk), h.shape[1]) * vocab * 4
    logits = head(h).float() / temperature
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    ent = None
    if entropy:
        with contextlib.nullcontext() if entropy_grad else torch.no_grad():
            ent = _entropy(logits if entropy_grad else logits.detach())
    return logp, ent, logits.numel() * logits.element_size()


def policy_logprobs(model: Any, batch: dict[str, torch.Tensor], start: int, *, temperature: float,
                    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                    entropy: bool = True, entropy_grad: bool = False, chunk: int = 0, packed: dict | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Per-token log-probs ``[B, L]`` of a collated batch under ``softmax(logits / temperature)`` (zeros in
    columns ``<= start``: those predict prompt tokens nobody trains on), the entropies when asked
    (with autograd only under ``entropy_grad``), and the bytes the logits took.

    ``chunk > 0`` computes the log-softmax ``chunk`` positions at a time from the decoder's hidden states
    (:func:`chunked_token_logprobs`; models whose output layer is not the plain head of the decoder, and
    multimodal batches, fall back to whole logits).

    ``packed`` (from :func:`packed_row`) forwards the batch as one packed row sharing the members' common
    prefix instead of the padded ``[B, L]`` batch; the results have the same shapes and values.
    """
    ids = batch["input_ids"]
    keep = ids.shape[1] - start
    targets = ids[:, start + 1:]
    extra = batch.get("model_inputs") or {}
    split = _split_head(model) if chunk > 0 and not extra and not entropy_grad else None
    with autocast():
        if packed is not None:
            logp, ent, logits_bytes = _packed_logprobs(model, packed, targets, start, ids.shape[1],
                                                       temperature=temperature, entropy=entropy,
                                                       entropy_grad=entropy_grad, chunk=chunk)
        elif split is not None:
            decoder, head = split
            hidden = decoder(input_ids=ids, attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
            logp, ent = chunked_token_logprobs(hidden[:, start:-1], head, targets, temperature=temperature, chunk=chunk,
                                               entropy=entropy)
            logits_bytes = ids.shape[0] * min(chunk_positions(ids.shape[0], chunk), keep) * head.weight.shape[0] * 4
        else:
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"], use_cache=False,
                           logits_to_keep=keep, **extra).logits[:, :-1].float()
            logits_bytes = logits.numel() * logits.element_size()
            if temperature != 1.0:
                logits = logits / temperature
            logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            ent = None
            if entropy:
                with contextlib.nullcontext() if entropy_grad else torch.no_grad():
                    ent = _entropy(logits if entropy_grad else logits.detach())
    pad = (start + 1, 0)
    return (torch.nn.functional.pad(logp, pad), torch.nn.functional.pad(ent, pad) if ent is not None else None,
            logits_bytes)


def sequence_logprobs(model: Any, seqs: Sequence[TokenSequence], indices: Sequence[int], config: TrainConfig, *,
                      pad_id: int, device: torch.device, autocast: Callable = contextlib.nullcontext,
                      disable_adapter: bool = False) -> dict[int, torch.Tensor]:
    """No-grad log-probs of ``seqs[i]`` for each ``i`` in ``indices`` (a 1-D tensor of ``len(seqs[i])``
    per index, on ``device``), in length-bucketed micro-batches: the reference log-probs of a step
    and the recomputed old log-probs, computed once. ``disable_adapter``: score with a peft model's
    adapters off (the frozen base of a LoRA run)."""
    lengths = [len(s) for s in seqs]
    out: dict[int, torch.Tensor] = {}
    frozen = model.disable_adapter() if disable_adapter else contextlib.nullcontext()
    with torch.no_grad(), frozen:
        for idx, plan in plan_micro_batches(model, seqs, indices, config.micro_batch_size,
                                            prefix_sharing=config.prefix_sharing,
                                            bucketing=config.length_bucketing):
            part = [seqs[j] for j in idx]
            batch = collate(part, pad_id, device=device)
            batch["model_inputs"] = multimodal_inputs(part, batch["input_ids"], device)
            logp, _, _ = policy_logprobs(model, batch, first_prediction(part), temperature=config.temperature,
                                         autocast=autocast, entropy=False, chunk=config.logit_chunk_tokens,
                                         packed=packed_row(model, part, plan, device))
            for row, j in enumerate(idx):
                out[j] = logp[row, :lengths[j]]
    return out


def _rows(values: dict[int, torch.Tensor], idx: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """Right-padded ``[B, L]`` rows of per-sequence tensors, shaped like ``like`` (zeros for rows without one)."""
    out = torch.zeros_like(like)
    for row, j in enumerate(idx):
        if j in values:
            out[row, :values[j].shape[0]] = values[j]
    return out


def _micro_batch(model: Any, seqs: Sequence[TokenSequence], idx: list[int], token_adv: Sequence[Sequence[float]],
                 config: TrainConfig, *, pad_id: int, device: torch.device, autocast: Callable, plan: PackPlan | None,
                 ref_logp: dict[int, torch.Tensor] | None, old_logp: dict[int, torch.Tensor],
                 meter: SavedTensorMeter, **norm: Any) -> tuple[MicroBatchLoss, int]:
    """Forward the policy over ``seqs[idx]`` (one packed row with a ``plan``) and return :func:`micro_batch_loss`
    and the logits' bytes."""
    part = [seqs[j] for j in idx]
    batch = collate(part, pad_id, [token_adv[j] for j in idx], device=device)
    batch["model_inputs"] = multimodal_inputs(part, batch["input_ids"], device)  # images of a VLM policy, else {}
    old = batch["old_logprobs"]
    if any(j in old_logp for j in idx):  # recomputed where the rollout's were not exact
        fix = torch.zeros(len(idx), dtype=torch.bool)
        fix[[r for r, j in enumerate(idx) if j in old_logp]] = True
        old = torch.where(fix.to(device)[:, None], _rows(old_logp, idx, old), old)
    with meter:
        logp, entropy, logits_bytes = policy_logprobs(
            model, batch, first_prediction(part), temperature=config.temperature, autocast=autocast,
            entropy_grad=config.entropy_coef != 0, chunk=config.logit_chunk_tokens,
            packed=packed_row(model, part, plan, device))
        ref = _rows(ref_logp, idx, logp.detach()) if ref_logp is not None else None
        out = micro_batch_loss(logp, old, batch["advantages"], batch["loss_mask"], entropy, ref,
                               clip_low=config.clip_low, clip_high=config.clip_high,
                               aggregation=config.effective_loss_aggregation, entropy_coef=config.entropy_coef,
                               kl_coef=config.kl_coef, **norm)
    return out, logits_bytes


def ppo_update(model: Any, optimizer: torch.optim.Optimizer, seqs: list[TokenSequence], token_adv: list[list[float]],
               config: TrainConfig, *, pad_id: int, device: torch.device, autocast: Callable = contextlib.nullcontext,
               ref_model: Any = None, norm_length: float | None = None, generator: torch.Generator | None = None,
               ) -> dict[str, float]:
    """PPO-clip epochs over a step's sequences: mini-batches, gradient accumulation over micro-batches,
    gradient clipping; returns token-weighted loss statistics of the first epoch, the mean grad norm,
    ``perf/padding_frac`` (padded share of the forward passes), ``perf/prefix_shared_frac`` (share of the
    tokens shared-prefix packing did not forward again) and ``mem/activations_mb`` /
    ``mem/logits_mb`` (largest micro-batch). Gradients are freed at the end (``set_to_none``).

    ``ref_model`` (the KL term's frozen policy, or the model itself for LoRA: adapters disabled) is
    scored once before the first epoch.
    """
    lengths = [len(s) for s in seqs]
    ref_logp = None
    if ref_model is not None and config.kl_coef > 0:
        model.eval()
        ref_logp = sequence_logprobs(ref_model, seqs, range(len(seqs)), config, pad_id=pad_id, device=device,
                                     autocast=autocast, disable_adapter=ref_model is model)
    stale = [i for i, s in enumerate(seqs) if needs_old_logprobs(s)]
    model.eval()
    old_logp = sequence_logprobs(model, seqs, stale, config, pad_id=pad_id, device=device,
                                 autocast=autocast) if stale else {}
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
    kw = dict(pad_id=pad_id, device=device, autocast=autocast, ref_logp=ref_logp, old_logp=old_logp,
              norm_length=norm_length)
    meter = SavedTensorMeter(params)
    sums: dict[str, torch.Tensor] = {}
    grad_norms: list[torch.Tensor] = []
    forwarded: list[tuple[list[int], PackPlan | None]] = []
    logits_bytes = 0
    for epoch in range(config.ppo_epochs):
        order = torch.randperm(len(seqs), generator=generator).tolist()
        for mb in np.array_split(np.array(order, dtype=int), min(config.mini_batches, len(seqs))):
            mb = mb.tolist()
            num_tokens = float(sum(seqs[i].num_policy_tokens for i in mb))  # host-side lists: no device sync
            if num_tokens == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            for idx, plan in plan_micro_batches(model, seqs, mb, config.micro_batch_size,
                                                prefix_sharing=config.prefix_sharing,
                                                bucketing=config.length_bucketing):
                out, nbytes = _micro_batch(model, seqs, idx, token_adv, config, num_tokens=num_tokens,
                                           num_seqs=float(len(mb)), meter=meter, plan=plan, **kw)
                out.loss.backward()
                logits_bytes = max(logits_bytes, nbytes)
                if epoch == 0:
                    forwarded.append((idx, plan))
                    for key, v in out.sums.items():
                        sums[key] = sums.get(key, 0.0) + v.double()
                del out
                trim_heap(device)  # the next micro-batch's peak starts from the live tensors
            grad_norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm))
            optimizer.step()
            trim_heap(device)
    optimizer.zero_grad(set_to_none=True)  # free the gradients before the next rollouts
    model.eval()
    keys = list(sums)
    values = [sums[k].detach().reshape(()) for k in keys]
    if grad_norms:
        values.append(torch.stack(grad_norms).double().mean().reshape(()))
    host = torch.stack(values).double().tolist() if values else []  # the one host sync
    totals = dict(zip(keys, host))
    n_tok = max(totals.pop("tokens", 0.0), 1.0)
    stats = {k: v / n_tok for k, v in totals.items()}
    stats["loss/grad_norm"] = host[-1] if grad_norms else 0.0
    stats.update(forward_stats(lengths, forwarded))
    stats["mem/activations_mb"] = meter.peak_bytes / 2**20
    stats["mem/logits_mb"] = logits_bytes / 2**20
    return stats
