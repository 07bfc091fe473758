"""A stand-in for the ``vllm`` module that behaves like vLLM's default engine where it matters.

By default ``LLM`` runs its engine core in a separate process and sends every call there as msgpack
(as vLLM V1 does): a function, a tensor or any other object msgpack cannot encode raises the
``TypeError`` vLLM raises. With ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` set while the engine is built, the
core runs in the calling process and ``collective_rpc`` calls a function on the worker directly.

The core also checks what vLLM checks: a prompt at least ``max_model_len`` tokens long is an error, as
is a request whose prompt plus ``max_tokens`` exceeds it; the sleep state (``sleep``, ``wake_up`` with
tags) is tracked, and ``generate`` while asleep is an error. Replies are one of three fixed actions
chosen by the request seed, with log-prob -0.5 per token. Every call is recorded in ``calls``.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import types
from typing import Any

import msgpack

ACTIONS = ['<tool_call>{"name": "guess", "arguments": {"number": 1}}</tool_call>', "<answer>1</answer>",
           "<answer>2</answer>"]


class Core:
    """The engine core: what runs in the engine process (or in-process)."""

    def __init__(self, model: str, max_model_len: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.max_model_len = max_model_len
        self.asleep: set[str] = set()
        self.calls: list[list[Any]] = []
        self.loaded: list[list[str]] = []

    def generate(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import torch

        if self.asleep:
            raise RuntimeError(f"generate while asleep ({sorted(self.asleep)})")
        self.calls.append(["generate", [r["seed"] for r in requests], [r["max_tokens"] for r in requests],
                           torch.is_autocast_enabled("cpu")])
        outs = []
        for r in requests:
            n = len(r["prompt_token_ids"])
            if n >= self.max_model_len:
                raise ValueError(f"The decoder prompt (length {n}) is longer than the maximum model length of "
                                 f"{self.max_model_len}.")
            if n + r["max_tokens"] > self.max_model_len:
                raise ValueError(f"requested {n} + {r['max_tokens']} tokens, over max_model_len {self.max_model_len}")
            text = ACTIONS[random.Random(r["seed"]).randrange(len(ACTIONS))]
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            ids = ids[:r["max_tokens"]]
            outs.append({"text": text, "token_ids": ids, "finish_reason": "stop"})
        return outs

    def sleep(self, level: int) -> None:
        self.calls.append(["sleep", level])
        self.asleep = {"weights", "kv_cache"}

    def wake_up(self, tags: list[str] | None) -> None:
        self.calls.append(["wake_up", tags])
        self.asleep -= set(tags or ["weights", "kv_cache"])

    def load(self, names: list[str]) -> None:
        if "weights" in self.asleep:
            raise RuntimeError("load_weights while the weights sleep")
        self.calls.append(["load_weights", "kv_cache" in self.asleep])
        self.loaded.append(names)

    def reset_prefix_cache(self) -> None:
        self.calls.append(["reset_prefix_cache"])

    def state(self) -> dict[str, Any]:
        return {"calls": self.calls, "loaded": self.loaded}


def _refuse(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj)} is not serializable. Set VLLM_ALLOW_INSECURE_SERIALIZATION=1 "
                    "to allow fallback to pickle-based serialization.")


def _engine_process(conn: Any, model: str, max_model_len: int) -> None:
    core = Core(model, max_model_len)
    while True:
        method, args = msgpack.unpackb(conn.recv_bytes())
        if method == "shutdown":
            return
        try:
            reply = [True, getattr(core, method)(*args)]
        except Exception as e:  # sent back and raised in the caller, as vLLM's engine does
            reply = [False, f"{type(e).__name__}: {e}"]
        conn.send_bytes(msgpack.packb(reply, default=_refuse))


class _Worker:
    """What ``collective_rpc`` hands a function in-process: ``worker.model_runner.model.load_weights``."""

    def __init__(self, core: Core) -> None:
        def load_weights(weights: Any) -> None:
            core.load([n for n, _ in weights])

        self.model_runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=load_weights))


class FakeVLLM:
    """Builds the fake ``vllm`` module (``self.module``); ``self.llms`` are the engines it built."""

    def __init__(self) -> None:
        fake = self
        self.llms: list[Any] = []

        class SamplingParams:
            def __init__(self, max_tokens: int = 16, temperature: float = 1.0, top_p: float = 1.0,
                         logprobs: int | None = None, seed: int | None = None) -> None:
                self.max_tokens, self.temperature, self.top_p, self.logprobs, self.seed = (
                    max_tokens, temperature, top_p, logprobs, seed)

        class LLM:
            def __init__(self, model: str, **kwargs: Any) -> None:
                from transformers import AutoTokenizer

                self.model, self.kwargs = model, kwargs
                self.in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0"
                max_len = int(kwargs.get("max_model_len") or 2048)
                self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=max_len))
                self._tokenizer = AutoTokenizer.from_pretrained(model)
                if self.in_process:
                    self._core = Core(model, max_len)
                else:
                    ctx = multiprocessing.get_context("spawn")
                    self._conn, child = ctx.Pipe()
                    self._proc = ctx.Process(target=_engine_process, args=(child, model, max_len), daemon=True)
                    self._proc.start()
                fake.llms.append(self)

            def _call(self, method: str, *args: Any) -> Any:
                if self.in_process:
                    return getattr(self._core, method)(*args)
                self._conn.send_bytes(msgpack.packb([method, list(args)], default=_refuse))
                ok, value = msgpack.unpackb(self._conn.recv_bytes())
                if not ok:
                    raise RuntimeError(value)
                return value

            def get_tokenizer(self) -> Any:
                return self._tokenizer

            def generate(self, prompts: list[dict[str, Any]], params: Any, use_tqdm: bool = False) -> list[Any]:
                params = params if isinstance(params, list) else [params] * len(prompts)
                requests = [{"prompt_token_ids": list(p["prompt_token_ids"]), "seed": sp.seed,
                             "max_tokens": sp.max_tokens} for p, sp in zip(prompts, params)]
                outs = []
                for o in self._call("generate", requests):
                    lps = [{t: types.SimpleNamespace(logprob=-0.5)} for t in o["token_ids"]]
                    outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(
                        text=o["text"], token_ids=o["token_ids"], logprobs=lps, finish_reason=o["finish_reason"])]))
                return outs

            def sleep(self, level: int = 1) -> None:
                self._call("sleep", level)

            def wake_up(self, tags: list[str] | None = None) -> None:
                self._call("wake_up", tags)

            def collective_rpc(self, method: Any, args: tuple = (), kwargs: dict | None = None) -> list[Any]:
                if self.in_process:
                    return [method(_Worker(self._core), *args, **(kwargs or {}))]
                return [self._call("collective_rpc", method, list(args))]  # msgpack refuses a function

            def reset_prefix_cache(self) -> None:
                self._call("reset_prefix_cache")

            def state(self) -> dict[str, Any]:
                return self._call("state")

            def shutdown(self) -> None:
                if not self.in_process and self._proc.is_alive():
                    self._conn.send_bytes(msgpack.packb(["shutdown", []]))
                    self._proc.join(timeout=10)
                if not self.in_process and self._proc.is_alive():
                    self._proc.terminate()
                    self._proc.join(timeout=5)

        self.module = types.ModuleType("vllm")
        self.module.LLM, self.module.SamplingParams = LLM, SamplingParams

    def close(self) -> None:
        for llm in self.llms:
            llm.shutdown()
