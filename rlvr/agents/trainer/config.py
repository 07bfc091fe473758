"""``TrainConfig``: every setting of a training run, in one flat typed dataclass.

Each field carries a docstring (shown by ``rlvr train --help``). Choice fields are enums or
``Literal`` types checked when the config is built, so a typo fails before any model loads::

    TrainConfig(env="rlvr/GuessNumber-v0", advantage="dual", group_size=8)
    TrainConfig.from_file("run.yaml")            # YAML or TOML, same keys as the fields
    TrainConfig.from_args(["rlvr/GuessNumber-v0", "--advantage", "igpo", "--steps", "20"])
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from rlvr.errors import ConfigError, did_you_mean

__all__ = ["Advantage", "RewardScheme", "TrainConfig", "field_docs"]


class Advantage(StrEnum):
    """Advantage estimator (see :mod:`rlvr.agents.trainer.advantages`)."""

    GRPO = "grpo"  # outcome, group mean/std
    DR_GRPO = "dr_grpo"  # outcome, mean only, constant-length loss normaliser
    TURN = "turn"  # discounted per-turn returns normalised per turn index
    DUAL = "dual"  # MatchTIR (A_traj + A_turn) / 2
    IGPO = "igpo"  # normalise turn rewards in the group, then discounted returns
    GIGPO = "gigpo"  # episode + anchor-state step groups
    PURE = "pure"  # soft-min (min-form) process credit + leave-one-out baselines
    TEMPO = "tempo"  # GRPO + TD at branching turns of the group's prefix tree


class RewardScheme(StrEnum):
    """Where per-turn rewards come from."""

    ENV = "env"  # the environment's reward components, weighted (direct accumulation)
    GATED = "gated"  # G-RA: lower-priority components count only when higher ones pass their thresholds
    INFO_GAIN = "info_gain"  # the environment's components plus the IGPO information gain per turn


_DEFAULT_GAMMA = {Advantage.TURN: 0.9, Advantage.DUAL: 0.9, Advantage.IGPO: 1.0, Advantage.GIGPO: 0.95}


@dataclass
class TrainConfig:
    """Settings of one training run."""

    # --- run -------------------------------------------------------------------------------
    env: str = "rlvr/GuessNumber-v0"
    """Environment id to train on (``rlvr/Name-vN``)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the environment (JSON on the command line), e.g. ``{"high": 20}``."""
    model: str = "smollm2"
    """Policy model: ``smollm2``, a Hugging Face id available offline, or a local folder."""
    output_dir: str = "runs/train"
    """Folder for metrics.jsonl, trajectories, checkpoints and plots."""
    seed: int = 0
    """Seed of tasks, sampling and initialisation."""
    steps: int = 10
    """Number of training steps (each: rollouts, rewards, advantages, one policy update)."""
    tasks_per_step: int = 2
    """Distinct tasks (prompts) per step; each is rolled out ``group_size`` times."""
    group_size: int = 4
    """Rollouts per task: the group advantages are normalised over."""
    eval_episodes: int = 0
    """Greedy evaluation episodes on held-out seeds before the first and after the last step (0: none)."""
    eval_base: bool = True
    """Evaluate the initial policy too (before the warm start), not only after it."""
    eval_every: int = 0
    """Also evaluate (the same held-out episodes) every this many steps, logged as ``eval/*`` in that step's
    metrics: a learning curve (0: only before and after)."""

    # --- rollout ---------------------------------------------------------------------------
    backend: Literal["hf", "vllm"] = "hf"
    """Rollout engine: ``hf`` (transformers generate, CPU or GPU) or ``vllm`` (GPU, colocated)."""
    max_new_tokens: int = 128
    """Generation budget per turn."""
    temperature: float = 1.0
    """Sampling temperature of rollouts (> 0: the PPO ratio needs a sampling distribution)."""
    top_p: float = 1.0
    """Nucleus sampling of rollouts."""
    max_context: int = 2048
    """Prompt + completion token limit per turn; longer episodes are truncated."""
    rollout_batch_size: int = 16
    """Conversations per generate call."""
    vllm_gpu_memory_utilization: float = 0.3
    """vLLM backend: share of GPU memory for its KV cache (the trainer keeps the rest)."""
    executor: Literal["local", "ray"] = "local"
    """Where the training rollouts' environments run: threads of this process (``local``) or Ray workers
    (``ray``, see the README's "Scaling out"); evaluations run locally."""
    ray_address: str | None = None
    """``executor=ray``: ``auto`` (this machine's cluster), ``ray://host:10001``, or none (a local Ray)."""
    ray_workers: int | None = None
    """``executor=ray``: worker actors (none: enough for one step's episodes)."""
    envs_per_worker: int = 4
    """``executor=ray``: environment instances per worker."""

    # --- reward ----------------------------------------------------------------------------
    reward: RewardScheme = RewardScheme.ENV
    """Reward scheme: ``env`` (weighted components summed), ``gated`` (G-RA) or ``info_gain`` (IGPO)."""
    reward_weights: dict[str, float] = field(default_factory=dict)
    """Weight per reward component (JSON); unnamed components weigh 1.0. Passed to the environment, which
    applies them (over its own defaults) to every turn's reward: the one reward the trainer uses. Names
    must be components the environment declares."""
    outcome_components: list[str] = field(default_factory=lambda: ["outcome"])
    """Components that form the trajectory outcome; the others are per-turn process rewards (declared names)."""
    gate_priority: list[str] = field(default_factory=lambda: ["outcome"])
    """``gated``: components from highest to lowest priority; unlisted components come last (declared names)."""
    gate_thresholds: list[float] = field(default_factory=lambda: [1.0])
    """``gated``: threshold per listed component; lower priorities count only when it reaches it."""
    ig_weight: float = 1.0
    """``info_gain``: weight of the information gain added to each turn's process reward."""
    ig_variant: Literal["prob_diff", "log_prob_diff"] = "prob_diff"
    """``info_gain``: gain of the geometric-mean probability (paper) or of its log."""
    ig_answer_prefix: str = "<answer>"
    """``info_gain``: text teacher-forced before the ground-truth answer."""
    ig_method: Literal["cached", "naive"] = "cached"
    """``info_gain``: KV-cached scoring (fast) or one full pass per turn (reference)."""

    # --- advantage -------------------------------------------------------------------------
    advantage: Advantage = Advantage.GRPO
    """Advantage estimator: grpo, dr_grpo, turn, dual, igpo, gigpo, pure or tempo."""
    scale_by_std: bool = True
    """Divide by the group std (grpo, turn, dual, tempo; gigpo's mean_std_norm). dr_grpo never does."""
    std_kind: Literal["auto", "population", "unbiased"] = "auto"
    """Standard deviation over n (population) or n - 1 (unbiased, torch.std); auto: population for igpo
    (as IGPO does), unbiased otherwise."""
    gamma: float | None = None
    """Turn discount; default per estimator (turn/dual 0.9, igpo 1.0, gigpo 0.95)."""
    igpo_norm: Literal["joint", "separate"] = "joint"
    """``igpo``: normalise process and outcome rewards together (paper) or separately."""
    gigpo_step_weight: float = 1.0
    """``gigpo``: weight w of the anchor-state step advantage."""
    pure_temperature: float = 0.1
    """``pure``: soft-min temperature."""
    pure_baseline: Literal["step", "token"] = "step"
    """``pure``: leave-one-out baseline per step or per token."""

    # --- warm start -------------------------------------------------------------------------
    warmup_sft_steps: int = 0
    """Behaviour-cloning steps on the environment's oracle demonstrations before RL (0: none)."""
    warmup_sft_episodes: int = 8
    """Oracle episodes (on their own seeds) used as demonstrations by the warm start."""
    warmup_sft_lr: float = 5e-5
    """Learning rate of the warm start."""
    warm_start_from: str | None = None
    """The folder of an earlier run with the same warm-start settings (model, environment and every
    ``warmup_sft_*`` setting; its seed may differ): its warm-start weights are loaded instead of trained
    again, and its evaluation after the warm start is reused when the seed, the evaluation settings and the
    reward weights match too (runs that differ only after the warm start, e.g. two reward schemes or RL
    seeds, then start from the same weights)."""

    # --- loss and optimiser ----------------------------------------------------------------
    lr: float = 1e-5
    """AdamW learning rate."""
    optimizer: Literal["adamw", "adamw_bf16"] = "adamw"
    """``adamw`` (torch), or ``adamw_bf16``: AdamW keeping its two moment estimates in bfloat16 (half the
    optimiser memory: 2 bytes per weight and moment instead of 4), the update still computed in float32."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    ppo_epochs: int = 1
    """Passes over each step's rollouts."""
    mini_batches: int = 1
    """Optimiser steps per epoch (the step's sequences are split into this many mini-batches)."""
    micro_batch_size: int = 4
    """Sequences per forward/backward pass; gradients accumulate over a mini-batch."""
    length_bucketing: bool = True
    """Cut micro-batches from length-sorted sequences (same gradient, less padding)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: no clipping)."""
    clip_low: float = 0.2
    """PPO ratio clip below 1."""
    clip_high: float = 0.2
    """PPO ratio clip above 1 (0.28 for DAPO's clip-higher)."""
    loss_aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    """How token losses are reduced; dr_grpo forces ``seq-mean-token-sum-norm``."""
    kl_coef: float = 0.0
    """Weight of the k3 KL to the frozen initial policy (0: no reference model)."""
    entropy_coef: float = 0.0
    """Entropy bonus weight (entropy is logged either way)."""

    # --- model and hardware ----------------------------------------------------------------
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train: ``auto`` picks CUDA when available."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``auto``: bf16 autocast on CUDA, fp32 on CPU."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """LoRA dropout."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    logit_chunk_tokens: int = 0
    """Compute the log-softmax over the vocabulary this many token positions at a time (split over the
    micro-batch's rows), recomputing each block of logits in the backward pass, so at most this many
    positions' logits are held, never ``[batch, length, vocabulary]`` (0: whole)."""
    prefix_sharing: bool = True
    """Forward sequences that share a prompt (a group's rollouts) as one packed row holding the prompt
    once, in the update, the reference and old log-probs and the warm start: same log-probs and
    gradients, fewer tokens (models without SDPA or eager attention take the padded path)."""

    # --- outputs ---------------------------------------------------------------------------
    save_every: int = 0
    """Checkpoint every N steps (0: only at the end)."""
    save_final: bool = True
    """Checkpoint (weights and optimiser state) at the end of the run; off for runs read only through their
    metrics and evaluations, such as the learning benchmark's (about 1 GB each for SmolLM2)."""
    resume: bool = False
    """Continue from the latest checkpoint in ``output_dir``."""
    plot: bool = True
    """Write PNG plots of reward and statistics at the end."""
    save_trajectories: bool = True
    """Append every rollout to ``output_dir/trajectories.jsonl``."""
    report_to: Literal["auto", "tensorboard", "wandb", "none"] = "auto"
    """Metrics also to ``tensorboard`` (``output_dir/tensorboard``), ``wandb`` (offline, ``output_dir/wandb``),
    ``auto`` (each of the two that is installed) or ``none`` (see :mod:`rlvr.agents.reporting`)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, hints[f.name], getattr(self, f.name)))
        positive = ("steps", "tasks_per_step", "warmup_sft_episodes", "group_size", "max_new_tokens", "max_context",
                    "rollout_batch_size", "ppo_epochs", "mini_batches", "micro_batch_size", "lora_r", "lora_alpha")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        nonneg = ("eval_episodes", "eval_every", "weight_decay", "max_grad_norm", "clip_low", "clip_high", "kl_coef",
                  "entropy_coef", "save_every", "lora_dropout", "ig_weight", "gigpo_step_weight", "warmup_sft_steps",
                  "logit_chunk_tokens")
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 for policy-gradient training (got {self.temperature}); "
                              "greedy rollouts have no sampling distribution for the PPO ratio")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.backend == "vllm" and self.top_p < 1:
            raise ConfigError(f"backend='vllm' needs top_p=1 (got {self.top_p}): vLLM's processed log-probs are "
                              "renormalised over the top-p nucleus while the trainer's are over the whole "
                              "vocabulary, so the PPO ratio would be biased; use top_p=1, or backend='hf'")
        if self.lr <= 0 or self.warmup_sft_lr <= 0:
            raise ConfigError(f"lr and warmup_sft_lr must be > 0; got {self.lr} and {self.warmup_sft_lr}")
        if self.gamma is not None and not 0 <= self.gamma <= 1:
            raise ConfigError(f"gamma must be in [0, 1]; got {self.gamma}")
        if self.pure_temperature <= 0:
            raise ConfigError(f"pure_temperature must be > 0; got {self.pure_temperature}")
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ConfigError(f"vllm_gpu_memory_utilization must be in (0, 1); got {self.vllm_gpu_memory_utilization}")
        if self.group_size < 2:
            raise ConfigError(f"group_size must be >= 2: every estimator compares rollouts of the same task "
                              f"(got {self.group_size})")
        if self.reward is RewardScheme.GATED and len(self.gate_priority) != len(self.gate_thresholds):
            raise ConfigError(f"gate_priority {self.gate_priority} and gate_thresholds {self.gate_thresholds} "
                              "must have the same length (one threshold per gated component)")
        if "/" not in self.env:
            raise ConfigError(f"env must be an id like 'rlvr/GuessNumber-v0'; got {self.env!r}")
        from rlvr.agents.reporting import check_report_to

        check_report_to(self.report_to)
        self.check_env()

    def check_env(self) -> None:
        """Check ``env`` and the names in ``env_kwargs`` and in every reward-component field.

        Runs at construction, without building the environment or loading a model: the id must be
        registered (did-you-mean over the registered ids), ``env_kwargs`` keys must be keyword
        arguments the environment accepts, and the names in ``reward_weights``,
        ``env_kwargs["reward_weights"]``, ``outcome_components`` and ``gate_priority`` must be reward
        components the environment class declares (``reward_components``). Environments that are not
        :class:`~rlvr.envs.core.AgentEnv` subclasses declare none, and their names are not checked.
        Raises :class:`ConfigError`.
        """
        from rlvr.envs.core import AgentEnv
        from rlvr.registry import check_env_args

        cls = check_env_args(self.env, self.env_kwargs)
        if not (isinstance(cls, type) and issubclass(cls, AgentEnv)):
            return
        env_weights = self.env_kwargs.get("reward_weights") or {}
        if not isinstance(env_weights, dict):
            raise ConfigError(f"env_kwargs['reward_weights'] must be a mapping of component name to weight; "
                              f"got {env_weights!r}")
        for where, names in (("reward_weights", self.reward_weights),
                             ("env_kwargs['reward_weights']", env_weights),
                             ("outcome_components", self.outcome_components),
                             ("gate_priority", self.gate_priority)):
            cls.check_reward_components(names, where)

    # --- derived settings --------------------------------------------------------------------
    @property
    def effective_gamma(self) -> float:
        """``gamma`` or the estimator's published default."""
        return self.gamma if self.gamma is not None else _DEFAULT_GAMMA.get(self.advantage, 1.0)

    @property
    def effective_std_kind(self) -> str:
        """``std_kind`` with ``auto`` resolved for the chosen estimator."""
        if self.std_kind != "auto":
            return self.std_kind
        return "population" if self.advantage is Advantage.IGPO else "unbiased"

    @property
    def effective_loss_aggregation(self) -> str:
        """Dr.GRPO implies the constant-length normaliser."""
        return "seq-mean-token-sum-norm" if self.advantage is Advantage.DR_GRPO else self.loss_aggregation

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (enums as strings)."""
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), StrEnum) else v)
                for f in dataclasses.fields(self)}

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping; unknown keys are an error that suggests the closest field."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ConfigError(f"unknown TrainConfig field {key!r}{did_you_mean(key, names)}; "
                                  "see `rlvr train --help` for the fields")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Load a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file; ``overrides`` win."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as e:
                raise ConfigError("YAML configs need PyYAML: pip install pyyaml (or use a .toml file)") from e
            data = yaml.safe_load(text) or {}
        elif p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config file must end in .yaml, .yml or .toml; got {p.name!r}")
        if not isinstance(data, dict):
            raise ConfigError(f"{p.name} must hold a mapping of field names to values; got {type(data).__name__}")
        return cls.from_dict({**data, **overrides})

    @classmethod
    def argument_parser(cls, prog: str = "rlvr train") -> argparse.ArgumentParser:
        """An argparse parser with one ``--flag`` per field (plus positional ``ENV`` and ``--config``)."""
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        parser = argparse.ArgumentParser(
            prog=prog, description="Train a policy on an rlvr environment with turn-aware GRPO.",
            argument_default=argparse.SUPPRESS,
        )
        parser.add_argument("env", nargs="?", help=docs.get("env", ""))
        parser.add_argument("--config", help="YAML or TOML file with field values (flags override it)")
        defaults = cls()
        for f in dataclasses.fields(cls):
            if f.name == "env":
                continue
            flag = "--" + f.name.replace("_", "-")
            tp = hints[f.name]
            kw: dict[str, Any] = {"help": f"{docs.get(f.name, '')} (default: {_show(getattr(defaults, f.name))})",
                                  "dest": f.name}
            if tp is bool:
                kw["action"] = argparse.BooleanOptionalAction
            else:
                choices = _choices(tp)
                if choices:
                    kw["choices"] = choices
                kw["metavar"] = _metavar(tp)
            parser.add_argument(flag, **kw)
        return parser

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> "TrainConfig":
        """Parse command-line arguments (``--config FILE`` first, then flags on top)."""
        ns = vars(cls.argument_parser().parse_args(argv))
        path = ns.pop("config", None)
        values = {k: v for k, v in ns.items() if v is not None}
        return cls.from_file(path, **values) if path else cls.from_dict(values)


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # source unavailable (frozen app): no help texts
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# ----------------------------------------------------------------------------------------------
# value coercion: strings from the command line or files become typed values, with clear errors


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _choices(tp: Any) -> list[str] | None:
    tp, _ = _unwrap_optional(tp)
    if typing.get_origin(tp) is Literal:
        return [str(a) for a in typing.get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return [str(m) for m in tp]
    return None


def _metavar(tp: Any) -> str:
    tp, _ = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is dict:
        return "JSON"
    if origin is list:
        return "A,B,..."
    return getattr(tp, "__name__", "VALUE").upper() if not _choices(tp) else "{" + ",".join(_choices(tp)) + "}"


def _show(v: Any) -> str:
    return str(v) if isinstance(v, StrEnum) else json.dumps(v) if isinstance(v, (dict, list)) else repr(v)


def _coerce(name: str, tp: Any, value: Any) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{name} must not be None")
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {list(allowed)}; got {value!r}"
                              f"{did_you_mean(str(value), map(str, allowed))}")
        return value
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        try:
            return tp(value)
        except ValueError:
            allowed = [str(m) for m in tp]
            hint = did_you_mean(str(value), allowed)
            raise ConfigError(f"{name} must be one of {allowed}; got {value!r}{hint}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} must be true or false; got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number; got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {tp.__name__}; got {value!r}") from None
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name} must be an integer; got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string; got {value!r}")
        return value
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{name} must be a JSON object such as '{{\"high\": 20}}'; "
                                  f"got {value!r} ({e})") from e
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping; got {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): (v if vt is Any else _coerce(f"{name}[{k!r}]", vt, v)) for k, v in value.items()}
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list; got {value!r}")
        (et,) = typing.get_args(tp)
        return [_coerce(f"{name}[{i}]", et, v) for i, v in enumerate(value)]
    return value
