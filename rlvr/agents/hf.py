"""``HFAgent``: batched generation with transformers, returning exact token ids and log-probs."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Hashable, Literal, Sequence

from rlvr.agents.base import Generation, Messages, TokenAgent, check_row_seeds, turn_seed
from rlvr.agents.trajectory import Turn, text_hash
from rlvr.errors import ConfigError

__all__ = ["HFAgent", "HFStream", "chat_prompt_ids"]


def chat_prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    """Prompt ids of one conversation: the chat template with the generation prompt.

    Newer transformers return a mapping from ``apply_chat_template(tokenize=True)``, older a list.
    """
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return list(out)


class HFAgent(TokenAgent):
    """A transformers causal LM as an agent.

    ``act_batch`` renders each conversation with the tokenizer's chat template
    (``add_generation_prompt=True``) and generates. Each :class:`Generation`
    carries ``prompt_ids`` (what the model was given), ``completion_ids`` (exactly what it generated,
    the end-of-turn token included, padding excluded) and ``logprobs`` of those tokens under the
    sampling distribution ``softmax(logits / temperature)``.

    Args:
        model: ``"smollm2"`` (default), a hub id or path, or a loaded ``PreTrainedModel``.
        tokenizer: needed when ``model`` is an object.
        max_new_tokens: generation budget per turn.
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling (log-probs then ignore the truncation of the tail).
        batch_size: conversations per ``generate`` call.
        max_context: prompt + completion token limit; longer prompts return an empty generation with
            ``finish_reason="context_overflow"`` (the rollout truncates that episode).
        seed: sampling seed (applied in a forked RNG; global RNG state is left alone). Under
            :func:`~rlvr.agents.rollout.rollout`, ``act_batch(batch, seeds=...)`` gets one seed per
            conversation (from its episode seed and turn): each row then samples with its own
            generator seeded from ``(seed, row seed)``, so a conversation's tokens do not depend on
            the other conversations in its batch, nor on the concurrency. Without ``seeds`` the
            samples derive from ``seed``, the call count (and, with the engine, the row index).
        device: where to load the model when given by name.
        decoding: ``"continuous"``: the :class:`~rlvr.agents.decoding.DecodeEngine` (token-level
            continuous batching, KV caches kept per conversation between turns under
            :func:`~rlvr.agents.rollout.rollout`, see :meth:`open_stream`); ``"generate"``: one
            left-padded ``model.generate`` per batch, the rollout then runs lock-step (every
            conversation generates, then every environment steps); ``"auto"`` (default):
            ``"continuous"`` when the engine supports the model (full attention in every layer).
            Both sample the same tokens under the same seeds.
        prefix_reuse: with ``"continuous"``, prefill only the tokens that extend a conversation's
            cached ids (off: every turn is prefilled in full).
        prefix_cache_tokens: with ``prefix_reuse``, the engine's shared prefix cache: a turn also starts
            from the longest prefix it shares with another conversation's cache (the episodes of a group
            share their first prompt), and released conversations' first prompts stay in an LRU of at
            most this many tokens; 0 switches it off. Caches live for one rollout (one stream).
    """

    def __init__(
        self,
        model: Any = "smollm2",
        tokenizer: Any = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 1.0,
        batch_size: int = 16,
        max_context: int | None = None,
        seed: int | None = None,
        device: str | None = None,
        decoding: Literal["auto", "continuous", "generate"] = "auto",
        prefix_reuse: bool = True,
        prefix_cache_tokens: int = 2048,
    ) -> None:
        if decoding not in ("auto", "continuous", "generate"):
            raise ConfigError(f"decoding must be 'auto', 'continuous' or 'generate', got {decoding!r}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if prefix_cache_tokens < 0:
            raise ConfigError(f"prefix_cache_tokens must be >= 0 (0: no shared prefix cache), "
                              f"got {prefix_cache_tokens}")
        if isinstance(model, str):
            from rlvr.agents.models import load_model

            self.model_id = model
            model, tokenizer = load_model(model, device=device)
        else:
            if tokenizer is None:
                raise ConfigError("HFAgent(model=<object>) also needs tokenizer=")
            self.model_id = getattr(model, "name_or_path", None) or type(model).__name__
        self.model, self.tokenizer = model, tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size
        cfg_ctx = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.max_context = max_context or cfg_ctx or 8192
        self.seed = seed
        self._calls = 0
        self.chat_template_hash = text_hash(getattr(tokenizer, "chat_template", None))
        self.eos_ids = self._eos_ids()
        from rlvr.agents.decoding import supports

        if decoding == "continuous" and not supports(model):
            raise ConfigError(f"decoding='continuous' needs full attention in every layer; {type(model).__name__} "
                              "has sliding-window or other layers: use decoding='generate'")
        self.decoding = "generate" if decoding == "generate" or not supports(model) else "continuous"
        self.prefix_reuse = prefix_reuse
        self.prefix_cache_tokens = prefix_cache_tokens
        self.decode_stats = {"prefill_tokens": 0, "reused_tokens": 0, "shared_tokens": 0, "generated_tokens": 0}
        """Token counts of every generation so far (prefilled, taken from the conversation's kept cache,
        taken from the shared prefix cache, generated)."""

    def _eos_ids(self) -> set[int]:
        ids = set()
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for x in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(x, int):
                ids.add(x)
            elif isinstance(x, (list, tuple)):
                ids.update(int(i) for i in x)
        return ids

    def encode(self, messages: Messages) -> list[int]:
        """The prompt ids for one conversation (chat template with the generation prompt)."""
        return chat_prompt_ids(self.tokenizer, messages)

    def act(self, messages: Messages) -> str:
        return self.act_batch([messages])[0].text

    def reseed(self, seed: int) -> None:
        """Sampling of the following calls depends on ``seed`` (and the row seeds, or the call order) only."""
        self.seed = seed
        self._calls = 0

    def act_ids(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None = None) -> list[Generation]:
        """One generation per prompt given as token ids (what :meth:`act_batch` runs after :meth:`encode`)."""
        check_row_seeds(seeds, len(prompts), "act_ids", "prompts")
        prompts = [list(p) for p in prompts]
        results: list[Generation | None] = [None] * len(prompts)
        todo = []
        for i, p in enumerate(prompts):
            if len(p) + 1 > self.max_context:
                results[i] = Generation("", p, [], [], "context_overflow")
            else:
                todo.append(i)
        if self.decoding == "continuous":
            self._calls += 1
            engine = self._engine(prefix_reuse=False)
            for i in todo:
                row_seed = seeds[i] if seeds is not None else None
                engine.add(i, prompts[i], self._budget(prompts[i]), self._generator(row_seed, i))
            for f in engine.run():
                results[f.key] = self._generation(f)  # type: ignore[index]
            self._count(engine.stats)
            return results  # type: ignore[return-value]
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            row_seeds = [seeds[i] for i in idx] if seeds is not None else None
            for i, g in zip(idx, self._generate([prompts[i] for i in idx], row_seeds)):
                results[i] = g
        return results  # type: ignore[return-value]

    def open_stream(self) -> "HFStream | None":
        """A continuous-batching session for :func:`~rlvr.agents.rollout.rollout` (``None`` with
        ``decoding="generate"``): conversations are submitted one by one and come back as each finishes,
        and a conversation's KV cache is kept from one turn to the next until :meth:`HFStream.release`."""
        return HFStream(self) if self.decoding == "continuous" else None

    def _engine(self, prefix_reuse: bool) -> Any:
        from rlvr.agents.decoding import DecodeEngine

        return DecodeEngine(self.model, eos_ids=sorted(self.eos_ids), temperature=self.temperature, top_p=self.top_p,
                            max_batch=self.batch_size, prefix_reuse=prefix_reuse,
                            prefix_cache_tokens=self.prefix_cache_tokens)

    def _budget(self, prompt: Sequence[int]) -> int:
        return max(1, min(self.max_new_tokens, self.max_context - len(prompt)))

    def _generator(self, row_seed: int | None, index: int) -> Any:
        """Row ``index``'s generator: from ``(seed, row seed)``, else from ``(seed, call count, index)``; None
        (the global generator) without a seed or when decoding greedily."""
        import torch

        if self.seed is None or self.temperature == 0:
            return None
        s = turn_seed(self.seed, row_seed) if row_seed is not None else turn_seed(self.seed * 1_000_003 + self._calls, index)
        return torch.Generator(device="cpu").manual_seed(s)

    def _generation(self, f: Any) -> Generation:
        text = self.tokenizer.decode(f.completion_ids, skip_special_tokens=True)
        return Generation(text, f.prompt_ids, f.completion_ids, f.logprobs, f.finish_reason)

    def _count(self, stats: dict[str, int]) -> None:
        for k in self.decode_stats:
            self.decode_stats[k] += stats.get(k, 0)

    def _row_generators(self, row_seeds: Sequence[int]) -> list[Any]:
        """One CPU ``torch.Generator`` per row, seeded from ``(self.seed, row seed)``."""
        import torch

        return [torch.Generator(device="cpu").manual_seed(turn_seed(self.seed, r)) for r in row_seeds]  # type: ignore[arg-type]

    def _generate(self, prompts: list[list[int]], row_seeds: Sequence[int] | None = None) -> list[Generation]:
        import torch

        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p) :] = 1
        budget = min(self.max_new_tokens, self.max_context - width)
        sample = self.temperature > 0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(1, budget),
            do_sample=sample,
            pad_token_id=pad,
            eos_token_id=sorted(self.eos_ids) or None,
            return_dict_in_generate=True,
            output_logits=True,
        )
        per_row = sample and row_seeds is not None and self.seed is not None
        if per_row:
            # each row draws its token from its own generator; generate() then only takes the argmax
            from transformers import LogitsProcessorList

            sampler = _row_sampler(self._row_generators(row_seeds), self.temperature, self.top_p)  # type: ignore[arg-type]
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None,
                          logits_processor=LogitsProcessorList([sampler]))
        elif sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        self._calls += 1
        rng = contextlib.nullcontext()
        if self.seed is not None and not per_row:
            devices = [device.index or 0] if device.type == "cuda" else []
            rng = torch.random.fork_rng(devices=devices)
        with rng, torch.no_grad():
            if self.seed is not None and not per_row:  # per-row generators leave the global state alone
                torch.manual_seed(self.seed * 1_000_003 + self._calls)
            out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attn.to(device), **kwargs)
        new = out.sequences[:, width:]
        self._count({"prefill_tokens": sum(len(p) for p in prompts), "generated_tokens": int(new.numel())})
        return generations_from(prompts, new, out.logits, self.temperature if sample else 1.0, self.eos_ids,
                                lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))


def generations_from(prompts: Sequence[Sequence[int]], new: Any, step_logits: Sequence[Any], scale: float,
                     eos_ids: set[int] | frozenset[int], decode: Callable[[list[int]], str]) -> list[Generation]:
    """:class:`Generation` records from ``generate``'s new tokens ``[B, T]`` and its per-step logits (``T``
    tensors of ``[B, V]``, divided by ``scale``): each row is cut after its first end-of-sequence token
    (finish reason ``"stop"``, else ``"length"``). Log-probs are taken one step at a time on the device,
    for the chosen tokens only, so no ``[B, T, V]`` tensor is built or copied to the host."""
    import torch

    logp = torch.stack([torch.log_softmax(step.float() / scale, dim=-1).gather(-1, new[:, j : j + 1])[:, 0]
                        for j, step in enumerate(step_logits)], dim=1).cpu()
    new = new.cpu()
    gens = []
    for i, p in enumerate(prompts):
        ids = new[i].tolist()
        n, reason = len(ids), "length"
        for j, t in enumerate(ids):
            if t in eos_ids:
                n, reason = j + 1, "stop"
                break
        comp = ids[:n]
        gens.append(Generation(decode(comp), list(p), comp, [float(x) for x in logp[i, :n]], reason))
    return gens


class HFStream:
    """A continuous-batching session over an :class:`HFAgent` (from :meth:`HFAgent.open_stream`).

    ``submit`` queues one conversation's next turn under ``key`` (the rollout uses one key per
    environment slot), ``poll`` decodes one step and returns the ``(key, Generation)`` pairs that
    finished in it, ``release(key)`` frees a conversation's kept cache when its episode ends, and
    ``close`` frees everything (and adds the session's token counts to ``agent.decode_stats``).
    """

    def __init__(self, agent: HFAgent) -> None:
        self.agent = agent
        self.engine = agent._engine(prefix_reuse=agent.prefix_reuse)
        self._ready: list[tuple[Hashable, Generation]] = []
        self._unseeded = 0

    def submit(self, key: Hashable, messages: Messages, *, seed: int | None = None,
               history: Sequence[Turn] = ()) -> None:
        """Queue the next turn of conversation ``key``: its ``messages``, row ``seed`` and turns so far."""
        if key is None:
            raise ConfigError("HFStream.submit needs a conversation key (any hashable but None)")
        agent = self.agent
        prompt = list(agent.prompt_for(messages, history))
        if len(prompt) + 1 > agent.max_context:
            self.engine.release(key)
            self._ready.append((key, Generation("", prompt, [], [], "context_overflow")))
            return
        if seed is None:
            self._unseeded += 1
        self.engine.add(key, prompt, agent._budget(prompt), agent._generator(seed, self._unseeded))

    @property
    def busy(self) -> bool:
        """Whether submitted turns have not been returned by :meth:`poll` yet."""
        return bool(self._ready) or self.engine.busy

    def poll(self) -> list[tuple[Hashable, Generation]]:
        """One decode step; the turns that finished (a context overflow comes back at the next poll)."""
        out, self._ready = self._ready, []
        if self.engine.busy:
            out.extend((f.key, self.agent._generation(f)) for f in self.engine.step())
        return out

    def release(self, key: Hashable) -> None:
        """Free the cache kept for conversation ``key``."""
        self.engine.release(key)

    def close(self) -> None:
        """Free every cache and buffer of the session."""
        self.agent._count(self.engine.stats)
        self.engine.clear()


def _row_sampler(generators: list[Any], temperature: float, top_p: float) -> Any:
    """A logits processor that samples row ``i``'s next token with ``generators[i]`` and masks every other token.

    Sampling follows transformers' own: ``softmax(logits / temperature)``, nucleus ``top_p`` as in
    ``TopPLogitsWarper`` (the smallest set of tokens whose probability reaches ``top_p``, at least one).
    The draw is :func:`~rlvr.agents.decoding.choose_tokens`'s: float32, with the row's own CPU
    generator (the random stream of ``torch.multinomial``), so it depends on that row's logits only
    (which batched forward passes of other shapes reproduce up to float rounding).
    """
    import torch
    from transformers import LogitsProcessor

    from rlvr.agents.decoding import choose_tokens

    class _RowSampler(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            picks, _ = choose_tokens(scores.detach(), generators, temperature, top_p)
            out = torch.full_like(scores, float("-inf"))
            out[torch.arange(len(picks), device=scores.device), picks] = 0.0
            return out

    return _RowSampler()
