"""Turn-aware GRPO: the training loop, top to bottom.

One step = (1) roll out ``group_size`` episodes of ``tasks_per_step`` tasks with the current policy,
(2) build token-exact sequences, (3) score turns (environment components, gating or information
gain), (4) compute group advantages per turn and broadcast them to the policy's tokens,
(5) PPO-clip update against the rollout log-probs, (6) log, checkpoint. The maths lives in
:mod:`~rlvr.agents.trainer.advantages`, :mod:`~rlvr.agents.trainer.losses`,
:mod:`~rlvr.agents.trainer.sequences` and :mod:`~rlvr.agents.trainer.batch`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from rlvr.agents.rollout import rollout, summarize
from rlvr.agents.trainer.backends import HFBackend, VLLMBackend
from rlvr.agents.trainer.batch import advantage_stats, drop_infra_groups, group_advantages, reward_tables
from rlvr.agents.trainer.config import RewardScheme, TrainConfig
from rlvr.agents.trainer.losses import aggregate, entropy_from_logits, k3_kl, ppo_clip_loss, token_logprobs_from_logits
from rlvr.agents.trainer.records import (MetricsLog, latest_checkpoint, load_checkpoint, peak_memory_mb,
                                         plot_metrics, save_checkpoint)
from rlvr.agents.trainer.sft import SFT_SEED_OFFSET, demonstration_sequences, sft_warmup
from rlvr.agents.trainer.sequences import (TemplateRenderer, TokenSequence, broadcast_turn_values, build_sequence,
                                           collate)
from rlvr.agents.trajectory import Trajectory, TrajectoryWriter
from rlvr.errors import ConfigError, RLVRError
from rlvr.rewards.info_gain import InformationGain

__all__ = ["TrainResult", "train", "train_main", "ppo_update", "task_seeds", "EVAL_SEED_OFFSET"]

EVAL_SEED_OFFSET = 1_000_000  # evaluation tasks use seeds far from the training ones


@dataclass
class TrainResult:
    """What a run produced: its folder, the per-step metrics and the evaluations."""

    output_dir: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval_before: dict[str, Any] | None = None
    eval_warmup: dict[str, Any] | None = None
    """Evaluation after the behaviour-cloning warm start (when there is one)."""
    eval_after: dict[str, Any] | None = None
    warmup_losses: list[float] = field(default_factory=list)


def task_seeds(config: TrainConfig, step: int) -> list[int]:
    """Seeds of the tasks of ``step``, each repeated ``group_size`` times (one group per task)."""
    base = config.seed * 7919 + step * config.tasks_per_step
    return [base + p for p in range(config.tasks_per_step) for _ in range(config.group_size)]


class _SeedMap(gym.Wrapper):
    """Resets episode ``k`` with ``seeds[k]`` so the rollouts of one group share a task."""

    def __init__(self, env: gym.Env, seeds: list[int]) -> None:
        super().__init__(env)
        self._seeds = seeds

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return self.env.reset(seed=self._seeds[seed or 0], options=options)


def collect_groups(config: TrainConfig, agent: Any, seeds: list[int], env_kwargs: dict[str, Any]) -> list[Trajectory]:
    """Roll out one episode per entry of ``seeds`` (all at once, generation batched across them)."""
    factory = lambda: _SeedMap(gym.make(config.env, **env_kwargs), seeds)  # noqa: E731
    trajs = rollout(factory, agent, episodes=len(seeds), seed=0, concurrency=len(seeds))
    for k, t in enumerate(trajs):  # record the task seed each episode really used
        t.seed = seeds[k]
        if t.repro is not None:
            t.repro.seed = seeds[k]
    return trajs


def _device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device='cuda' but no CUDA device is visible; use --device cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def _autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _policy_logits(model: Any, batch: dict[str, torch.Tensor], temperature: float, autocast: Callable,
                   start: int) -> torch.Tensor:
    """Logits of positions ``start..L-1`` only (earlier ones predict prompt tokens nobody trains on),
    scaled by the sampling temperature: the rollout log-probs are those of ``softmax(logits / T)``."""
    keep = batch["input_ids"].shape[1] - start
    with autocast():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                       logits_to_keep=keep).logits
    return logits.float() / temperature


def _token_stats(logits: torch.Tensor, input_ids: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs and entropies ``[B, L]`` from logits of positions ``start..``; zeros before."""
    pad = (start, 0)
    logp = torch.nn.functional.pad(token_logprobs_from_logits(logits, input_ids[:, start:]), pad)
    ent = torch.nn.functional.pad(entropy_from_logits(logits), pad)
    return logp, ent


def ppo_update(model: Any, optimizer: torch.optim.Optimizer, seqs: list[TokenSequence], token_adv: list[list[float]],
               config: TrainConfig, *, pad_id: int, device: torch.device, autocast: Callable = contextlib.nullcontext,
               ref_model: Any = None, norm_length: float | None = None, generator: torch.Generator | None = None,
               ) -> dict[str, float]:
    """PPO-clip epochs over a step's sequences: mini-batches, gradient accumulation over micro-batches,
    gradient clipping; returns token-weighted loss statistics of the first epoch and the grad norm."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    agg = config.effective_loss_aggregation
    sums: dict[str, float] = {}
    n_tok_first = 0.0
    grad_norms: list[float] = []
    for epoch in range(config.ppo_epochs):
        order = torch.randperm(len(seqs), generator=generator).tolist()
        for mb in np.array_split(np.array(order, dtype=int), min(config.mini_batches, len(seqs))):
            num_tokens = float(sum(seqs[i].num_policy_tokens for i in mb))
            if num_tokens == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            for start in range(0, len(mb), config.micro_batch_size):
                idx = [int(i) for i in mb[start : start + config.micro_batch_size]]
                batch = collate([seqs[i] for i in idx], pad_id, [token_adv[i] for i in idx], device=device)
                norm = dict(num_tokens=num_tokens, num_seqs=float(len(mb)), norm_length=norm_length)
                mask = batch["loss_mask"]
                start = max(int(mask.any(0).float().argmax()) - 1, 0)  # first position predicting a policy token
                logits = _policy_logits(model, batch, config.temperature, autocast, start)
                logp, entropy = _token_stats(logits, batch["input_ids"], start)
                out = ppo_clip_loss(logp, batch["old_logprobs"], batch["advantages"], mask, clip_low=config.clip_low,
                                    clip_high=config.clip_high, aggregation=agg, **norm)
                if config.entropy_coef == 0:
                    entropy = entropy.detach()
                loss = out.loss - config.entropy_coef * aggregate(entropy, mask, agg, **norm)
                kl = torch.zeros((), device=device)
                if ref_model is not None:
                    frozen = ref_model.disable_adapter() if ref_model is model else contextlib.nullcontext()
                    with torch.no_grad(), frozen:
                        ref_logits = _policy_logits(ref_model, batch, config.temperature, autocast, start)
                        ref_logp, _ = _token_stats(ref_logits, batch["input_ids"], start)
                    kl = aggregate(k3_kl(logp, ref_logp), mask, agg, **norm)
                    loss = loss + config.kl_coef * kl
                loss.backward()
                if epoch == 0:
                    n = float(mask.sum())
                    n_tok_first += n
                    for key, v in (("loss/policy", out.loss.item() * num_tokens), ("loss/kl", kl.item() * num_tokens),
                                   ("loss/entropy", float((entropy.detach() * mask).sum())),
                                   ("loss/clip_frac", out.clip_fraction.item() * n),
                                   ("loss/ratio_mean", out.ratio_mean.item() * n),
                                   ("loss/approx_kl", out.approx_kl.item() * n)):
                        sums[key] = sums.get(key, 0.0) + v
            max_norm = config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_norm)))
            optimizer.step()
    model.eval()
    stats = {k: v / max(n_tok_first, 1.0) for k, v in sums.items()}
    stats["loss/grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
    return stats


def _load_policy(config: TrainConfig, device: torch.device, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    if model is None:
        from rlvr.agents.models import load_model

        model, tokenizer = load_model(config.model, device=str(device), dtype=torch.float32)
    elif tokenizer is None:
        raise ConfigError("train(model=...) also needs tokenizer=")
    model.to(device)
    if config.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                                 lora_dropout=config.lora_dropout, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def evaluate(model: Any, tokenizer: Any, config: TrainConfig, env_kwargs: dict[str, Any], out: Path,
             autocast: Callable) -> dict[str, Any]:
    """Greedy episodes on held-out seeds; trajectories go to ``out/trajectories.jsonl``."""
    from rlvr.agents.hf import HFAgent

    agent = HFAgent(model, tokenizer, max_new_tokens=config.max_new_tokens, temperature=0.0,
                    batch_size=config.rollout_batch_size, max_context=config.max_context)
    model.eval()
    with autocast():
        trajs = rollout(config.env, agent, episodes=config.eval_episodes, seed=EVAL_SEED_OFFSET + config.seed,
                        concurrency=config.eval_episodes, out=out, env_kwargs=env_kwargs)
    return summarize(trajs)


def train(config: TrainConfig, *, model: Any = None, tokenizer: Any = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Run ``config.steps`` training steps (continuing from the latest checkpoint with ``resume``).

    ``model`` / ``tokenizer`` may be given as objects instead of ``config.model`` (tests, custom models).
    """
    say = log or (lambda _msg: None)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config)
    autocast = _autocast(device, config.precision)
    torch.manual_seed(config.seed)
    # configuration errors surface before any model loads: the config checked names at construction,
    # and building the environment once checks its values
    ckpt_root = out / "checkpoints"
    resume_path = latest_checkpoint(ckpt_root) if config.resume else None
    if config.resume and resume_path is None:
        raise ConfigError(f"resume=True but {ckpt_root} holds no checkpoint; drop --resume to start afresh")
    env_kwargs = dict(config.env_kwargs)
    if config.reward_weights:
        env_kwargs["reward_weights"] = dict(config.reward_weights)
    probe = gym.make(config.env, **env_kwargs)
    max_turns = int(getattr(probe.unwrapped, "max_turns", 1))
    # the environment's effective component weights (its defaults, overridden by the config)
    weights = {**getattr(probe.unwrapped, "reward_weights", {}), **config.reward_weights}
    probe.close()
    model, tokenizer = _load_policy(config, device, model, tokenizer)
    norm_length = float(config.max_new_tokens * max_turns)  # Dr.GRPO's constant normaliser
    result = TrainResult(out)
    if resume_path is None:
        if config.eval_episodes:
            result.eval_before = evaluate(model, tokenizer, config, env_kwargs, out / "eval_before", autocast)
            say(f"eval before: {result.eval_before}")
        if config.warmup_sft_steps:  # behaviour cloning of the oracle, then RL from there
            demos = demonstration_sequences(config.env, env_kwargs, tokenizer, config.warmup_sft_episodes,
                                            SFT_SEED_OFFSET + config.seed)
            losses = sft_warmup(model, demos, steps=config.warmup_sft_steps, lr=config.warmup_sft_lr,
                                pad_id=tokenizer.pad_token_id, device=device, autocast=autocast,
                                micro_batch_size=config.micro_batch_size, max_grad_norm=config.max_grad_norm)
            result.warmup_losses = losses
            say(f"warm-up on {len(demos)} oracle episodes: NLL {losses[0]:.3f} -> {losses[-1]:.3f}")
            save_checkpoint(ckpt_root, model, None, 0, config.to_dict(), name="warmup")
            if config.eval_episodes:
                result.eval_warmup = evaluate(model, tokenizer, config, env_kwargs, out / "eval_warmup", autocast)
                say(f"eval after warm-up: {result.eval_warmup}")
    ref_model = None
    if config.kl_coef > 0:  # frozen initial RL policy; with LoRA, adapters disabled (no warm-up then)
        ref_model = model if config.lora else copy.deepcopy(model).requires_grad_(False).eval()
        warm = ckpt_root / "warmup" / "checkpoint.pt"
        if resume_path is not None and config.warmup_sft_steps and not config.lora and warm.is_file():
            load_checkpoint(warm, ref_model, None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    start = 0
    if resume_path is not None:
        start = load_checkpoint(resume_path, model, optimizer)
        say(f"resumed from {resume_path} at step {start}")
    if config.backend == "vllm":
        backend: Any = VLLMBackend(config.model, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                                   top_p=config.top_p, gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                                   max_context=config.max_context, seed=config.seed)
        if start > 0 or config.warmup_sft_steps:  # the engine loaded the weights on disk: sync the policy
            backend.before_update()
            backend.after_update(model)
    else:
        backend = HFBackend(model, tokenizer, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                            top_p=config.top_p, batch_size=config.rollout_batch_size, max_context=config.max_context,
                            seed=config.seed)
    renderer = TemplateRenderer(tokenizer)
    info_gain = None
    if config.reward is RewardScheme.INFO_GAIN:
        info_gain = InformationGain(config.ig_answer_prefix, config.ig_variant, config.ig_method)
    metrics = MetricsLog(out / "metrics.jsonl", resume_from_step=start)
    writer = TrajectoryWriter(out / "trajectories.jsonl") if config.save_trajectories else None
    G = config.group_size

    def close_step(step: int, all_trajs: list, row: dict[str, Any]) -> None:
        """Log the step's metrics, write its trajectories and checkpoint when due."""
        metrics.append(row)
        result.metrics.append(row)
        if writer is not None:
            for t in all_trajs:
                t.reset_info["train_step"] = step
                writer.write(t)
        if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < config.steps:
            save_checkpoint(ckpt_root, model, optimizer, step + 1, config.to_dict())

    try:
        for step in range(start, config.steps):
            t_step = time.perf_counter()
            # 1. rollouts: tasks_per_step groups of G episodes, sampling seeded by the step
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            backend.reseed(config.seed * 1_000_003 + step)
            model.eval()
            with autocast():
                all_trajs = collect_groups(config, backend.agent, task_seeds(config, step), env_kwargs)
            backend.clear()
            rollout_s = time.perf_counter() - t_step
            gen_tokens = sum(len(t.completion_ids or []) for tr in all_trajs for t in tr.turns)
            # episodes ended by an infrastructure failure stay out of the batch, with their whole group
            trajs, infra_stats = drop_infra_groups(all_trajs, G)
            if infra_stats["infra/episodes"]:
                say(f"step {step + 1}: {int(infra_stats['infra/episodes'])} episode(s) ended by an infrastructure "
                    f"failure; {int(infra_stats['infra/groups_dropped'])} group(s) left out of the update")
            if not trajs:  # nothing to learn from this step
                close_step(step, all_trajs, {"step": step, "episodes": len(all_trajs), **infra_stats,
                                             "perf/rollout_s": rollout_s, "perf/step_s": time.perf_counter() - t_step})
                say(f"step {step + 1}/{config.steps}  (every group had an infrastructure failure: no update)")
                continue
            n_groups = len(trajs) // G
            # 2. token-exact sequences
            seqs = [build_sequence(t, renderer) for t in trajs]
            # 3. per-turn rewards (plus information gain per turn boundary)
            t_reward = time.perf_counter()
            gains = None
            if info_gain is not None:
                answers = [t.reset_info.get("answer") for t in trajs]
                if any(a is None for a in answers):
                    raise ConfigError(f"{config.env} gives no ground-truth answer (reset info 'answer'); "
                                      "the info_gain reward needs one")
                with autocast():
                    gains = info_gain(model, tokenizer, [s.input_ids for s in seqs], [s.boundaries for s in seqs],
                                      answers)
            tables = reward_tables(trajs, config, gains, weights)
            reward_s = time.perf_counter() - t_reward
            # 4. group advantages per turn, broadcast to the policy tokens of each turn
            token_counts = np.zeros_like(tables.mask, dtype=float)
            for i, s in enumerate(seqs):
                for t, (a, b) in enumerate(s.turn_spans):
                    token_counts[i, t] = b - a
            per_group, masks = [], []
            for g in range(n_groups):
                rows = slice(g * G, (g + 1) * G)
                per_group.append(group_advantages(tables, rows, config, trajs, token_counts))
                masks.append(tables.mask[rows])
            turn_adv = np.concatenate(per_group, axis=0)
            token_adv = [broadcast_turn_values(s, turn_adv[i]) for i, s in enumerate(seqs)]
            # 5. policy update (the vLLM engine sleeps meanwhile and receives the new weights after)
            t_update = time.perf_counter()
            backend.before_update()
            gen = torch.Generator().manual_seed(config.seed * 7_777 + step)
            stats = ppo_update(model, optimizer, seqs, token_adv, config, pad_id=tokenizer.pad_token_id, device=device,
                               autocast=autocast, ref_model=ref_model, norm_length=norm_length, generator=gen)
            backend.after_update(model)
            update_s = time.perf_counter() - t_update
            # 6. metrics, trajectories, checkpoint
            returns = tables.returns()
            summary = summarize(all_trajs)  # infra-failed episodes are counted apart, out of its means
            row: dict[str, Any] = {
                "step": step, "episodes": len(all_trajs), "episodes/trained": len(trajs), **infra_stats,
                "reward/mean": float(returns.mean()), "reward/std": float(returns.std()),
                "env_reward/mean": summary["mean_reward"], "success_rate": summary["success_rate"],
                "turns/mean": summary["mean_turns"], "truncated_frac": summary["truncated"],
                **{f"reward/{k}": float(v.mean()) for k, v in sorted(tables.component_totals.items())},
                **advantage_stats(per_group, masks), **stats,
                "tokens/generated": gen_tokens, "tokens/sequence_mean": float(np.mean([len(s) for s in seqs])),
                "tokens/prompt_mismatch_turns": sum(len(s.prompt_mismatches) for s in seqs),
                "perf/rollout_s": rollout_s, "perf/reward_s": reward_s, "perf/update_s": update_s,
                "perf/rollout_tok_s": gen_tokens / max(rollout_s, 1e-9),
                "perf/update_tok_s": config.ppo_epochs * sum(len(s) for s in seqs) / max(update_s, 1e-9),
                "perf/peak_mem_mb": peak_memory_mb(device), "perf/step_s": time.perf_counter() - t_step,
            }
            if tables.ungated_return is not None:
                row["reward/ungated_mean"] = float(tables.ungated_return.mean())
            if gains is not None:
                flat = [g for row_ in gains for g in row_]
                row["reward/info_gain_mean"] = float(np.mean(flat)) if flat else 0.0
            close_step(step, all_trajs, row)
            say(f"step {step + 1}/{config.steps}  reward {row['reward/mean']:+.3f}  success {row['success_rate']:.2f}  "
                f"zero-adv groups {row['adv/zero_group_frac']:.2f}  loss {row['loss/policy']:+.4f}  "
                f"kl {row['loss/kl']:.4f}  clip {row['loss/clip_frac']:.3f}  {row['perf/step_s']:.1f}s"
                if "loss/policy" in row else f"step {step + 1}/{config.steps}  (no policy tokens)")
    finally:
        if writer is not None:
            writer.close()
    if config.steps > start:
        save_checkpoint(ckpt_root, model, optimizer, config.steps, config.to_dict())
    if config.plot and metrics.rows:
        plot_metrics(metrics.rows, out / "plots" / "training.png", title=f"{config.env} · {config.advantage}")
    if config.eval_episodes:
        result.eval_after = evaluate(model, tokenizer, config, env_kwargs, out / "eval_after", autocast)
        say(f"eval after: {result.eval_after}")
    result.metrics = list(metrics.rows)
    return result


def train_main(argv: list[str] | None = None) -> int:
    """``rlvr train ENV --model ... --reward ... --advantage ... --group-size G --steps N`` (see ``--help``)."""
    try:
        config = TrainConfig.from_args(argv)
        print(f"training {config.model} on {config.env}: reward={config.reward} advantage={config.advantage} "
              f"G={config.group_size} steps={config.steps} -> {config.output_dir}", flush=True)
        res = train(config, log=lambda m: print(m, flush=True))
    except RLVRError as e:
        print(f"rlvr train: error: {e}", file=sys.stderr)
        return 2
    last = res.metrics[-1] if res.metrics else {}
    print(f"done: {len(res.metrics)} steps, last reward {last.get('reward/mean', math.nan):+.3f}; "
          f"metrics in {res.output_dir / 'metrics.jsonl'}", flush=True)
    return 0
