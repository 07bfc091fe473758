"""Rollout throughput against bare ``model.generate``, and prefill tokens per generated token with and
without prefix reuse, side by side in one run.

For each environment (GuessNumber, DeepSearch 1-hop) and the same batch size and token budget:

* ``generate``: bare ``model.generate`` sampling ``--new-tokens`` tokens for ``--batch`` copies of the
  environment's first prompts (left-padded, no end token: every row generates the whole budget);
* ``before``: :func:`rlvr.rollout` with ``HFAgent(decoding="generate")``, the lock-step loop (every
  conversation generates, then every environment steps; every turn prefills its whole context);
* ``after``: :func:`rlvr.rollout` with the continuous-batching engine and prefix reuse (the default).

Rollout tokens/s count the generated tokens of every turn over the rollout's wall time (environment
steps and tokenisation included). The agent is the trainer's token-exact HFAgent (later turns extend
the earlier turns' ids). The prefill table runs ``--turns``-turn GuessNumber episodes (a range too
wide to be guessed) with the engine, with and without prefix reuse, and checks that both produce the
same tokens.

Usage: python benchmarks/bench_rollout.py [--quick] [--batch 8] [--new-tokens 32] [--episodes 8] [--threads N]
Prints a table and writes benchmarks/results/bench_rollout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch

import rlvr  # noqa: F401  (registers the env ids)
from rlvr.agents.hf import chat_prompt_ids
from rlvr.agents.rollout import rollout
from rlvr.agents.trainer.backends import TokenExactHFAgent

ENVS = {"GuessNumber": ("rlvr/GuessNumber-v0", {"max_turns": 4}),
        "DeepSearch-1hop": ("rlvr/DeepSearch-v0", {"hops": 1, "max_turns": 4})}


def first_prompts(tokenizer, env_id: str, kwargs: dict, n: int) -> list[list[int]]:
    env = gym.make(env_id, **kwargs)
    try:
        return [chat_prompt_ids(tokenizer, env.reset(seed=s)[0]) for s in range(n)]
    finally:
        env.close()


def bare_generate(model, tokenizer, prompts: list[list[int]], new_tokens: int, temperature: float) -> dict:
    """Tokens/s of one sampling ``model.generate`` over left-padded ``prompts``, exactly ``new_tokens`` each."""
    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_p=1.0,
                             top_k=0, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad)
    dt = time.perf_counter() - t0
    n = int((out.shape[1] - width) * len(prompts))
    return {"tokens": n, "seconds": dt, "tokens_per_s": n / dt}


def run_rollout(model, tokenizer, env_id: str, kwargs: dict, *, decoding: str, prefix_reuse: bool = True,
                batch: int, new_tokens: int, episodes: int, temperature: float) -> tuple[dict, list]:
    agent = TokenExactHFAgent(model, tokenizer, temperature=temperature, max_new_tokens=new_tokens, seed=0,
                              batch_size=batch, decoding=decoding, prefix_reuse=prefix_reuse)
    t0 = time.perf_counter()
    trajs = rollout(env_id, agent, episodes=episodes, seed=0, concurrency=batch, env_kwargs=kwargs)
    dt = time.perf_counter() - t0
    print(f"  {env_id} decoding={decoding} prefix_reuse={prefix_reuse}: {dt:.1f} s", file=sys.stderr)
    st = agent.decode_stats
    gen = st["generated_tokens"]
    turns = sum(t.num_turns for t in trajs)
    # every token the model must see once: the first prompt, then what each later prompt adds to the
    # previous prompt and completion (the observation and the chat template around it)
    fresh = 0
    for t in trajs:
        prev = None
        for u in t.turns:
            if u.prompt_ids is None:
                continue
            fresh += len(u.prompt_ids) - (len(prev.prompt_ids) + len(prev.completion_ids) if prev else 0)
            prev = u
    first = sum(len(t.turns[0].prompt_ids) for t in trajs if t.turns and t.turns[0].prompt_ids)
    return ({"tokens": gen, "seconds": dt, "tokens_per_s": gen / dt, "turns": turns,
             "turns_per_episode": turns / max(1, len(trajs)), "prefill_tokens": st["prefill_tokens"],
             "reused_tokens": st["reused_tokens"], "prefill_per_generated": st["prefill_tokens"] / max(1, gen),
             "fresh_tokens": fresh, "first_prompt_tokens": first,
             "later_turns_prefill_per_generated": (st["prefill_tokens"] - first) / max(1, gen),
             "reprefilled_per_generated": (st["prefill_tokens"] - fresh) / max(1, gen),
             "step_s": sum(u.timings["step_s"] for t in trajs for u in t.turns)}, trajs)


def same_tokens(a: list, b: list) -> bool:
    return all([u.completion_ids for u in x.turns] == [u.completion_ids for u in y.turns] for x, y in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--turns", type=int, default=8, help="turns per episode of the prefill table")
    ap.add_argument("--rollout-turns", type=int, default=4, help="turn budget of the throughput episodes")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_rollout.json"))
    args = ap.parse_args()
    if args.quick:
        args.batch, args.new_tokens, args.episodes, args.turns = 2, 12, 2, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    from rlvr.agents.models import load_model

    model, tokenizer = load_model("smollm2", device="cpu")
    model = model.float().eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    results: dict = {"config": {**vars(args), "model": "smollm2 (SmolLM2-135M-Instruct)", "dtype": "float32",
                                "device": "cpu", "torch_threads": torch.get_num_threads(),
                                "cpus": os.cpu_count(), "platform": platform.platform()}, "throughput": {}}
    for name, (env_id, kwargs) in ENVS.items():
        kw = dict(kwargs, max_turns=2 if args.quick else args.rollout_turns)
        prompts = first_prompts(tokenizer, env_id, kw, args.batch)
        row = {"generate": bare_generate(model, tokenizer, prompts, args.new_tokens, args.temperature),
               "prompt_tokens": sum(map(len, prompts)) / len(prompts)}
        for label, decoding in (("before", "generate"), ("after", "continuous")):
            row[label], trajs = run_rollout(model, tokenizer, env_id, kw, decoding=decoding, batch=args.batch,
                                            new_tokens=args.new_tokens, episodes=args.episodes,
                                            temperature=args.temperature)
            row[label]["ratio_to_generate"] = row[label]["tokens_per_s"] / row["generate"]["tokens_per_s"]
            row.setdefault("trajs", []).append(trajs)
        row["same_tokens_before_after"] = same_tokens(*row.pop("trajs"))
        results["throughput"][name] = row
    env_id, kw = "rlvr/GuessNumber-v0", {"high": 10**9, "max_turns": args.turns}
    prefill = {}
    runs = []
    for label, reuse in (("without_reuse", False), ("with_reuse", True)):
        prefill[label], trajs = run_rollout(model, tokenizer, env_id, kw, decoding="continuous", prefix_reuse=reuse,
                                            batch=args.batch, new_tokens=args.new_tokens,
                                            episodes=max(1, args.episodes // 2), temperature=args.temperature)
        runs.append(trajs)
    prefill["same_tokens"] = same_tokens(*runs)
    results["prefill"] = prefill
    print_tables(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def print_tables(r: dict) -> None:
    c = r["config"]
    print(f"\nRollout throughput: SmolLM2-135M fp32 CPU ({c['torch_threads']} threads), batch {c['batch']}, "
          f"{c['new_tokens']} new tokens per turn, {c['episodes']} episodes")
    print(f"{'env':<16} {'path':<26} {'tok/s':>7} {'x generate':>10} {'turns':>6} {'prefill/gen':>11}")
    for name, row in r["throughput"].items():
        g = row["generate"]
        print(f"{name:<16} {'bare generate':<26} {g['tokens_per_s']:7.1f} {1.0:10.2f} {'':>6} {'':>11}")
        for label, desc in (("before", "before: lock-step generate"), ("after", "after: continuous + reuse")):
            x = row[label]
            print(f"{'':<16} {desc:<26} {x['tokens_per_s']:7.1f} {x['ratio_to_generate']:10.2f} {x['turns']:6d} "
                  f"{x['prefill_per_generated']:11.2f}")
        print(f"{'':<16} same tokens before/after: {row['same_tokens_before_after']}")
    p = r["prefill"]
    print(f"\nPrefill tokens per generated token, GuessNumber, up to {c['turns']} turns (continuous engine)")
    print(f"{'prefix reuse':<14} {'turns/ep':>8} {'prefill':>8} {'reused':>8} {'generated':>9} {'prefill/gen':>11} "
          f"{'turns>1':>8} {'re-prefill':>10} {'tok/s':>7}")
    for label in ("without_reuse", "with_reuse"):
        x = p[label]
        print(f"{label:<14} {x['turns_per_episode']:8.1f} {x['prefill_tokens']:8d} {x['reused_tokens']:8d} "
              f"{x['tokens']:9d} {x['prefill_per_generated']:11.2f} {x['later_turns_prefill_per_generated']:8.2f} "
              f"{x['reprefilled_per_generated']:10.2f} {x['tokens_per_s']:7.1f}")
    print("prefill/gen: all prefilled tokens per generated token; turns>1: without the first prompts; re-prefill: "
          "tokens prefilled again although the model had seen them (the first prompt and the observations are new)")
    print(f"same tokens with and without reuse: {p['same_tokens']}")


if __name__ == "__main__":
    main()
