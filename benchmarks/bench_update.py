"""PPO update throughput against a bare forward + backward + optimiser step, on the same sequences.

Sequences are real multi-turn episodes played by each environment's oracle and tokenised
token-exactly through SmolLM2's chat template: GuessNumber over 1..64 (5-6 turns, ~460 tokens)
and DeepSearch 1-hop (3 turns with search results, ~1,200 tokens), interleaved so that a batch
in arrival order mixes short and long ones. Their "rollout" log-probs come from one no-grad pass
of the model (exact, so the PPO ratio starts at 1) and their advantages are +-1.

Rows (each timed alternately in the same process, median over ``--repeats``):

* ``bare``: micro-batches in arrival order, ``model(...)`` with ``logits_to_keep``, token-mean
  NLL of the policy tokens, backward, gradient clipping, one AdamW step per mini-batch: the
  floor any update pays;
* ``rlvr (no bucketing)``: :func:`rlvr.agents.trainer.update.ppo_update` with length bucketing off
  (micro-batches in the update's shuffled order; not in ``--quick``);
* ``rlvr``: ``ppo_update`` with length bucketing on and shared-prefix packing off;
* ``rlvr (prefix sharing)``: ``ppo_update`` with ``prefix_sharing`` on: the sequences sharing a prompt
  are forwarded as one packed row holding the prompt once.

``--size grpo`` is the shape of a GRPO step instead: 2 tasks x 4 rollouts, every sequence the real
GuessNumber prompt (system prompt and tools, shared token for token) followed by a 60-120-token
continuation cut from a different oracle episode.

Tokens/s counts real (unpadded) tokens; ``padding`` is the share of padded positions in the
forward passes (for rlvr rows, the update's own ``perf/padding_frac``), ``shared`` the share of the
tokens packing did not forward again (``perf/prefix_shared_frac``), ``saved act.`` the activations the
update's largest micro-batch saved for the backward pass. The largest difference between the packed and
padded log-probs of the policy tokens is printed, then a memory breakdown of the update (weights,
gradients, optimiser state, reference, activations saved for backward, logits).

Usage: python benchmarks/bench_update.py [--quick] [--size grpo] [--repeats 2] [--micro-batch-size 4]
Prints a table and writes benchmarks/results/bench_update.json (``--label`` names the run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import rlvr  # noqa: F401  (registers the environments)
from rlvr.agents.models import load_model
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.sequences import TokenSequence, collate, first_prediction
from rlvr.agents.trainer.sft import demonstration_sequences
from rlvr.agents.trainer.trainer import ppo_update


def bench_sequences(tokenizer, size: str) -> list[TokenSequence]:
    """Oracle episodes interleaved short/long. ``full``: 4 GuessNumber (1..64) and 4 DeepSearch (1 hop);
    ``small``: 2 and 2, the DeepSearch ones cut after their second turn; ``quick``: 4 GuessNumber, two cut
    after their first turn and two after their third."""
    short = demonstration_sequences("rlvr/GuessNumber-v0", {"low": 1, "high": 64}, tokenizer, 4, 0)
    if size == "quick":  # under a minute on two cores
        return [_cut(short[0], 3), _cut(short[1], 1), _cut(short[2], 3), _cut(short[3], 1)]
    long = demonstration_sequences("rlvr/DeepSearch-v0", {"hops": 1}, tokenizer, 4, 0)
    if size == "small":
        short, long = short[:2], [_cut(s, 2) for s in long[:2]]
    return [s for pair in zip(short, long) for s in pair]


def grpo_sequences(tokenizer, tasks: int = 2, group: int = 4, seed: int = 0) -> list[TokenSequence]:
    """``tasks x group`` GRPO-shaped sequences: GuessNumber's prompt (shared by every episode) followed by
    a 60-120-token continuation of one oracle episode each, in rollout order (a group's members adjacent)."""
    import random

    episodes = demonstration_sequences("rlvr/GuessNumber-v0", {"low": 1, "high": 1000}, tokenizer, tasks * group, seed)
    rng = random.Random(seed)
    out = []
    for s in episodes:
        end = min(s.loss_mask.index(1) + rng.randint(60, 120), len(s))
        out.append(TokenSequence(s.input_ids[:end], s.loss_mask[:end], s.attention_mask[:end], s.old_logprobs[:end],
                                 [(a, min(b, end)) for a, b in s.turn_spans if a < end], []))
    return out


def _cut(seq: TokenSequence, turns: int) -> TokenSequence:
    end = seq.turn_spans[turns - 1][1]
    return TokenSequence(seq.input_ids[:end], seq.loss_mask[:end], seq.attention_mask[:end], seq.old_logprobs[:end],
                         seq.turn_spans[:turns], [])


def fill_rollout_logprobs(model, seqs: list[TokenSequence], pad_id: int) -> None:
    """Set each sequence's ``old_logprobs`` to the model's own (one no-grad pass): exact rollout log-probs."""
    from rlvr.agents.trainer.losses import token_logprobs_from_logits

    with torch.no_grad():
        for s in seqs:
            batch = collate([s], pad_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            logp = token_logprobs_from_logits(logits, batch["input_ids"])[0]
            s.old_logprobs = [float(v) if m else 0.0 for v, m in zip(logp.tolist(), s.loss_mask)]


def padding_share(batches: list[list[TokenSequence]]) -> float:
    """Padded positions over all positions of the padded micro-batches."""
    real = sum(len(s) for b in batches for s in b)
    padded = sum(len(b) * max(len(s) for s in b) for b in batches)
    return 1.0 - real / padded


def bare_update(model, optimizer, seqs, micro: int, pad_id: int) -> None:
    """The floor: forward, token-mean NLL on policy tokens, backward, clip, one optimiser step."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    n_tok = float(sum(s.num_policy_tokens for s in seqs))
    for i in range(0, len(seqs), micro):
        part = seqs[i:i + micro]
        batch = collate(part, pad_id)
        start = first_prediction(part)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                       logits_to_keep=batch["input_ids"].shape[1] - start).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, start + 1:, None])
        loss = -(logp.squeeze(-1) * batch["loss_mask"][:, start + 1:]).sum() / n_tok
        loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.eval()


def _config(micro: int, bucketing: bool, sharing: bool = False) -> TrainConfig:
    kw = dict(micro_batch_size=micro, lr=1e-7, kl_coef=0.0, entropy_coef=0.0, ppo_epochs=1, mini_batches=1)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if "length_bucketing" in fields:
        kw["length_bucketing"] = bucketing
    if "prefix_sharing" in fields:
        kw["prefix_sharing"] = sharing
    return TrainConfig(**kw)


def packed_logprob_error(model, seqs: list[TokenSequence], micro: int, pad_id: int) -> float | None:
    """Largest absolute difference between the packed and padded log-probs of the policy tokens (None for
    versions without prefix sharing)."""
    if "prefix_sharing" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        return None
    from rlvr.agents.trainer.update import sequence_logprobs

    got = [sequence_logprobs(model, seqs, range(len(seqs)), _config(micro, True, sharing), pad_id=pad_id,
                             device=torch.device("cpu")) for sharing in (False, True)]
    return max(float(((got[0][i] - got[1][i]).abs() * torch.tensor(s.loss_mask)).max()) for i, s in enumerate(seqs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="4 short sequences, one repeat, no arrival-order rlvr row (under a minute)")
    ap.add_argument("--size", choices=("quick", "small", "full", "grpo"), default=None,
                    help="the sequence set (default full; --quick means quick; grpo: 2 tasks x 4 rollouts sharing "
                         "their prompt)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per row (default 2, quick 1)")
    ap.add_argument("--micro-batch-size", type=int, default=None, help="default 4 (quick 2)")
    ap.add_argument("--skip-unbucketed", action="store_true", help="leave out the rlvr (no bucketing) row")
    ap.add_argument("--label", default="", help="a name for this run in the JSON (e.g. before / after)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_update.json"))
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    micro = args.micro_batch_size or (4 if args.size in (None, "full", "grpo") and not args.quick else 2)

    model, tok = load_model("smollm2", device="cpu", dtype=torch.float32)
    pad = tok.pad_token_id
    size = args.size or ("quick" if args.quick else "full")
    args.quick = size == "quick"
    seqs = grpo_sequences(tok) if size == "grpo" else bench_sequences(tok, size)
    fill_rollout_logprobs(model, seqs, pad)
    adv = [[(1.0 if k % 2 else -1.0) * m for m in s.loss_mask] for k, s in enumerate(seqs)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7)
    tokens = sum(len(s) for s in seqs)
    arrival = [seqs[i:i + micro] for i in range(0, len(seqs), micro)]
    cpu = torch.device("cpu")

    def rlvr_row(bucketing: bool, sharing: bool = False):
        def run():
            gen = torch.Generator().manual_seed(0)
            return ppo_update(model, optimizer, seqs, adv, _config(micro, bucketing, sharing), pad_id=pad,
                              device=cpu, generator=gen)
        return run

    rows = {"bare": lambda: bare_update(model, optimizer, seqs, micro, pad),
            "rlvr (no bucketing)": rlvr_row(False), "rlvr": rlvr_row(True),
            "rlvr (prefix sharing)": rlvr_row(True, True)}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if "length_bucketing" not in fields or args.quick or args.skip_unbucketed or size == "grpo":
        rows.pop("rlvr (no bucketing)")
    if "prefix_sharing" not in fields:
        rows.pop("rlvr (prefix sharing)")
    times: dict[str, list[float]] = {k: [] for k in rows}
    padding = {"bare": padding_share(arrival)}
    shared: dict[str, float] = {"bare": 0.0}
    activations: dict[str, float] = {}
    row_stats: dict[str, dict[str, float]] = {}
    last_stats: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            if isinstance(out, dict):
                last_stats = row_stats[name] = out
                padding[name] = out.get("perf/padding_frac", float("nan"))
                shared[name] = out.get("perf/prefix_shared_frac", 0.0)
                activations[name] = out.get("mem/activations_mb", float("nan"))
    bare_tps = tokens / statistics.median(times["bare"])
    results = []
    print(f"\n{len(seqs)} sequences, {tokens} tokens ({sum(s.num_policy_tokens for s in seqs)} policy), lengths "
          f"{[len(s) for s in seqs]}, micro-batch {micro}, {repeats} repeat(s), torch threads "
          f"{torch.get_num_threads()}\n")
    print("| path | s / update | tokens/s | x bare | padding | shared | saved act. MB |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name in rows:
        med = statistics.median(times[name])
        tps = tokens / med
        act = activations.get(name)
        results.append({"path": name, "seconds": med, "all_seconds": times[name], "tokens_per_s": tps,
                        "ratio_to_bare": tps / bare_tps, "padding": padding[name], "prefix_shared": shared[name],
                        "activations_mb": act})
        print(f"| {name} | {med:.2f} | {tps:.1f} | {tps / bare_tps:.2f} | {padding[name]:.1%} | {shared[name]:.1%} | "
              f"{'-' if act is None else f'{act:.0f}'} |")
    error = packed_logprob_error(model, seqs, micro, pad)
    if error is not None:
        print(f"\npacked vs padded log-probs of the policy tokens: max |difference| {error:.2e}")
    memory = _memory(model, optimizer, row_stats.get("rlvr", last_stats))
    if memory:
        print("\nmemory of the update (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    record = {"label": args.label, "quick": args.quick, "size": size, "sequences": len(seqs), "tokens": tokens,
              "lengths": [len(s) for s in seqs], "micro_batch_size": micro, "repeats": repeats, "rows": results,
              "update_stats": last_stats, "row_stats": row_stats,
              "packed_logprob_max_abs_diff": error, "memory_mb": memory, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")


def _memory(model, optimizer, stats: dict[str, float]) -> dict[str, float]:
    """The update's memory breakdown (MB): weights, gradients, optimiser state, reference
    (:func:`rlvr.agents.trainer.memory.model_memory`), activations saved for backward and logits of the
    largest micro-batch (the update's ``mem/*`` statistics); empty for versions without them."""
    try:
        from rlvr.agents.trainer.memory import model_memory
    except ImportError:
        return {}
    mem = {**model_memory(model, optimizer), **{k: v for k, v in stats.items() if k.startswith("mem/")}}
    return {k.removeprefix("mem/").removesuffix("_mb"): v for k, v in mem.items()}


if __name__ == "__main__":
    main()
