"""Rollout throughput against bare ``model.generate``, and prefill tokens per generated token with and
without prefix reuse, side by side in one run.

For each environment (GuessNumber, DeepSearch 1-hop) and the same batch size and token budget:

* ``generate``: bare ``model.generate`` sampling ``--new-tokens`` tokens for ``--batch`` copies of the
  environment's first prompts (left-padded, no end token: every row generates the whole budget);
* ``before``: :func:`rlvr.rollout` with ``HFAgent(decoding="generate")``, the lock-step loop (every
  conversation generates, then every environment steps; every turn prefills its whole context);
* ``own reuse``: :func:`rlvr.rollout` with the continuous-batching engine, each conversation reusing only
  its own KV cache between turns (``prefix_cache_tokens=0``);
* ``after``: the same with the shared prompt-prefix cache (the default): an episode's first prompt is
  also copied from any other cached sequence (other episodes, running rows, released first prompts).

Rollout tokens/s count the generated tokens of every turn over the rollout's wall time (environment
steps and tokenisation included). The agent is the trainer's token-exact HFAgent (later turns extend
the earlier turns' ids). The prefill tables run ``--turns``-turn GuessNumber episodes (a range too
wide to be guessed) with the engine: without any reuse, with each conversation's own cache only, and
with the shared prefix cache, once for distinct tasks (one seed per episode) and once for one GRPO
group (``--episodes`` episodes of one task; ``--quick`` runs this one only), and check that all
produce the same tokens. The floor column is what the later turns' new tokens (observation and chat
template) alone cost per generated token: no cache can go below it. The untrained model's turns are
mostly malformed calls, so its later turns bring format-error observations; an RL run starts from the
behaviour-cloning warm start, which plays the game, so the prefill tables run again after ``--warm-start``
steps of the trainer's warm start on oracle demonstrations (the default run; ``--quick`` skips them).

Usage: python benchmarks/bench_rollout.py [--quick] [--batch 8] [--new-tokens 32] [--episodes 8] [--threads N]
       [--warm-start 6] [--warm-episodes 8]
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
                prefix_cache_tokens: int = 2048, seeds: list[int] | None = None, batch: int, new_tokens: int,
                episodes: int, temperature: float) -> tuple[dict, list]:
    agent = TokenExactHFAgent(model, tokenizer, temperature=temperature, max_new_tokens=new_tokens, seed=0,
                              batch_size=batch, decoding=decoding, prefix_reuse=prefix_reuse,
                              prefix_cache_tokens=prefix_cache_tokens)
    t0 = time.perf_counter()
    trajs = rollout(env_id, agent, episodes=episodes, seed=0, seeds=seeds, concurrency=batch, env_kwargs=kwargs)
    dt = time.perf_counter() - t0
    print(f"  {env_id} decoding={decoding} prefix_reuse={prefix_reuse} prefix_cache_tokens={prefix_cache_tokens}: "
          f"{dt:.1f} s", file=sys.stderr)
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
    later = max(1, turns - len(trajs))
    return ({"tokens": gen, "seconds": dt, "tokens_per_s": gen / dt, "turns": turns,
             "turns_per_episode": turns / max(1, len(trajs)), "prefill_tokens": st["prefill_tokens"],
             "reused_tokens": st["reused_tokens"], "shared_tokens": st["shared_tokens"],
             "prefill_per_generated": st["prefill_tokens"] / max(1, gen),
             "fresh_tokens": fresh, "first_prompt_tokens": first,
             "first_prompt_tokens_per_episode": first / max(1, len(trajs)),
             "observation_tokens_per_later_turn": (fresh - first) / later,
             "generated_tokens_per_turn": gen / max(1, turns),
             "observations_per_generated": (fresh - first) / max(1, gen),
             "later_turns_prefill_per_generated": (st["prefill_tokens"] - first) / max(1, gen),
             "reprefilled_per_generated": (st["prefill_tokens"] + st["shared_tokens"] - fresh) / max(1, gen),
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
    ap.add_argument("--warm-start", type=int, default=6, metavar="STEPS",
                    help="behaviour-cloning steps before the prefill tables run again with the warm-started policy "
                         "(0: none; --quick: none)")
    ap.add_argument("--warm-episodes", type=int, default=8, help="oracle demonstrations of the warm start")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_rollout.json"))
    args = ap.parse_args()
    if args.quick:
        args.batch, args.new_tokens, args.episodes, args.turns, args.warm_start = 2, 12, 2, 4, 0
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
        for label, decoding, cache in (("before", "generate", 0), ("own_reuse", "continuous", 0),
                                       ("after", "continuous", 2048)):
            row[label], trajs = run_rollout(model, tokenizer, env_id, kw, decoding=decoding, batch=args.batch,
                                            prefix_cache_tokens=cache, new_tokens=args.new_tokens,
                                            episodes=args.episodes, temperature=args.temperature)
            row[label]["ratio_to_generate"] = row[label]["tokens_per_s"] / row["generate"]["tokens_per_s"]
            row.setdefault("trajs", []).append(trajs)
        runs = row.pop("trajs")
        row["same_tokens_before_after"] = all(same_tokens(runs[0], r) for r in runs[1:])
        results["throughput"][name] = row
    env_id, kw = "rlvr/GuessNumber-v0", {"high": 10**9, "max_turns": args.turns}
    group = args.episodes
    tasks = {"distinct": (max(1, args.episodes // 2), None, (("without_reuse", False, 0), ("own_reuse", True, 0),
                                                               ("shared", True, 2048))),
             "group": (group, [0] * group, (("own_reuse", True, 0), ("shared", True, 2048)))}
    if args.quick:  # under a minute: the group table only (with one distinct episode nothing is shared)
        del tasks["distinct"]
    results["prefill"] = prefill_tables(model, tokenizer, env_id, kw, tasks, args)
    if args.warm_start:  # last: it trains the model the tables above measured
        results["warm_start"] = warm_start(model, tokenizer, env_id, kw, args.warm_start, args.warm_episodes)
        results["prefill_warm"] = prefill_tables(model, tokenizer, env_id, kw, tasks, args)
    print_tables(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def prefill_tables(model, tokenizer, env_id: str, kw: dict, tasks: dict, args) -> dict:
    """Per mode (distinct tasks, one GRPO group): the prefill figures of each reuse setting, and whether they
    all produced the same tokens."""
    tables = {}
    for mode, (episodes, seeds, configs) in tasks.items():
        prefill, runs = {}, []
        for label, reuse, cache in configs:
            prefill[label], trajs = run_rollout(model, tokenizer, env_id, kw, decoding="continuous",
                                                prefix_reuse=reuse, prefix_cache_tokens=cache, seeds=seeds,
                                                batch=args.batch, new_tokens=args.new_tokens, episodes=episodes,
                                                temperature=args.temperature)
            runs.append(trajs)
        prefill["same_tokens"] = all(same_tokens(runs[0], r) for r in runs[1:])
        prefill["episodes"] = episodes
        tables[mode] = prefill
    return tables


def warm_start(model, tokenizer, env_id: str, kw: dict, steps: int, episodes: int) -> dict:
    """Behaviour-clone the oracle as the trainer's warm start does (``steps`` AdamW steps, lr 3e-5, on
    ``episodes`` demonstrations of the prefill table's game): the policy an RL run starts from plays the game,
    so its later turns bring the game's short replies, not the format errors the untrained model provokes."""
    from rlvr.agents.trainer.sft import SFT_SEED_OFFSET, demonstration_sequences, sft_warmup

    t0 = time.perf_counter()
    demos = demonstration_sequences(env_id, kw, tokenizer, episodes, SFT_SEED_OFFSET)
    losses = sft_warmup(model, demos, steps=steps, lr=3e-5, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
                        optimizer="adamw_bf16", logit_chunk_tokens=64)
    model.eval()
    dt = time.perf_counter() - t0
    print(f"  warm start: {episodes} oracle episodes, {steps} steps, NLL {losses[0]:.3f} -> {losses[-1]:.3f}, "
          f"{dt:.1f} s", file=sys.stderr)
    return {"steps": steps, "episodes": episodes, "lr": 3e-5, "nll_before": losses[0], "nll_after": losses[-1],
            "seconds": dt}


def print_tables(r: dict) -> None:
    c = r["config"]
    print(f"\nRollout throughput: SmolLM2-135M fp32 CPU ({c['torch_threads']} threads), batch {c['batch']}, "
          f"{c['new_tokens']} new tokens per turn, {c['episodes']} episodes")
    print(f"{'env':<16} {'path':<30} {'tok/s':>7} {'x generate':>10} {'turns':>6} {'prefill/gen':>11}")
    for name, row in r["throughput"].items():
        g = row["generate"]
        print(f"{name:<16} {'bare generate':<30} {g['tokens_per_s']:7.1f} {1.0:10.2f} {'':>6} {'':>11}")
        for label, desc in (("before", "before: lock-step generate"), ("own_reuse", "continuous + own-cache reuse"),
                            ("after", "after: + shared prefix cache")):
            x = row[label]
            print(f"{'':<16} {desc:<30} {x['tokens_per_s']:7.1f} {x['ratio_to_generate']:10.2f} {x['turns']:6d} "
                  f"{x['prefill_per_generated']:11.2f}")
        print(f"{'':<16} same tokens in all three paths: {row['same_tokens_before_after']}")
    for key, policy in (("prefill", "untrained model"), ("prefill_warm", "warm-started policy")):
        if key not in r:
            continue
        if key == "prefill_warm":
            w = r["warm_start"]
            print(f"\nWarm start: {w['steps']} behaviour-cloning steps on {w['episodes']} oracle episodes, NLL "
                  f"{w['nll_before']:.3f} -> {w['nll_after']:.3f} ({w['seconds']:.0f} s)")
        for mode, title in (("distinct", "distinct tasks"), ("group", "one task, a GRPO group")):
            if mode not in r[key]:
                continue
            p = r[key][mode]
            print(f"\nPrefill tokens per generated token, {policy}, GuessNumber, up to {c['turns']} turns, "
                  f"{p['episodes']} episodes of {title} (continuous engine)")
            print(f"{'reuse':<14} {'turns/ep':>8} {'prefill':>8} {'own':>7} {'shared':>7} {'generated':>9} "
                  f"{'prefill/gen':>11} {'floor':>6} {'re-prefill':>10} {'tok/s':>7}")
            for label in ("without_reuse", "own_reuse", "shared"):
                if label not in p:
                    continue
                x = p[label]
                print(f"{label:<14} {x['turns_per_episode']:8.1f} {x['prefill_tokens']:8d} {x['reused_tokens']:7d} "
                      f"{x['shared_tokens']:7d} {x['tokens']:9d} {x['prefill_per_generated']:11.2f} "
                      f"{x['observations_per_generated']:6.2f} {x['reprefilled_per_generated']:10.2f} "
                      f"{x['tokens_per_s']:7.1f}")
            x = p["shared"]
            print(f"first prompt {x['first_prompt_tokens_per_episode']:.0f} tokens; later turns add "
                  f"{x['observation_tokens_per_later_turn']:.1f} new tokens each (observation and chat template) for "
                  f"{x['generated_tokens_per_turn']:.1f} generated; same tokens in all: {p['same_tokens']}")
    print("prefill/gen: prefilled tokens per generated token; own/shared: tokens copied from the conversation's own "
          "cache / the shared prefix cache; floor: the later turns' new tokens alone per generated token; "
          "re-prefill: tokens prefilled again although their conversation had seen them")


if __name__ == "__main__":
    main()
