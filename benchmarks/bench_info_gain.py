"""Information-gain scoring: KV-cached (one prefix pass, short probe passes) vs naive (one full pass
per turn boundary), side by side on the same multi-turn trajectories.

Trajectories are real GuessNumber episodes played by the oracle (binary search), tokenised
token-exactly through SmolLM2's chat template; the ground-truth answer is the secret number, scored
after the prefix ``<answer>``. Checks that both methods give the same values (mean log-probs and
the gains, to 1e-4) and reports the wall-time ratio.

Usage: python benchmarks/bench_info_gain.py [--model smollm2|tiny] [--trajectories 8] [--high 1000]
Prints a table and writes benchmarks/results/info_gain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import rlvr  # noqa: F401
from rlvr.agents.trainer.sequences import TemplateRenderer, build_sequence
from rlvr.agents.trajectory import Trajectory, Turn
from rlvr.envs.guess_number import GuessNumberEnv
from rlvr.rewards.info_gain import answer_logprobs_cached, answer_logprobs_naive, information_gain


def oracle_sequences(tokenizer, n: int, high: int):
    """Token-exact sequences of ``n`` oracle GuessNumber episodes, their boundaries and answers."""
    renderer = TemplateRenderer(tokenizer)
    seqs, bounds, answers = [], [], []
    for seed in range(n):
        env = GuessNumberEnv(low=1, high=high)
        obs, info = env.reset(seed=seed)
        prompt = tokenizer.apply_chat_template(obs, add_generation_prompt=True, tokenize=False)
        traj = Trajectory("rlvr/GuessNumber-v0", info["task_id"], seed, obs, reset_info=info)
        done = False
        while not done:
            action = env.oracle_action()
            o, r, term, trunc, step_info = env.step(action)
            ids = tokenizer(action, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            traj.turns.append(Turn(len(traj.turns), action, o, r, step_info["reward_components"],
                                   prompt_ids=tokenizer(prompt, add_special_tokens=False)["input_ids"],
                                   completion_ids=ids, logprobs=[0.0] * len(ids)))
            done = term or trunc
        seq = build_sequence(traj, renderer)
        seqs.append(seq.input_ids)
        bounds.append(seq.boundaries)
        answers.append(tokenizer(info["answer"], add_special_tokens=False)["input_ids"])
    return seqs, bounds, answers


def load(model_name: str):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rlvr.agents.models import load_model, resolve_model_path

    if model_name == "tiny":
        tok = AutoTokenizer.from_pretrained(resolve_model_path("smollm2"))
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192)
        return LlamaForCausalLM(cfg).eval(), tok
    model, tok = load_model(model_name, device="cpu", dtype=torch.float32)
    return model.eval(), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="smollm2 (default), tiny, or a model path / id")
    ap.add_argument("--trajectories", type=int, default=8)
    ap.add_argument("--high", type=int, default=1000, help="GuessNumber range: more turns for larger values")
    ap.add_argument("--batch-size", type=int, default=8, help="trajectories per cached prefix pass")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "info_gain.json"))
    ap.add_argument("--quick", action="store_true", help="under a minute: 4 trajectories over 1..100")
    args = ap.parse_args()
    if args.quick:
        args.trajectories, args.high, args.batch_size = 4, 100, 4

    model, tok = load(args.model)
    prefix = tok("<answer>", add_special_tokens=False)["input_ids"]
    seqs, bounds, answers = oracle_sequences(tok, args.trajectories, args.high)
    with torch.no_grad():  # warm-up (allocator, kernels)
        answer_logprobs_cached(model, seqs[:1], [bounds[0][:1]], prefix, answers[:1])
    t0 = time.perf_counter()
    naive = answer_logprobs_naive(model, seqs, bounds, prefix, answers)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = answer_logprobs_cached(model, seqs, bounds, prefix, answers, batch_size=args.batch_size)
    t_cached = time.perf_counter() - t0

    lp_diff = max(abs(a - b) for ra, rb in zip(naive, cached) for a, b in zip(ra, rb))
    ig_diff = max((abs(a - b) for ra, rb in zip(naive, cached)
                   for a, b in zip(information_gain(ra), information_gain(rb))), default=0.0)
    boundaries = sum(len(b) for b in bounds)
    tokens = sum(len(s) for s in seqs)
    rows = [("naive (full pass per boundary)", t_naive, 1.0), ("cached (prefix pass + probes)", t_cached,
                                                                t_naive / t_cached)]
    print(f"model={args.model}  trajectories={len(seqs)}  boundaries={boundaries}  "
          f"mean length={tokens / len(seqs):.0f} tokens  probe={len(prefix)}+answer tokens  "
          f"threads={torch.get_num_threads()}")
    print(f"{'method':34s} {'wall s':>9s} {'speedup':>8s}")
    for name, t, r in rows:
        print(f"{name:34s} {t:9.2f} {r:7.2f}x")
    print(f"max |mean log-prob diff| = {lp_diff:.2e}   max |IG diff| (prob_diff) = {ig_diff:.2e}   "
          f"{'OK' if max(lp_diff, ig_diff) < 1e-4 else 'MISMATCH'} (tolerance 1e-4)")
    result = {
        "benchmark": "info_gain", "model": args.model, "trajectories": len(seqs), "boundaries": boundaries,
        "mean_tokens": tokens / len(seqs), "batch_size": args.batch_size, "naive_s": t_naive, "cached_s": t_cached,
        "speedup": t_naive / t_cached, "max_abs_logprob_diff": lp_diff, "max_abs_ig_diff": ig_diff,
        "equal_within_1e-4": max(lp_diff, ig_diff) < 1e-4, "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(), "torch": torch.__version__, "load_average_1min": os.getloadavg()[0],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
