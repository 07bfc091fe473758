"""Rollout backends for training: token-exact prompts, and the hooks around a policy update.

Both backends present the same interface to the trainer:

* ``agent``: what :func:`rlvr.agents.rollout.rollout` drives (an agent with ``act_batch``);
* ``reseed(seed)``: make the next rollouts' sampling a function of ``seed`` alone (resumable runs);
* ``clear()``: forget the token memory of finished conversations;
* ``before_update()`` / ``after_update(model)``: free the engine's memory during the update and
  sync the updated weights into it (no-ops for the transformers backend, which samples from the
  very model being trained).

Token-exact prompts: from the second turn on, a conversation's prompt is the previous prompt's
ids, plus the ids the policy generated, plus the environment's messages rendered by
:class:`~rlvr.agents.trainer.sequences.TemplateRenderer`. So the context the policy sampled from
is exactly the prefix of the training sequence, and the rollout log-probs are the "old" log-probs
of the PPO ratio with no re-tokenisation drift.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Sequence

from rlvr.agents.base import Generation, Messages
from rlvr.agents.hf import HFAgent, chat_prompt_ids
from rlvr.agents.trainer.sequences import TemplateRenderer
from rlvr.errors import ModelLoadError

__all__ = ["HFBackend", "TokenExactHFAgent", "VLLMBackend", "policy_weights"]


def _key(messages: Sequence[dict[str, Any]]) -> str:
    blob = json.dumps([(m.get("role"), m.get("content")) for m in messages], ensure_ascii=False, default=repr)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()


class _TokenMemory:
    """Remembers ``(prompt_ids, completion_ids, text)`` per conversation to continue it token-exactly."""

    def __init__(self, tokenizer: Any) -> None:
        self.renderer = TemplateRenderer(tokenizer)
        self._memo: dict[str, tuple[list[int], list[int], str]] = {}

    def continue_ids(self, messages: Sequence[dict[str, Any]]) -> list[int] | None:
        """Prompt ids extending the remembered tokens of ``messages``' last assistant turn, if known."""
        k = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "assistant"), None)
        if k is None:
            return None
        hit = self._memo.get(_key(messages[: k + 1]))
        if hit is None:
            return None
        prompt, completion, _ = hit
        return prompt + completion + self.renderer.continuation_ids(completion, messages[k + 1 :])

    def remember(self, batch: Sequence[Messages], gens: Sequence[Generation]) -> None:
        for messages, g in zip(batch, gens):
            if g.prompt_ids is not None and g.completion_ids is not None:
                # keyed by the conversation *including* the reply: the G rollouts of a group share
                # their opening messages and differ from their first reply on
                key = _key([*messages, {"role": "assistant", "content": g.text}])
                self._memo[key] = (list(g.prompt_ids), list(g.completion_ids), g.text)

    def clear(self) -> None:
        self._memo.clear()


class TokenExactHFAgent(HFAgent):
    """:class:`~rlvr.agents.hf.HFAgent` whose later-turn prompts extend the earlier turns' exact tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memory = _TokenMemory(self.tokenizer)

    def encode(self, messages: Messages) -> list[int]:
        ids = self.memory.continue_ids(messages)
        return ids if ids is not None else super().encode(messages)

    def act_batch(self, batch: Sequence[Messages], seeds: Sequence[int] | None = None) -> list[Generation]:
        gens = super().act_batch(batch, seeds)
        self.memory.remember(batch, gens)
        return gens

    def reseed(self, seed: int) -> None:
        """Sampling of the following calls depends on ``seed`` and the call order only."""
        self.seed = seed
        self._calls = 0


class HFBackend:
    """Rollouts with transformers ``generate`` on the model being trained (CPU or GPU)."""

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int, temperature: float, top_p: float,
                 batch_size: int, max_context: int, seed: int) -> None:
        self.agent = TokenExactHFAgent(model, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, batch_size=batch_size, max_context=max_context, seed=seed)

    def reseed(self, seed: int) -> None:
        self.agent.reseed(seed)

    def clear(self) -> None:
        self.agent.memory.clear()

    def before_update(self) -> None:
        return None

    def after_update(self, model: Any) -> None:
        return None


def policy_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """``(name, tensor)`` pairs of the policy under the base model's parameter names.

    For a peft LoRA model the adapters are merged into a copy of each affected weight, so the
    engine receives plain weights.
    """
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is part of the train extra
        PeftModel = ()  # type: ignore[assignment]
    if isinstance(model, PeftModel):
        model.merge_adapter()
        try:
            base = model.get_base_model()
            for name, p in base.named_parameters():
                if "lora_" in name:
                    continue
                yield name.replace(".base_layer", ""), p.detach().clone()
        finally:
            model.unmerge_adapter()
    else:
        for name, p in model.named_parameters():
            yield name, p.detach()


class VLLMBackend:
    """Rollouts with an in-process, colocated vLLM engine (GPU only; vLLM imported lazily).

    The engine sleeps during each update (its KV cache and weights leave the GPU) and wakes up
    with the updated policy weights loaded.
    """

    name = "vllm"

    def __init__(self, model_name: str, *, max_new_tokens: int, temperature: float, top_p: float,
                 gpu_memory_utilization: float, max_context: int, seed: int) -> None:
        try:
            from rlvr.agents.vllm import VLLMAgent
        except ImportError as e:  # pragma: no cover - the module itself imports vllm lazily
            raise ModelLoadError(f"the vLLM backend is unavailable: {e}") from e

        class _TokenExactVLLMAgent(VLLMAgent):
            """Continues each conversation from the exact tokens of its previous turns."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.memory = _TokenMemory(self.tokenizer)

            def encode(self, messages: Messages) -> list[int]:
                ids = self.memory.continue_ids(messages)
                return ids if ids is not None else chat_prompt_ids(self.tokenizer, messages)

            def act_batch(self, batch: Sequence[Messages], seeds: Sequence[int] | None = None) -> list[Generation]:
                gens = super().act_batch(batch, seeds)
                self.memory.remember(batch, gens)
                return gens

        # processed_logprobs: log-probs of the temperature-scaled sampling distribution, as the
        # trainer computes them (needs vLLM >= 0.10.2)
        self.agent = _TokenExactVLLMAgent(model_name, max_new_tokens=max_new_tokens, temperature=temperature,
                                          top_p=top_p, gpu_memory_utilization=gpu_memory_utilization,
                                          enable_sleep_mode=True, seed=seed, max_model_len=max_context,
                                          logprobs_mode="processed_logprobs")

    def reseed(self, seed: int) -> None:
        self.agent.reseed(seed)

    def clear(self) -> None:
        self.agent.memory.clear()

    def before_update(self) -> None:
        self.agent.sleep(level=1)

    def after_update(self, model: Any) -> None:
        self.agent.wake_up()
        self.agent.load_weights(policy_weights(model))
