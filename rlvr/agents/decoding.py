"""A decoding engine for transformers causal LMs: continuous batching and per-conversation KV caches.

:class:`DecodeEngine` runs generation requests (token ids in, token ids and log-probs out) one decode
step at a time over a running batch of at most ``max_batch`` rows:

* **Continuous batching.** Requests join the running batch between decode steps (after their own
  prefill) and leave it as soon as they stop (end token or budget): a finished row frees its slot at
  once, and :meth:`DecodeEngine.step` returns it while the other rows keep decoding.
* **Prefix reuse.** A request made under a conversation ``key`` starts from that conversation's KV
  cache, kept when its previous request finished: only the tokens after the longest common prefix of
  the cached ids and the new prompt are prefilled (turn ``k``'s prompt extends turn ``k-1``'s exact
  ids, so that is the new observation and the generation prompt). A prompt that does not extend the
  cached ids falls back to a prefill from where they differ (a full prefill when they differ at once).
  :meth:`DecodeEngine.release` frees a conversation's cache (the rollout calls it when the episode ends).
* **Shared prefix cache.** A request also starts from the longest common prefix it has with any other
  cached token sequence (automatic prefix caching): the caches kept for other conversations, the rows
  running in the batch (a row admitted in the same :meth:`~DecodeEngine.step` included, so the episodes
  of a GRPO group, which share their first prompt, prefill it once), and a small LRU of released
  conversations' first prompts (those of finished episodes, for the episodes that start later). Those
  keys and values are copied, not recomputed (counted in ``stats["shared_tokens"]``; a conversation's
  own cache in ``stats["reused_tokens"]``). ``prefix_cache_tokens`` bounds that LRU (tokens; each
  token costs ``2 * layers * kv_heads * head_dim`` values, 46 KB for SmolLM2-135M in float32);
  ``prefix_cache_tokens=0`` switches the shared cache off (only a conversation's own cache is reused).
  A cache is only valid for the weights that computed it: the engine fingerprints the parameters
  (identity, storage and in-place version counter of every tensor, and a sum over a few of its
  elements) before admitting requests, and any change (an optimizer step, ``load_state_dict``, a
  merged adapter, swapped tensors, an update through ``p.data``) drops every kept cache.
* In every case at least the prompt's last token is prefilled (for the next-token logits), and the
  values are the uncached path's (a token's keys and values depend only on the tokens up to it): the
  same tokens under the same seeds, log-probs equal up to float rounding.
* **Sampling** as :class:`~rlvr.agents.hf.HFAgent` samples: ``softmax(logits / temperature)`` with
  nucleus ``top_p`` (the smallest set of tokens whose probability reaches ``top_p``), one draw per row
  from that row's own CPU ``torch.Generator`` with the same random stream as ``torch.multinomial``
  (``argmax(p / q)``, ``q ~ Exp(1)``), so the same seeds give the same tokens as the uncached path;
  greedy at temperature 0. Log-probs are those of the chosen tokens under ``softmax(logits /
  temperature)``; only the chosen ids and their log-probs leave the device.

The KV cache of the running batch lives in preallocated buffers ``[max_batch, kv_heads, capacity,
head_dim]`` per layer, written in place (no copy of the whole cache per step). Rows are aligned on a
shared column count; a row's padding columns are masked, and every token gets its row's own position
id, so padding never changes a row's values. When more than half of the columns are padding, the
batch is compacted.

Supported models: decoder-only transformers models whose layers all use full attention (Llama,
Qwen2/3, Mistral without a sliding window, SmolLM2, ...): :func:`supports` says which.
"""

from __future__ import annotations

import inspect
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from rlvr.agents.trajectory import common_prefix
from rlvr.errors import ConfigError

__all__ = ["DecodeEngine", "Finished", "choose_tokens", "supports"]


def supports(model: Any) -> bool:
    """Whether :class:`DecodeEngine` can drive ``model``: a decoder-only LM whose layers all use full attention."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "is_encoder_decoder", False):
        return False
    if hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config(decoder=True)
    types = getattr(cfg, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return getattr(cfg, "sliding_window", None) is None or getattr(cfg, "use_sliding_window", True) is False


def choose_tokens(logits: torch.Tensor, generators: Sequence[torch.Generator | None], temperature: float,
                  top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token of each row of ``logits`` ``[B, V]`` and its log-prob under ``softmax(logits / temperature)``.

    Temperature 0 takes the argmax. Otherwise row ``i`` is drawn from ``softmax(logits / temperature)``
    restricted to its ``top_p`` nucleus with ``generators[i]`` (``None``: the global CPU generator),
    as ``torch.multinomial(probs, 1, generator=generators[i])`` draws it: ``argmax(probs / q)`` with
    ``q`` exponential noise taken from that generator on CPU. Returns ``(tokens [B], logprobs [B])`` on
    ``logits``' device.
    """
    logits = logits.float()
    if temperature == 0:
        tokens = logits.argmax(dim=-1)
        return tokens, torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None])[:, 0]
    scaled = logits / temperature
    logp = torch.log_softmax(scaled, dim=-1)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=False, dim=-1)
        drop = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        drop[..., -1:] = False
        scaled = scaled.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    vocab = probs.shape[-1]
    noise = torch.stack([torch.empty(vocab, dtype=torch.float32).exponential_(1, generator=g) for g in generators])
    tokens = (probs / noise.to(probs.device)).argmax(dim=-1)
    return tokens, logp.gather(-1, tokens[:, None])[:, 0]


@dataclass(slots=True)
class Finished:
    """A finished request: its generated ids (the end token included), their log-probs and why it stopped
    (``"stop"``: an end token, ``"length"``: the budget)."""

    key: Hashable
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str


@dataclass(slots=True)
class _Row:
    key: Hashable
    prompt: list[int]
    budget: int
    generator: torch.Generator | None
    completion: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    length: int = 0  # tokens in the cache (= the position id of the next input token)
    first: int = 0  # tokens of its conversation's first prompt (what the LRU keeps when it is released)
    epoch: int = 0  # the weights' epoch its cache was computed under


@dataclass(slots=True)
class _Stored:
    ids: list[int]  # the tokens whose keys and values are cached
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, [kv_heads, len(ids), head_dim]
    first: int = 0  # tokens of the conversation's first prompt


class _BufferLayer(CacheLayerMixin):
    """One layer's keys and values in preallocated buffers; the engine sets which rows and columns a forward uses."""

    is_sliding = False
    is_compileable = False

    def __init__(self) -> None:
        super().__init__()
        self.is_initialized = True
        self.rows = slice(0, 0)
        self.start = 0  # first column of the window the forward sees
        self.length = 0  # cached columns in that window before the forward

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise AssertionError("buffers are allocated by the engine")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        q = key_states.shape[-2]
        lo, hi = self.start + self.length, self.start + self.length + q
        self.keys[self.rows, :, lo:hi] = key_states
        self.values[self.rows, :, lo:hi] = value_states
        self.length += q
        return self.keys[self.rows, :, self.start : hi], self.values[self.rows, :, self.start : hi]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1


class DecodeEngine:
    """Continuous-batching decoder with per-conversation KV caches (see the module docstring).

    Args:
        model: a transformers causal LM (see :func:`supports`); used under ``torch.no_grad()``.
        eos_ids: token ids that end a generation (kept as its last token).
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling.
        max_batch: rows decoded together; further requests wait for a free slot.
        prefix_reuse: keep each keyed conversation's cache between requests (off: every request is
            prefilled in full, the reference path, and the shared prefix cache is off too).
        prefix_cache_tokens: with ``prefix_reuse``, the shared prefix cache: requests also start from
            other conversations' and running rows' caches, and from an LRU of released conversations'
            first prompts holding at most this many tokens; 0 switches the shared cache off.
    """

    def __init__(self, model: Any, *, eos_ids: Sequence[int], temperature: float, top_p: float, max_batch: int,
                 prefix_reuse: bool = True, prefix_cache_tokens: int = 2048) -> None:
        if not supports(model):
            raise ConfigError(f"DecodeEngine needs a decoder-only model whose layers all use full attention; "
                              f"{type(model).__name__} is not one (use HFAgent(decoding='generate'))")
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        if prefix_cache_tokens < 0:
            raise ConfigError(f"prefix_cache_tokens must be >= 0 (0: no shared prefix cache), "
                              f"got {prefix_cache_tokens}")
        self.model = model
        self.eos_ids = set(int(i) for i in eos_ids)
        self.temperature, self.top_p = temperature, top_p
        self.max_batch = max_batch
        self.prefix_reuse = prefix_reuse
        self.shared = prefix_reuse and prefix_cache_tokens > 0
        self.prefix_cache_tokens = prefix_cache_tokens
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        cfg = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
        n_heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
        self.n_layers = cfg.num_hidden_layers
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._logits_kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache = Cache(layers=[_BufferLayer() for _ in range(self.n_layers)])
        self._capacity = 0
        self._mask = torch.zeros((max_batch, 0), dtype=torch.bool, device=self.device)
        self.rows: list[_Row] = []  # the running batch, row i in buffer slot i
        self.width = 0  # columns in use, shared by the running rows
        self.waiting: deque[_Row] = deque()
        self.store: dict[Hashable, _Stored] = {}
        self.lru: list[_Stored] = []  # released conversations' first prompts, least recently used first
        self._epoch, self._fingerprint = 0, self._weights_fingerprint() if prefix_reuse else ()
        self.stats = {"prefill_tokens": 0, "reused_tokens": 0, "shared_tokens": 0, "generated_tokens": 0,
                      "decode_steps": 0, "compactions": 0, "invalidations": 0}
        """Token counts: ``prefill_tokens`` computed, ``reused_tokens`` copied from the conversation's own
        cache, ``shared_tokens`` copied from the shared prefix cache (another conversation, a running row
        or the LRU); ``invalidations``: weight changes that dropped the kept caches."""

    # ------------------------------------------------------------------ requests

    def add(self, key: Hashable, prompt_ids: Sequence[int], max_new_tokens: int,
            generator: torch.Generator | None = None) -> None:
        """Queue a request. ``key`` names its conversation (``None``: no cache is kept after it finishes)."""
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ConfigError("DecodeEngine.add got an empty prompt; give at least one token")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if key is not None and any(r.key == key for r in (*self.rows, *self.waiting)):
            raise ConfigError(f"conversation {key!r} already has a request in flight; wait for it to finish")
        self.waiting.append(_Row(key, prompt, max_new_tokens, generator))

    @property
    def busy(self) -> bool:
        """Whether requests are running or waiting."""
        return bool(self.rows or self.waiting)

    def release(self, key: Hashable) -> None:
        """Free the cache kept for conversation ``key`` (no-op when there is none); with the shared prefix
        cache on, its first prompt moves to the LRU for the conversations that start later."""
        stored = self.store.pop(key, None)
        if stored is not None and self.shared and stored.first > 0:
            self._remember(stored)

    def clear(self) -> None:
        """Drop every request and every kept cache, and free the buffers."""
        self.rows, self.waiting, self.store, self.lru = [], deque(), {}, []
        self.width = self._capacity = 0
        for layer in self.cache.layers:
            layer.keys = layer.values = None
        self._mask = torch.zeros((self.max_batch, 0), dtype=torch.bool, device=self.device)

    def cached_tokens(self) -> int:
        """Tokens whose keys and values are kept for conversations between requests."""
        return sum(len(s.ids) for s in self.store.values())

    def lru_tokens(self) -> int:
        """Tokens held by the shared prefix cache's LRU (at most ``prefix_cache_tokens``)."""
        return sum(len(s.ids) for s in self.lru)

    def invalidate(self) -> None:
        """Drop every kept cache (conversations' and the LRU's): the weights changed. Running rows keep
        decoding on what they have but no longer serve as a prefix for new requests."""
        self.store, self.lru = {}, []
        self._epoch += 1
        self.stats["invalidations"] += 1

    def run(self) -> list[Finished]:
        """Step until every queued request has finished; in finishing order."""
        done: list[Finished] = []
        while self.busy:
            done.extend(self.step())
        return done

    def step(self) -> list[Finished]:
        """Admit waiting requests into free slots (prefilling them), then decode one token for every running row.

        Returns the requests that finished during this step (their slots are already free).
        """
        done: list[Finished] = []
        if self.waiting and len(self.rows) < self.max_batch and self.prefix_reuse:
            fingerprint = self._weights_fingerprint()
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                self.invalidate()
        with torch.no_grad():
            while self.waiting and len(self.rows) < self.max_batch:
                row = self.waiting.popleft()
                finished = self._admit(row)
                if finished is not None:
                    done.append(finished)
            if self.rows:
                done.extend(self._decode())
        return done

    # ------------------------------------------------------------------ internals

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None, rows: slice,
                 start: int, length: int) -> torch.Tensor:
        for layer in self.cache.layers:
            layer.rows, layer.start, layer.length = rows, start, length
        out = self.model(input_ids=ids, position_ids=positions, attention_mask=mask, use_cache=True,
                         **self._logits_kw, **{self._cache_kw: self.cache})
        return out.logits[:, -1]

    def _ensure_capacity(self, columns: int) -> None:
        if columns <= self._capacity:
            return
        cap = max(256, self._capacity)
        while cap < columns:
            cap *= 2
        shape = (self.max_batch, self.kv_heads, cap, self.head_dim)
        for layer in self.cache.layers:
            for name in ("keys", "values"):
                new = torch.zeros(shape, dtype=self.dtype, device=self.device)
                old = getattr(layer, name)
                if old is not None and self._capacity:
                    new[:, :, : self._capacity] = old
                setattr(layer, name, new)
        mask = torch.zeros((self.max_batch, cap), dtype=torch.bool, device=self.device)
        mask[:, : self._mask.shape[1]] = self._mask
        self._mask, self._capacity = mask, cap

    def _admit(self, row: _Row) -> Finished | None:
        """Prefill ``row`` into the next free slot, from the longest cached prefix of its prompt (its own
        conversation's cache, or with the shared cache on, any other)."""
        stored = self.store.pop(row.key, None) if row.key is not None else None
        n = len(row.prompt)
        limit = n - 1  # at least one token is prefilled, for the next-token logits
        reuse, source = 0, None
        if stored is not None and self.prefix_reuse:
            reuse, source = common_prefix(stored.ids, row.prompt, limit), stored
        row.first = stored.first if stored is not None and reuse >= stored.first > 0 else n
        row.epoch = self._epoch
        if self.shared:
            found = self._shared_prefix(row.prompt, limit, reuse)
            if found is not None:
                source, reuse = found
        slot = len(self.rows)
        start = self.width - n if n <= self.width else 0
        self._ensure_capacity(max(self.width, n))
        if reuse and isinstance(source, int):  # a running row's columns in the buffers
            cols = self._mask[source, : self.width].nonzero()[:, 0][:reuse]
            for layer in self.cache.layers:
                layer.keys[slot, :, start : start + reuse] = layer.keys[source, :, cols]
                layer.values[slot, :, start : start + reuse] = layer.values[source, :, cols]
        elif reuse:
            for layer, (k, v) in zip(self.cache.layers, source.kv):
                layer.keys[slot, :, start : start + reuse] = k[:, :reuse]
                layer.values[slot, :, start : start + reuse] = v[:, :reuse]
        new = torch.tensor([row.prompt[reuse:]], dtype=torch.long, device=self.device)
        positions = torch.arange(reuse, n, device=self.device)[None]
        ones = torch.ones((1, n), dtype=torch.bool, device=self.device)
        logits = self._forward(new, positions, ones, slice(slot, slot + 1), start, reuse)
        self.stats["prefill_tokens"] += n - reuse
        self.stats["reused_tokens" if source is stored else "shared_tokens"] += reuse
        row.length = n
        token, logp = choose_tokens(logits, [row.generator], self.temperature, self.top_p)
        if self._append(row, int(token[0]), float(logp[0])):
            self._keep(row, slot, start, start + n)
            return self._finished(row)
        if n > self.width:  # the new row is the longest: the others get masked columns up to its end
            self._mask[: len(self.rows), self.width : n] = False
            self.width = n
        self._mask[slot, :] = False
        self._mask[slot, start : start + n] = True
        self.rows.append(row)
        return None

    def _decode(self) -> list[Finished]:
        b, w = len(self.rows), self.width
        self._ensure_capacity(w + 1)
        self._mask[:b, w] = True
        ids = torch.tensor([[r.completion[-1]] for r in self.rows], dtype=torch.long, device=self.device)
        positions = torch.tensor([[r.length] for r in self.rows], dtype=torch.long, device=self.device)
        logits = self._forward(ids, positions, self._mask[:b, : w + 1], slice(0, b), 0, w)
        self.width = w + 1
        self.stats["decode_steps"] += 1
        tokens, logps = choose_tokens(logits, [r.generator for r in self.rows], self.temperature, self.top_p)
        stop = []
        for i, (row, t, lp) in enumerate(zip(self.rows, tokens.tolist(), logps.tolist())):
            row.length += 1
            if self._append(row, t, lp):
                stop.append(i)
        done = []
        for i in reversed(stop):
            row = self.rows[i]
            self._keep(row, i, 0, self.width)
            self._vacate(i)
            done.append(self._finished(row))
        if not self.rows:
            self.width = 0
        elif self.width > 64 and sum(r.length for r in self.rows) * 2 < len(self.rows) * self.width:
            self._compact()
        return done[::-1]

    def _append(self, row: _Row, token: int, logp: float) -> bool:
        """Record a sampled token; whether the row is done."""
        row.completion.append(token)
        row.logprobs.append(logp)
        self.stats["generated_tokens"] += 1
        return token in self.eos_ids or len(row.completion) >= row.budget

    def _finished(self, row: _Row) -> Finished:
        reason = "stop" if row.completion[-1] in self.eos_ids else "length"
        return Finished(row.key, row.prompt, row.completion, row.logprobs, reason)

    def _keep(self, row: _Row, slot: int, lo: int, hi: int) -> None:
        """Keep the cache of ``row`` (slot ``slot``, columns ``lo:hi``) for its conversation's next request."""
        if row.key is None or not self.prefix_reuse or row.epoch != self._epoch:
            return
        cols = self._mask[slot, lo:hi].nonzero()[:, 0] + lo if hi - lo != row.length else None
        kv = []
        for layer in self.cache.layers:
            if cols is None:
                kv.append((layer.keys[slot, :, lo:hi].clone(), layer.values[slot, :, lo:hi].clone()))
            else:
                kv.append((layer.keys[slot, :, cols], layer.values[slot, :, cols]))
        # the last sampled token was never fed to the model: it has no keys or values yet
        self.store[row.key] = _Stored([*row.prompt, *row.completion[:-1]], kv, row.first)

    def _shared_prefix(self, prompt: list[int], limit: int, at_least: int) -> tuple[_Stored | int, int] | None:
        """The cached sequence sharing the longest prefix with ``prompt`` (longer than ``at_least``, at most
        ``limit`` tokens): a kept conversation, an LRU entry (then marked as used) or a running row's slot."""
        best, best_len, lru_at = None, at_least, -1
        for stored in self.store.values():
            k = common_prefix(stored.ids, prompt, limit)
            if k > best_len:
                best, best_len = stored, k
        for i, stored in enumerate(self.lru):
            k = common_prefix(stored.ids, prompt, limit)
            if k > best_len:
                best, best_len, lru_at = stored, k, i
        for slot, row in enumerate(self.rows):
            if row.epoch != self._epoch:
                continue
            k = common_prefix(row.prompt, prompt, limit)
            if k == len(row.prompt) and row.length > k:
                k += common_prefix(row.completion[: row.length - k], prompt[k:], limit - k)
            if k > best_len:
                best, best_len = slot, k
        if best is None:
            return None
        if lru_at >= 0 and best is self.lru[lru_at]:
            self.lru.append(self.lru.pop(lru_at))
        return best, best_len

    def _remember(self, stored: _Stored) -> None:
        """Put a released conversation's first prompt into the LRU (bounded by ``prefix_cache_tokens``)."""
        n = min(stored.first, len(stored.ids), self.prefix_cache_tokens)
        ids = stored.ids[:n]
        for i, entry in enumerate(self.lru):
            if common_prefix(entry.ids, ids, n) == n:  # already held, as a prefix of an entry
                self.lru.append(self.lru.pop(i))
                return
        self.lru = [e for e in self.lru if common_prefix(e.ids, ids, len(e.ids)) < len(e.ids)]
        kv = [(k, v) if k.shape[1] == n else (k[:, :n].clone(), v[:, :n].clone()) for k, v in stored.kv]
        self.lru.append(_Stored(ids, kv, n))
        total = self.lru_tokens()
        while total > self.prefix_cache_tokens:
            total -= len(self.lru.pop(0).ids)

    def _weights_fingerprint(self) -> tuple[Any, ...]:
        """Identity, storage and in-place version counter of every parameter, and a sum over a few of each
        one's elements (updates made through ``p.data``, which bypass the version counter, change those)."""
        params = list(self.model.parameters())
        ids = tuple((id(p), p.data_ptr(), p._version) for p in params)
        samples = []
        for p in params:
            flat = p.detach().reshape(-1)
            samples.append(flat[:: max(1, flat.numel() // 16)].sum(dtype=torch.float32))
        return ids, tuple(torch.stack(samples).tolist()) if samples else ()

    def _vacate(self, slot: int) -> None:
        """Free ``slot``: the last running row moves into it."""
        last = len(self.rows) - 1
        if slot != last:
            w = self.width
            for layer in self.cache.layers:
                layer.keys[slot, :, :w] = layer.keys[last, :, :w]
                layer.values[slot, :, :w] = layer.values[last, :, :w]
            self._mask[slot, :w] = self._mask[last, :w]
            self.rows[slot] = self.rows[last]
        self._mask[last, :] = False
        self.rows.pop()

    def _compact(self) -> None:
        """Drop the padding columns: each row's cached columns move to the right end of a narrower window."""
        b = len(self.rows)
        width = max(r.length for r in self.rows)
        cols = [self._mask[i, : self.width].nonzero()[:, 0] for i in range(b)]
        for layer in self.cache.layers:
            for name in ("keys", "values"):
                buf = getattr(layer, name)
                moved = [buf[i, :, c] for i, c in enumerate(cols)]
                for i, (row, m) in enumerate(zip(self.rows, moved)):
                    buf[i, :, width - row.length : width] = m
        self._mask[:b, :] = False
        for i, row in enumerate(self.rows):
            self._mask[i, width - row.length : width] = True
        self.width = width
        self.stats["compactions"] += 1
