"""Turn-aware GRPO: the training loop, top to bottom.

:func:`setup` builds a :class:`Run` (policy, reference model, optimiser, rollout backend, records;
resume and warm start); :func:`train` then runs the steps. One step = (1) roll out ``group_size``
episodes of ``tasks_per_step`` tasks with the current policy, (2) build token-exact sequences,
(3) score turns (environment components, gating or information gain), (4) compute group advantages
per turn and broadcast them to the policy's tokens, (5) PPO-clip update against the rollout
log-probs, (6) log, checkpoint. The maths lives in pure functions:
:func:`~rlvr.agents.trainer.batch.reward_tables`, :func:`~rlvr.agents.trainer.batch.step_advantages`,
:func:`~rlvr.agents.trainer.losses.micro_batch_loss` and :func:`~rlvr.agents.trainer.records.step_metrics`
(with :mod:`~rlvr.agents.trainer.advantages` and :mod:`~rlvr.agents.trainer.sequences` under them); the
update itself is :func:`~rlvr.agents.trainer.update.ppo_update`.

The one reward is the environment's: it applies ``config.reward_weights`` (passed in its keyword
arguments) to every turn, and :func:`~rlvr.agents.trainer.batch.reward_tables` weights the components
with the weights the trajectories record it used; the advantages and ``reward/mean`` both come from
those tables.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import torch

from rlvr.agents.reporting import with_reporters
from rlvr.agents.rollout import rollout, summarize
from rlvr.agents.trainer.backends import HFBackend, VLLMBackend, policy_weights
from rlvr.agents.trainer.batch import RewardTables, drop_infra_groups, reward_tables, step_advantages
from rlvr.agents.trainer.config import RewardScheme, TrainConfig
from rlvr.agents.trainer.multimodal import VLMBackend, renderer_for, sequence_for
from rlvr.agents.trainer.records import (MetricsLog, latest_checkpoint, load_checkpoint, peak_memory_mb,
                                         plot_metrics, save_checkpoint, step_metrics)
from rlvr.agents.trainer.sft import SFT_SEED_OFFSET, demonstration_sequences, sft_warmup
from rlvr.agents.trainer.memory import model_memory
from rlvr.agents.trainer.optim import make_optimizer
from rlvr.agents.trainer.update import ppo_update
from rlvr.agents.trainer.sequences import TemplateRenderer, TokenSequence, first_prediction
from rlvr.agents.trajectory import Trajectory, TrajectoryWriter, read_trajectories
from rlvr.agents.vlm import VLMAgent, is_codec, is_vision_checkpoint, load_vlm
from rlvr.errors import ConfigError, RLVRError
from rlvr.rewards.info_gain import InformationGain

__all__ = ["Run", "TrainResult", "setup", "train", "train_main", "ppo_update", "first_prediction", "task_seeds",
           "demonstration_seed", "eval_seed", "EVAL_SEED_OFFSET"]

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


def demonstration_seed(config: TrainConfig) -> int:
    """First seed of the warm start's oracle episodes (they use ``warmup_sft_episodes`` consecutive seeds):
    runs of different seeds clone disjoint demonstrations, far from training and evaluation seeds."""
    return SFT_SEED_OFFSET + config.seed * config.warmup_sft_episodes


def eval_seed(config: TrainConfig) -> int:
    """First seed of the held-out evaluation episodes (they use ``eval_episodes`` consecutive seeds): runs of
    different seeds evaluate on disjoint tasks, so their held-out successes are independent measurements."""
    return EVAL_SEED_OFFSET + config.seed * config.eval_episodes


def collect_groups(config: TrainConfig, agent: Any, seeds: list[int], env_kwargs: dict[str, Any],
                   executor: Any = "local") -> list[Trajectory]:
    """Roll out one episode per entry of ``seeds`` (all at once, generation batched across them).

    Episode ``k`` plays the task of ``seeds[k]`` and samples from its own seed ``k``, so the
    episodes of a group share a task and differ in their samples. ``executor``: ``"local"`` or a
    :class:`~rlvr.agents.ray_rollout.RayExecutor` (its workers kept across steps).
    """
    return rollout(config.env, agent, episodes=len(seeds), seeds=seeds, seed=0, concurrency=len(seeds),
                   env_kwargs=env_kwargs, executor=executor)


def _executor(config: TrainConfig) -> Any:
    """``"local"``, or the :class:`~rlvr.agents.ray_rollout.RayExecutor` of ``executor=ray``."""
    if config.executor == "local":
        return "local"
    from rlvr.agents.ray_rollout import make_executor

    return make_executor("ray", address=config.ray_address, workers=config.ray_workers,
                         envs_per_worker=config.envs_per_worker)


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


def _load_policy(config: TrainConfig, device: torch.device, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    if model is None and is_vision_checkpoint(config.model):  # a vision-language model and its codec
        model, tokenizer = load_vlm(config.model, device=str(device), dtype=torch.float32)
    elif model is None:
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
        if hasattr(model, "activation_checkpointing_enable"):  # the name of transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.lora:  # frozen embeddings: checkpointed layers need inputs that require grad (transformers 4.x)
            model.enable_input_require_grads()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def evaluate(model: Any, tokenizer: Any, config: TrainConfig, env_kwargs: dict[str, Any], out: Path,
             autocast: Callable) -> dict[str, Any]:
    """Greedy episodes on held-out seeds; trajectories go to ``out/trajectories.jsonl``."""
    from rlvr.agents.hf import HFAgent

    cls = VLMAgent if is_codec(tokenizer) else HFAgent  # a vision-language policy takes its codec as tokenizer
    agent = cls(model, tokenizer, max_new_tokens=config.max_new_tokens, temperature=0.0,
                batch_size=config.rollout_batch_size, max_context=config.max_context)
    model.eval()
    with autocast():
        trajs = rollout(config.env, agent, episodes=config.eval_episodes, seed=eval_seed(config),
                        concurrency=config.eval_episodes, out=out, env_kwargs=env_kwargs)
    return summarize(trajs)


@dataclass
class Run:
    """Everything a training run holds across its steps; built by :func:`setup`, used by :func:`train`."""

    config: TrainConfig
    out: Path
    """The run's folder (``config.output_dir``)."""
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager]
    """Mixed-precision context of forward passes (bf16 on CUDA by default)."""
    env_kwargs: dict[str, Any]
    """The environment's keyword arguments, ``config.reward_weights`` included."""
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    ref_model: Any
    """Frozen initial policy of the KL term (the model itself with LoRA: adapters disabled), or None."""
    backend: Any
    """Rollout engine (:class:`~rlvr.agents.trainer.backends.HFBackend` or ``VLLMBackend``)."""
    renderer: TemplateRenderer
    info_gain: InformationGain | None
    metrics: MetricsLog
    writer: TrajectoryWriter | None
    start: int
    """The first step to run (0, or the checkpoint's next step on resume)."""
    norm_length: float
    """Dr.GRPO's constant loss normaliser: ``max_new_tokens * max_turns``."""
    result: TrainResult
    say: Callable[[str], None]
    executor: Any = "local"
    """Where rollout environments run: ``"local"`` or a :class:`~rlvr.agents.ray_rollout.RayExecutor`."""

    @property
    def ckpt_root(self) -> Path:
        return self.out / "checkpoints"


def _resume_path(config: TrainConfig, ckpt_root: Path) -> Path | None:
    """The checkpoint to resume from (``resume``), or None; a resume without checkpoint is an error."""
    path = latest_checkpoint(ckpt_root) if config.resume else None
    if config.resume and path is None:
        raise ConfigError(f"resume=True but {ckpt_root} holds no checkpoint; drop --resume to start afresh")
    return path


def _max_turns(env_id: str, env_kwargs: dict[str, Any]) -> int:
    """Build the environment once (its values are checked before any model loads) and return its
    documented turn budget ``max_turns`` (1 for an environment without one)."""
    env = gym.make(env_id, **env_kwargs)
    try:
        return int(getattr(env.unwrapped, "max_turns", 1))
    finally:
        env.close()


WARM_START_KEYS = ("model", "env", "env_kwargs", "warmup_sft_steps", "warmup_sft_episodes", "warmup_sft_lr",
                   "micro_batch_size", "max_grad_norm", "optimizer", "logit_chunk_tokens", "prefix_sharing", "device",
                   "precision", "lora", "lora_r", "lora_alpha", "lora_dropout")
"""Settings that decide how the warm start was trained: a run may load another's warm start when all of them
match (the seed, which picks the demonstrations, may differ: several seeds can start from one warm start)."""
_WARM_EVAL_KEYS = ("seed", "eval_episodes", "max_new_tokens", "max_context", "rollout_batch_size", "reward_weights")
"""Settings that decide the evaluation after the warm start (the seed picks its held-out tasks; its
trajectories record the rewards): it is reused when all of them match too."""
_WARMUP_FILE = "warmup.json"  # next to the warm start's checkpoint: its losses and demonstrations
_EVAL_SETTINGS = "settings.json"  # in eval_warmup/: the _WARM_EVAL_KEYS it was made with


def _evaluate_warm(model: Any, tokenizer: Any, config: TrainConfig, env_kwargs: dict[str, Any], autocast: Callable,
                   result: TrainResult, say: Callable[[str], None]) -> None:
    """The evaluation after the warm start, into ``eval_warmup/`` with the settings it was made with."""
    out = Path(config.output_dir) / "eval_warmup"
    result.eval_warmup = evaluate(model, tokenizer, config, env_kwargs, out, autocast)
    ours = config.to_dict()
    (out / _EVAL_SETTINGS).write_text(json.dumps({k: ours[k] for k in _WARM_EVAL_KEYS}), encoding="utf-8")
    say(f"eval after warm-up: {result.eval_warmup}")


def _reuse_warm_start(config: TrainConfig, model: Any, result: TrainResult, say: Callable[[str], None]) -> bool:
    """Load the warm start of the run in ``config.warm_start_from`` (see that setting); True when its
    evaluation after the warm start was reused too. Raises ConfigError when that run's warm start is
    missing or was made with other settings."""
    import shutil

    src, out = Path(config.warm_start_from or ""), Path(config.output_dir)
    ckpt = src / "checkpoints" / "warmup" / "checkpoint.pt"
    if not ckpt.is_file():
        raise ConfigError(f"warm_start_from={str(src)!r} holds no warm start ({ckpt} is missing): give the folder of a "
                          "run that trained one (warmup_sft_steps > 0) and finished it")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)  # read once: its config, then its weights
    theirs, ours = state["config"], config.to_dict()
    differ = [k for k in WARM_START_KEYS if theirs.get(k) != ours[k]]
    if differ:
        raise ConfigError(f"the warm start in {src} was made with other settings: "
                          + "; ".join(f"{k}: {theirs.get(k)!r} there, {ours[k]!r} here" for k in differ)
                          + "; use the same settings, or drop warm_start_from to train a warm start of its own")
    load_checkpoint(ckpt, model, None, state=state)
    del state
    mine = out / "checkpoints" / "warmup"  # a resumed run's reference model reloads the warm start from here
    mine.mkdir(parents=True, exist_ok=True)
    if not (mine / "checkpoint.pt").exists():
        try:
            os.link(ckpt, mine / "checkpoint.pt")  # the same file, no copy, where the file system allows it
        except OSError:
            shutil.copyfile(ckpt, mine / "checkpoint.pt")
    record = src / "checkpoints" / "warmup" / _WARMUP_FILE
    if record.is_file():
        shutil.copyfile(record, mine / _WARMUP_FILE)
        result.warmup_losses = json.loads(record.read_text(encoding="utf-8"))["losses"]
    say(f"warm start loaded from {src}")
    evals, made = src / "eval_warmup" / "trajectories.jsonl", src / "eval_warmup" / _EVAL_SETTINGS
    if not config.eval_episodes or not evals.is_file() or not made.is_file():
        return False
    settings = json.loads(made.read_text(encoding="utf-8"))
    if any(settings.get(k) != ours[k] for k in _WARM_EVAL_KEYS):
        return False
    shutil.copytree(src / "eval_warmup", out / "eval_warmup", dirs_exist_ok=True)
    result.eval_warmup = summarize(list(read_trajectories(out / "eval_warmup" / "trajectories.jsonl")))
    say(f"eval after warm-up (that of {src}, the same weights and evaluation): {result.eval_warmup}")
    return True


def _warm_start(config: TrainConfig, model: Any, tokenizer: Any, env_kwargs: dict[str, Any], result: TrainResult,
                autocast: Callable, device: torch.device, say: Callable[[str], None]) -> None:
    """Evaluate, then behaviour-clone the oracle (``warmup_sft_steps``) and evaluate again: a fresh run only.
    With ``warm_start_from`` the warm start (and, where it applies, its evaluation) is another run's."""
    out = Path(config.output_dir)
    if config.eval_episodes and (config.eval_base or not config.warmup_sft_steps):
        result.eval_before = evaluate(model, tokenizer, config, env_kwargs, out / "eval_before", autocast)
        say(f"eval before: {result.eval_before}")
    if not config.warmup_sft_steps:
        return
    if config.warm_start_from is not None:
        if not _reuse_warm_start(config, model, result, say) and config.eval_episodes:
            _evaluate_warm(model, tokenizer, config, env_kwargs, autocast, result, say)
        return
    demos = demonstration_sequences(config.env, env_kwargs, tokenizer, config.warmup_sft_episodes,
                                    demonstration_seed(config))
    losses = sft_warmup(model, demos, steps=config.warmup_sft_steps, lr=config.warmup_sft_lr,
                        pad_id=tokenizer.pad_token_id, device=device, autocast=autocast,
                        micro_batch_size=config.micro_batch_size, max_grad_norm=config.max_grad_norm,
                        optimizer=config.optimizer, logit_chunk_tokens=config.logit_chunk_tokens,
                        prefix_sharing=config.prefix_sharing)
    result.warmup_losses = losses
    say(f"warm-up on {len(demos)} oracle episodes: NLL {losses[0]:.3f} -> {losses[-1]:.3f}")
    path = save_checkpoint(out / "checkpoints", model, None, 0, config.to_dict(), name="warmup")
    (path / _WARMUP_FILE).write_text(json.dumps({"losses": losses, "demonstrations": len(demos)}), encoding="utf-8")
    if config.eval_episodes:
        _evaluate_warm(model, tokenizer, config, env_kwargs, autocast, result, say)


def _reference_model(config: TrainConfig, model: Any, resume_path: Path | None, ckpt_root: Path) -> Any:
    """The frozen initial RL policy of the KL term (None without one). With LoRA it is the model with its
    adapters disabled (no warm start then); on resume after a warm start it reloads the warm-start weights."""
    if config.kl_coef <= 0:
        return None
    if config.lora:
        return model
    ref_model = copy.deepcopy(model).requires_grad_(False).eval()
    warm = ckpt_root / "warmup" / "checkpoint.pt"
    if resume_path is not None and config.warmup_sft_steps and warm.is_file():
        load_checkpoint(warm, ref_model, None)
    return ref_model


def _vllm_model_path(config: TrainConfig, model: Any, tokenizer: Any, out: Path | None) -> str:
    """What a vLLM engine loads: ``config.model``, or (``out``: ``train`` got the policy as an object) that
    policy's own weights and tokenizer, saved under ``out/vllm_policy`` (LoRA adapters merged)."""
    if out is None:
        return config.model
    folder = out / "vllm_policy"
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.save_pretrained(folder, state_dict=dict(policy_weights(model)))
    tokenizer.save_pretrained(folder)
    return str(folder)


def _backend(config: TrainConfig, model: Any, tokenizer: Any, start: int, out: Path | None = None) -> Any:
    """The rollout engine; a vLLM engine loaded the weights on disk, so it gets the policy's when they differ
    (``out``: the policy came as an object, see :func:`_vllm_model_path`)."""
    if is_codec(tokenizer):  # a vision-language policy (rlvr.agents.vlm)
        return VLMBackend(model, tokenizer, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                          top_p=config.top_p, batch_size=config.rollout_batch_size, max_context=config.max_context,
                          seed=config.seed)
    if config.backend != "vllm":
        return HFBackend(model, tokenizer, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                         top_p=config.top_p, batch_size=config.rollout_batch_size, max_context=config.max_context,
                         seed=config.seed)
    backend = VLLMBackend(_vllm_model_path(config, model, tokenizer, out), max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                          top_p=config.top_p, gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                          max_context=config.max_context, seed=config.seed)
    if start > 0 or config.warmup_sft_steps:
        backend.before_update()
        backend.after_update(model)
    return backend


def setup(config: TrainConfig, *, model: Any = None, tokenizer: Any = None,
          log: Callable[[str], None] | None = None) -> Run:
    """Everything before the first step: folder, device, checks, policy, warm start (a fresh run),
    reference model, optimiser, resume (the latest checkpoint with ``resume``), rollout backend, records.

    Configuration errors surface before any model loads: the config checked its names at
    construction, and building the environment once checks its values.
    """
    say = log or (lambda _msg: None)
    given = model is not None  # a policy object, not loaded from config.model
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config)
    autocast = _autocast(device, config.precision)
    torch.manual_seed(config.seed)
    resume_path = _resume_path(config, out / "checkpoints")
    env_kwargs = dict(config.env_kwargs)
    if config.reward_weights:  # the environment applies them: its per-turn reward is the one reward
        env_kwargs["reward_weights"] = dict(config.reward_weights)
    max_turns = _max_turns(config.env, env_kwargs)
    model, tokenizer = _load_policy(config, device, model, tokenizer)
    result = TrainResult(out)
    if resume_path is None:
        _warm_start(config, model, tokenizer, env_kwargs, result, autocast, device, say)
    ref_model = _reference_model(config, model, resume_path, out / "checkpoints")
    optimizer = make_optimizer(config.optimizer, [p for p in model.parameters() if p.requires_grad], lr=config.lr,
                               weight_decay=config.weight_decay)
    start = 0
    if resume_path is not None:
        start = load_checkpoint(resume_path, model, optimizer)
        say(f"resumed from {resume_path} at step {start}")
    info_gain = None
    if config.reward is RewardScheme.INFO_GAIN:
        info_gain = InformationGain(config.ig_answer_prefix, config.ig_variant, config.ig_method)
    return Run(config, out, device, autocast, env_kwargs, model, tokenizer, optimizer, ref_model,
               _backend(config, model, tokenizer, start, out if given else None), renderer_for(tokenizer), info_gain,
               with_reporters(MetricsLog(out / "metrics.jsonl", resume_from_step=start), config.report_to, out,
                              config.to_dict()),
               TrajectoryWriter(out / "trajectories.jsonl") if config.save_trajectories else None,
               start, float(config.max_new_tokens * max_turns), result, say, _executor(config))


def _rollouts(run: Run, step: int) -> list[Trajectory]:
    """The step's ``tasks_per_step`` groups of ``group_size`` episodes, sampling seeded by the step."""
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    run.backend.reseed(run.config.seed * 1_000_003 + step)
    run.model.eval()
    # an in-process vLLM engine runs its own precision: the trainer's autocast would reach into its kernels
    with run.autocast() if run.backend.name != "vllm" else contextlib.nullcontext():
        return collect_groups(run.config, run.backend.agent, task_seeds(run.config, step), run.env_kwargs,
                              run.executor)


def _turn_rewards(run: Run, trajs: list[Trajectory], seqs: list[TokenSequence]
                  ) -> tuple[RewardTables, list[list[float]] | None]:
    """The step's reward tables (and, under ``info_gain``, the information gain of every turn boundary)."""
    gains = None
    if run.info_gain is not None:
        answers = [t.reset_info.get("answer") for t in trajs]
        if any(a is None for a in answers):
            raise ConfigError(f"{run.config.env} gives no ground-truth answer (reset info 'answer'); "
                              "the info_gain reward needs one")
        with run.autocast():
            gains = run.info_gain(run.model, run.tokenizer, [s.input_ids for s in seqs], [s.boundaries for s in seqs],
                                  answers)
    return reward_tables(trajs, run.config, gains), gains


def _update(run: Run, seqs: list[TokenSequence], token_adv: list[list[float]], step: int) -> dict[str, float]:
    """The policy update; a vLLM engine sleeps meanwhile and receives the new weights after."""
    run.backend.before_update()
    gen = torch.Generator().manual_seed(run.config.seed * 7_777 + step)
    stats = ppo_update(run.model, run.optimizer, seqs, token_adv, run.config, pad_id=run.tokenizer.pad_token_id,
                       device=run.device, autocast=run.autocast, ref_model=run.ref_model, norm_length=run.norm_length,
                       generator=gen)
    run.backend.after_update(run.model)
    return {**stats, **model_memory(run.model, run.optimizer, run.ref_model)}


def _close_step(run: Run, step: int, all_trajs: list[Trajectory], row: dict[str, Any]) -> None:
    """Log the step's metrics, write its trajectories and checkpoint when due."""
    config, steps = run.config, run.config.steps
    if row["infra/episodes"]:
        run.say(f"step {step + 1}: {int(row['infra/episodes'])} episode(s) ended by an infrastructure failure; "
                f"{int(row['infra/groups_dropped'])} group(s) left out of the update")
    run.metrics.append(row)
    if run.writer is not None:
        for t in all_trajs:
            t.reset_info["train_step"] = step
            run.writer.write(t)
    if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < steps:
        save_checkpoint(run.ckpt_root, run.model, run.optimizer, step + 1, config.to_dict())
    if "episodes/trained" not in row:
        run.say(f"step {step + 1}/{steps}  (every group had an infrastructure failure: no update)")
    elif "loss/policy" not in row:
        run.say(f"step {step + 1}/{steps}  (no policy tokens)")
    else:
        run.say(f"step {step + 1}/{steps}  reward {row['reward/mean']:+.3f}  success {row['success_rate']:.2f}  "
                f"zero-adv groups {row['adv/zero_group_frac']:.2f}  loss {row['loss/policy']:+.4f}  "
                f"kl {row['loss/kl']:.4f}  clip {row['loss/clip_frac']:.3f}  {row['perf/step_s']:.1f}s")


def _periodic_eval(run: Run, step: int) -> dict[str, float]:
    """``eval/*`` metrics of the held-out evaluation due after ``step`` (``eval_every``; the last step's is
    the final evaluation), trajectories in ``eval_step{N}/``; empty when none is due."""
    config = run.config
    every, done = config.eval_every, step + 1
    if not (every and config.eval_episodes and done % every == 0 and done < config.steps):
        return {}
    summary = evaluate(run.model, run.tokenizer, config, run.env_kwargs, run.out / f"eval_step{done}", run.autocast)
    run.say(f"eval after step {done}: success {summary['success_rate']:.3f}  reward {summary['mean_reward']:+.3f}")
    return {"eval/success_rate": summary["success_rate"], "eval/mean_reward": summary["mean_reward"],
            "eval/mean_turns": summary["mean_turns"]}


def _finish(run: Run) -> TrainResult:
    """Final checkpoint, plots and evaluation."""
    config, result = run.config, run.result
    if config.save_final and config.steps > run.start:
        save_checkpoint(run.ckpt_root, run.model, run.optimizer, config.steps, config.to_dict())
    if config.plot and run.metrics.rows:
        plot_metrics(run.metrics.rows, run.out / "plots" / "training.png", title=f"{config.env} · {config.advantage}")
    if config.eval_episodes:
        result.eval_after = evaluate(run.model, run.tokenizer, config, run.env_kwargs, run.out / "eval_after",
                                     run.autocast)
        run.say(f"eval after: {result.eval_after}")
    result.metrics = list(run.metrics.rows)
    if hasattr(run.metrics, "close"):  # TensorBoard / W&B destinations (rlvr.agents.reporting)
        run.metrics.close()
    return result


def train(config: TrainConfig, *, model: Any = None, tokenizer: Any = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Run ``config.steps`` training steps (continuing from the latest checkpoint with ``resume``).

    ``model`` / ``tokenizer`` may be given as objects instead of ``config.model`` (tests, custom models).
    Each step: (1) roll out, (2) leave infra-failed groups out, (3) token-exact sequences, (4) per-turn
    rewards, (5) group advantages per turn broadcast to the tokens, (6) PPO update, (7) log, checkpoint.
    """
    run = setup(config, model=model, tokenizer=tokenizer, log=log)
    try:
        for step in range(run.start, config.steps):
            t0 = time.perf_counter()
            all_trajs = _rollouts(run, step)
            times = {"rollout_s": time.perf_counter() - t0}
            trajs, infra = drop_infra_groups(all_trajs, config.group_size)
            if not trajs:  # nothing to learn from this step
                times["step_s"] = time.perf_counter() - t0
                _close_step(run, step, all_trajs, step_metrics(step, all_trajs, trajs, infra=infra, times=times))
                continue
            seqs = [sequence_for(t, run.renderer) for t in trajs]
            t1 = time.perf_counter()
            tables, gains = _turn_rewards(run, trajs, seqs)
            times["reward_s"] = time.perf_counter() - t1
            adv = step_advantages(tables, trajs, seqs, config)
            t2 = time.perf_counter()
            stats = _update(run, seqs, adv.token, step)
            times.update(update_s=time.perf_counter() - t2, step_s=time.perf_counter() - t0)
            row = step_metrics(step, all_trajs, trajs, infra=infra, times=times, seqs=seqs, tables=tables,
                               advantages=adv.stats, update=stats, gains=gains, ppo_epochs=config.ppo_epochs,
                               peak_mem_mb=peak_memory_mb(run.device))
            row.update(_periodic_eval(run, step))
            _close_step(run, step, all_trajs, row)
    finally:
        if run.writer is not None:
            run.writer.close()
        if run.executor != "local":
            run.executor.close()
    return _finish(run)


def train_main(argv: list[str] | None = None, *, config: TrainConfig | None = None) -> int:
    """``rlvr train ENV --model ... --reward ... --advantage ... --group-size G --steps N`` (see ``--help``);
    ``config``: ``argv`` already parsed (the CLI checks it before this module imports torch)."""
    try:
        config = config if config is not None else TrainConfig.from_args(argv)
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
