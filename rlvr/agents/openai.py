"""``OpenAIAgent``: any OpenAI-compatible chat-completions server (vLLM, llama.cpp, SGLang, hosted APIs)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx

from rlvr.agents.base import Generation, Messages
from rlvr.errors import AgentError, ConfigError

__all__ = ["OpenAIAgent"]

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def _to_openai(messages: Messages) -> list[dict[str, Any]]:
    """Convert rlvr messages (tool role with ``name``, image parts) to the chat-completions schema."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "text":
                    parts.append({"type": "text", "text": p["text"]})
                elif p.get("type") == "image" and isinstance(p.get("url"), str):
                    parts.append({"type": "image_url", "image_url": {"url": p["url"]}})
                else:
                    parts.append({"type": "text", "text": "[image]"})
            content = parts
        role = m.get("role")
        if role == "tool":  # servers require tool_call_id for role=tool; send results as user text instead
            name = m.get("name", "tool")
            out.append({"role": "user", "content": f"<tool_response name={name!r}>\n{content}\n</tool_response>"})
        else:
            out.append({"role": role, "content": content})
    return out


class OpenAIAgent:
    """Chat completions over HTTP with timeouts, retries with exponential backoff and clear errors.

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name to request; ``None`` asks ``GET /models`` and takes the first.
        api_key: bearer token (default: ``$OPENAI_API_KEY``, or none).
        max_tokens, temperature, top_p: sampling settings.
        timeout_s: per-request timeout.
        max_retries: retries on connection errors, timeouts, 429 and 5xx.
        backoff_s: first retry delay (doubles each retry).
        max_concurrency: parallel requests in ``act_batch``.
        logprobs: request sampled-token log-probs (servers that support it return them).
        transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.7,
        top_p: float = 1.0,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_concurrency: int = 8,
        logprobs: bool = False,
        extra_body: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_concurrency = max_concurrency
        self.body = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, **(extra_body or {})}
        if logprobs:
            self.body["logprobs"] = True
        self._model = model
        self.chat_template_hash = None

    @property
    def model_id(self) -> str:
        if self._model is None:
            data = self._request("GET", "/models")
            try:
                self._model = data["data"][0]["id"]
            except (KeyError, IndexError, TypeError) as e:
                raise AgentError(f"{self.base_url}/models listed no model; pass model= explicitly") from e
        return self._model

    def _request(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        delay = self.backoff_s
        last: str = ""
        for attempt in range(self.max_retries + 1):
            try:
                r = self.client.request(method, url, json=json)
            except httpx.TimeoutException as e:
                last = f"timed out ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"could not connect ({type(e).__name__}: {e})"
            else:
                if r.status_code < 400:
                    try:
                        return r.json()
                    except ValueError as e:
                        raise AgentError(f"{url} answered {r.status_code} with a body that is not JSON: {r.text[:200]!r}") from e
                last = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in _RETRY_STATUS:
                    raise AgentError(f"{method} {url} failed with {last}")
            if attempt < self.max_retries:
                time.sleep(delay)
                delay *= 2
        raise AgentError(
            f"{method} {url} failed after {self.max_retries + 1} attempts: {last}. "
            "Is the server running and is base_url the API root (ending in /v1)?"
        )

    def _complete(self, messages: Messages) -> Generation:
        data = self._request("POST", "/chat/completions", {"model": self.model_id, "messages": _to_openai(messages), **self.body})
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise AgentError(f"unexpected chat-completions response: {str(data)[:300]}") from e
        lps = None
        content_lp = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        if content_lp:
            lps = [float(t["logprob"]) for t in content_lp]
        return Generation(text, None, None, lps, choice.get("finish_reason"))

    def act(self, messages: Messages) -> str:
        return self._complete(messages).text

    def act_batch(self, batch: Sequence[Messages]) -> list[Generation]:
        if len(batch) <= 1:
            return [self._complete(m) for m in batch]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batch))) as pool:
            return list(pool.map(self._complete, batch))

    def close(self) -> None:
        self.client.close()
