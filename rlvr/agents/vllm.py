"""``VLLMAgent``: in-process vLLM generation on GPU (imported lazily; CPU paths never need vLLM).

It exposes the same :class:`~rlvr.agents.base.Generation` records as :class:`~rlvr.agents.hf.HFAgent`
(prompt ids, exact completion ids, sampled-token log-probs), plus the hooks a colocated trainer needs:
:meth:`sleep` / :meth:`wake_up` to free GPU memory during the update and :meth:`load_weights` to sync
the policy after each update.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rlvr.agents.base import Generation, Messages, TokenAgent, check_row_seeds
from rlvr.agents.hf import chat_prompt_ids
from rlvr.agents.trajectory import text_hash
from rlvr.errors import ModelLoadError

__all__ = ["VLLMAgent", "request_seed"]


def request_seed(key: Sequence[int]) -> int:
    """A 32-bit vLLM request seed mixed from any non-negative integers (run seed, row seed, ...):
    never overflows, whatever the size of the run seed."""
    import numpy as np

    return int(np.random.SeedSequence([int(k) % (1 << 64) for k in key]).generate_state(1, np.uint32)[0])


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise ModelLoadError(
            "VLLMAgent needs vLLM on a CUDA machine: pip install 'rlvr-gym[vllm]'. "
            "On CPU use HFAgent (--agent smollm2 or hf:MODEL) instead."
        ) from e
    return vllm


class VLLMAgent(TokenAgent):
    """Generate with an in-process ``vllm.LLM``.

    Args:
        model: a hub id or local path (``"smollm2"`` resolves to the converted embedded model).
        max_new_tokens, temperature, top_p: sampling settings.
        gpu_memory_utilization: fraction of GPU memory vLLM may take (leave room for training).
        enable_sleep_mode: allow :meth:`sleep` / :meth:`wake_up` (colocated training).
        seed: sampling seed.
        **llm_kwargs: passed to ``vllm.LLM``.
    """

    def __init__(
        self,
        model: str = "smollm2",
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 1.0,
        gpu_memory_utilization: float = 0.4,
        enable_sleep_mode: bool = True,
        seed: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        from rlvr.agents.models import resolve_model_path

        self.model_id = model
        path = resolve_model_path(model)
        # processed log-probs: those of the temperature-scaled sampling distribution (vLLM >= 0.10.2)
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        self.llm = vllm.LLM(
            model=path, gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=enable_sleep_mode,
            seed=seed or 0, **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self.sampling = {"max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "logprobs": 0}
        self.seed = seed or 0
        self._calls = 0
        self.chat_template_hash = text_hash(getattr(self.tokenizer, "chat_template", None))

    def encode(self, messages: Messages) -> list[int]:
        """Prompt ids of one conversation (chat template with the generation prompt)."""
        return chat_prompt_ids(self.tokenizer, messages)

    def act(self, messages: Messages) -> str:
        return self.act_batch([messages])[0].text

    def act_ids(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None = None) -> list[Generation]:
        """One generation per prompt given as token ids (what :meth:`act_batch` runs after :meth:`encode`)."""
        check_row_seeds(seeds, len(prompts), "act_ids", "prompts")
        prompts = [list(p) for p in prompts]
        self._calls += 1
        # one seed per request: a shared seed would give identical prompts (a GRPO group) identical samples
        keys = [[self.seed, int(s)] for s in seeds] if seeds is not None else [
            [self.seed, self._calls, j] for j in range(len(prompts))]
        params = [self._vllm.SamplingParams(**self.sampling, seed=request_seed(k)) for k in keys]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        gens = []
        for p, o in zip(prompts, outs):
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = [float(step[t].logprob) for step, t in zip(c.logprobs or [], ids)] if c.logprobs else None
            gens.append(Generation(c.text, p, ids, lps, c.finish_reason))
        return gens

    def reseed(self, seed: int) -> None:
        """Make the following generations a function of ``seed`` alone (resumable training)."""
        self.seed, self._calls = seed, 0

    def sleep(self, level: int = 1) -> None:
        """Release GPU memory (weights offloaded at level 1, discarded at level 2) while the trainer updates."""
        self.llm.sleep(level=level)

    def wake_up(self) -> None:
        self.llm.wake_up()

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Copy updated policy weights into the engine (call after each optimiser step)."""
        weights = list(named_tensors)

        def _load(worker: Any) -> None:
            worker.model_runner.model.load_weights(weights=weights)

        self.llm.collective_rpc(_load)
        self.llm.reset_prefix_cache()
