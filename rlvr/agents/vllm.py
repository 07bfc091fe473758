"""``VLLMAgent``: in-process vLLM generation on GPU (imported lazily; CPU paths never need vLLM).

It exposes the same :class:`~rlvr.agents.base.Generation` records as :class:`~rlvr.agents.hf.HFAgent`
(prompt ids, exact completion ids, sampled-token log-probs; a prompt that leaves no room in the context
returns ``finish_reason="context_overflow"``), plus the hooks a colocated trainer needs:
:meth:`sleep` / :meth:`wake_up` to free GPU memory during the update and :meth:`load_weights` to sync
the policy after each update.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) unless ``in_process=False``:
vLLM's default engine lives in another process and serialises every call with msgpack, which refuses
the function :meth:`load_weights` sends to the workers (and would copy every weight through the host).
In-process, the policy's tensors reach the engine's model directly, GPU to GPU.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from rlvr.agents.base import Generation, Messages, TokenAgent, check_row_seeds
from rlvr.agents.hf import chat_prompt_ids
from rlvr.agents.trajectory import text_hash
from rlvr.errors import ConfigError, ModelLoadError

__all__ = ["VLLMAgent", "request_seed"]

_MP_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


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
        in_process: run the engine in this process (needed by :meth:`load_weights`; see the module notes).
        **llm_kwargs: passed to ``vllm.LLM`` (``dtype`` defaults to ``"bfloat16"``, ``max_model_len`` bounds
            prompt + completion).
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
        in_process: bool = True,
        **llm_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        from rlvr.agents.models import resolve_model_path

        self.model_id = model
        path = resolve_model_path(model)
        # processed log-probs: those of the temperature-scaled sampling distribution (vLLM >= 0.10.2)
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        llm_kwargs.setdefault("dtype", "bfloat16")
        self.in_process = in_process
        saved = os.environ.get(_MP_ENV)
        if in_process:  # read by vLLM while it builds the engine; restored after
            os.environ[_MP_ENV] = "0"
        try:
            self.llm = vllm.LLM(
                model=path, gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=enable_sleep_mode,
                seed=seed or 0, **llm_kwargs,
            )
        finally:
            if saved is None:
                os.environ.pop(_MP_ENV, None)
            else:
                os.environ[_MP_ENV] = saved
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self.sampling = {"temperature": temperature, "top_p": top_p, "logprobs": 0}
        self.max_new_tokens = max_new_tokens
        self.max_context = int(llm_kwargs.get("max_model_len") or self.llm.llm_engine.model_config.max_model_len)
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
        gens: list[Generation | None] = [None] * len(prompts)
        todo, params = [], []
        for i, (p, k) in enumerate(zip(prompts, keys)):
            room = self.max_context - len(p)
            if room < 1:  # vLLM would raise for the whole batch: this conversation alone ends
                gens[i] = Generation("", p, [], [], "context_overflow")
                continue
            todo.append(i)
            params.append(self._vllm.SamplingParams(**self.sampling, max_tokens=min(self.max_new_tokens, room),
                                                    seed=request_seed(k)))
        outs = self.llm.generate([{"prompt_token_ids": prompts[i]} for i in todo], params, use_tqdm=False) if todo else []
        for i, o in zip(todo, outs):
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = [float(step[t].logprob) for step, t in zip(c.logprobs or [], ids)] if c.logprobs else None
            gens[i] = Generation(c.text, prompts[i], ids, lps, c.finish_reason)
        return gens  # type: ignore[return-value]

    def reseed(self, seed: int) -> None:
        """Make the following generations a function of ``seed`` alone (resumable training)."""
        self.seed, self._calls = seed, 0

    def sleep(self, level: int = 1) -> None:
        """Release GPU memory (weights offloaded at level 1, discarded at level 2) while the trainer updates."""
        self.llm.sleep(level=level)

    def wake_up(self, tags: Sequence[str] | None = None) -> None:
        """Bring back what :meth:`sleep` released: everything, or only ``tags`` (``"weights"``, ``"kv_cache"``),
        so a trainer can load new weights before the KV cache takes its memory again."""
        if tags is None:
            self.llm.wake_up()
        else:
            self.llm.wake_up(tags=list(tags))

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Copy updated policy weights into the engine (call after each optimiser step). Needs the engine
        in this process (``in_process=True``, the default)."""
        if not self.in_process:
            raise ConfigError("VLLMAgent.load_weights needs the engine in this process: build the agent with "
                              "in_process=True (VLLM_ENABLE_V1_MULTIPROCESSING=0); a multiprocess engine cannot "
                              "receive the function that loads the weights")
        weights = list(named_tensors)

        def _load(worker: Any) -> None:
            worker.model_runner.model.load_weights(weights=weights)

        self.llm.collective_rpc(_load)
        self.llm.reset_prefix_cache()
