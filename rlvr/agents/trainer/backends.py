"""Rollout backends for training: token-exact prompts, and the hooks around a policy update.

Both backends present the same interface to the trainer:

* ``agent``: what :func:`rlvr.agents.rollout.rollout` drives (a :class:`TokenExact` agent);
* ``reseed(seed)``: make the next rollouts' sampling a function of ``seed`` alone (resumable runs);
* ``before_update()`` / ``after_update(model)``: free the engine's memory during the update and
  sync the updated weights into it (no-ops for the transformers backend, which samples from the
  very model being trained).

Token-exact prompts: from the second turn on, a conversation's prompt is the previous turn's
``prompt_ids``, plus the ids the policy generated there (``completion_ids``), plus that turn's
``observation`` messages rendered by :class:`~rlvr.agents.trainer.sequences.TemplateRenderer`
(:func:`next_prompt_ids`). The rollout hands each conversation's turns to the agent
(``act_batch(batch, histories=...)``, see :mod:`rlvr.agents.base`), so nothing is remembered
between calls. The context the policy sampled from is exactly the prefix of the training sequence
:func:`~rlvr.agents.trainer.sequences.build_sequence` builds from the same turns, and the rollout
log-probs are the "old" log-probs of the PPO ratio with no re-tokenisation drift.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from rlvr.agents.base import Generation, Messages
from rlvr.agents.hf import HFAgent
from rlvr.agents.trainer.sequences import TemplateRenderer
from rlvr.agents.trajectory import Turn
from rlvr.agents.vllm import VLLMAgent
from rlvr.errors import ConfigError

__all__ = ["HFBackend", "TokenExact", "TokenExactHFAgent", "TokenExactVLLMAgent", "VLLMBackend", "next_prompt_ids",
           "policy_weights"]


def next_prompt_ids(turn: Turn, renderer: TemplateRenderer) -> list[int] | None:
    """The prompt that continues ``turn`` token-exactly, or ``None`` when the turn carries no ids.

    ``turn.prompt_ids + turn.completion_ids``, then the closing of that assistant message, the
    turn's ``observation`` messages and the next generation prompt
    (:meth:`~rlvr.agents.trainer.sequences.TemplateRenderer.continuation_ids`): the same ids
    :func:`~rlvr.agents.trainer.sequences.build_sequence` puts after that turn.
    """
    if turn.prompt_ids is None or turn.completion_ids is None:
        return None
    return [*turn.prompt_ids, *turn.completion_ids, *renderer.continuation_ids(turn.completion_ids, turn.observation)]


class TokenExact:
    """Mixin for an agent with ``tokenizer``, ``encode(messages)`` and ``act_ids(prompts, seeds)``
    (:class:`~rlvr.agents.hf.HFAgent`, :class:`~rlvr.agents.vllm.VLLMAgent`): later turns continue from
    the ids of the previous turn (:func:`next_prompt_ids`) instead of re-rendering the conversation.

    A conversation without a history (its first turn), or whose last turn carries no ids, is encoded
    with the agent's own ``encode`` (the chat template).
    """

    tokenizer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renderer = TemplateRenderer(self.tokenizer)

    def act_batch(self, batch: Sequence[Messages], seeds: Sequence[int] | None = None,
                  histories: Sequence[Sequence[Turn]] | None = None) -> list[Generation]:
        """One generation per conversation; ``histories[i]`` holds conversation ``i``'s turns so far."""
        if histories is None:
            histories = [[] for _ in batch]
        if len(histories) != len(batch):
            raise ConfigError(f"act_batch got {len(histories)} histories for {len(batch)} conversations; "
                              "give one (possibly empty) list of turns per conversation")
        prompts = [self.prompt_for(messages, turns) for messages, turns in zip(batch, histories)]
        return self.act_ids(prompts, seeds)  # type: ignore[attr-defined]

    def prompt_for(self, messages: Messages, history: Sequence[Turn] = ()) -> list[int]:
        """The prompt after ``history``: :func:`next_prompt_ids` of its last turn, else the chat template."""
        ids = next_prompt_ids(history[-1], self.renderer) if history else None
        return ids if ids is not None else self.encode(messages)  # type: ignore[attr-defined]


class TokenExactHFAgent(TokenExact, HFAgent):
    """:class:`~rlvr.agents.hf.HFAgent` whose later-turn prompts extend the earlier turns' exact tokens."""


class TokenExactVLLMAgent(TokenExact, VLLMAgent):
    """:class:`~rlvr.agents.vllm.VLLMAgent` whose later-turn prompts extend the earlier turns' exact tokens."""


class HFBackend:
    """Rollouts with transformers ``generate`` on the model being trained (CPU or GPU)."""

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int, temperature: float, top_p: float,
                 batch_size: int, max_context: int, seed: int) -> None:
        self.agent = TokenExactHFAgent(model, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, batch_size=batch_size, max_context=max_context, seed=seed)

    def reseed(self, seed: int) -> None:
        """Sampling of the following rollouts depends on ``seed`` (and the row seeds) only."""
        self.agent.reseed(seed)

    def before_update(self) -> None:
        return None

    def after_update(self, model: Any) -> None:
        """Nothing to sync: the agent decodes with the trained model itself, and its decoding engine's KV
        caches live for one rollout (a weight change also drops them, see :mod:`rlvr.agents.decoding`)."""
        return None


def policy_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """``(name, tensor)`` pairs of the policy under the base model's parameter names.

    For a peft LoRA model each adapted weight comes as a new tensor ``W + delta`` (the adapters' delta
    weight, computed apart); the base weights are never merged into and unmerged from, so syncing
    every step accumulates no rounding drift in them.
    """
    import torch

    try:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover - peft is part of the train extra
        PeftModel, LoraLayer = (), ()  # type: ignore[assignment]
    if not isinstance(model, PeftModel):
        for name, p in model.named_parameters():
            yield name, p.detach()
        return
    base = model.get_base_model()
    adapted = {f"{name}.weight": mod for name, mod in base.named_modules()
               if isinstance(mod, LoraLayer) and not getattr(mod, "merged", False)}
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "lora_" in name:
                continue
            clean = name.replace(".base_layer", "")
            mod = adapted.get(clean)
            if mod is None or not name.endswith("base_layer.weight"):
                yield clean, p.detach()
                continue
            delta = sum(mod.get_delta_weight(a) for a in mod.active_adapters if a in mod.lora_A)
            yield clean, (p.detach() + delta).to(p.dtype) if isinstance(delta, torch.Tensor) else p.detach()


class VLLMBackend:
    """Rollouts with an in-process, colocated vLLM engine (GPU only; vLLM imported lazily).

    The engine sleeps during each update (its KV cache and weights leave the GPU) and wakes up
    with the updated policy weights loaded. ``top_p`` must be 1: vLLM's processed log-probs are
    renormalised over the nucleus, the trainer's are over the whole vocabulary.
    """

    name = "vllm"

    def __init__(self, model_name: str, *, max_new_tokens: int, temperature: float, top_p: float,
                 gpu_memory_utilization: float, max_context: int, seed: int) -> None:
        if top_p < 1:
            raise ConfigError(f"the vLLM backend needs top_p=1 (got {top_p}): vLLM's processed log-probs are "
                              "renormalised over the top-p nucleus, the trainer's are not, so the PPO ratio would "
                              "be biased; use top_p=1, or the hf backend")
        # processed_logprobs: log-probs of the temperature-scaled sampling distribution, as the
        # trainer computes them (needs vLLM >= 0.10.2)
        self.agent = TokenExactVLLMAgent(model_name, max_new_tokens=max_new_tokens, temperature=temperature,
                                         top_p=top_p, gpu_memory_utilization=gpu_memory_utilization,
                                         enable_sleep_mode=True, seed=seed, max_model_len=max_context,
                                         logprobs_mode="processed_logprobs")

    def reseed(self, seed: int) -> None:
        """Sampling of the following rollouts depends on ``seed`` (and the row seeds) only."""
        self.agent.reseed(seed)

    def before_update(self) -> None:
        self.agent.sleep(level=1)

    def after_update(self, model: Any) -> None:
        """Hand the update's cached memory back to the device (the update freed its gradients), wake the
        engine's weights, load the policy's, and only then wake its KV cache."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.agent.wake_up(tags=["weights"])
        self.agent.load_weights(policy_weights(model))
        self.agent.wake_up(tags=["kv_cache"])
