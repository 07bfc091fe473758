"""A client for the Search-R1 retrieval-server protocol, and the budget that fits it in a tool call.

* :class:`HTTPRetriever`: ``POST /retrieve`` with ``{"queries": [...], "topk": k, "return_scores": true}``,
  with timeouts, retries with exponential backoff inside an optional overall deadline, a health check
  (:meth:`HTTPRetriever.check`), and a :class:`~rlvr.envs.deepsearch.interface.RetrievalError` naming
  the server when it is down.
* :func:`fit_http_budget`: HTTP options whose attempts and backoffs all fit inside a tool call's time limit.

Both are also importable from :mod:`rlvr.envs.deepsearch.retrieval`.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Sequence

from rlvr.envs.deepsearch.corpus import Document, parse_contents
from rlvr.envs.deepsearch.interface import Hit, RetrievalError
from rlvr.errors import ConfigError

__all__ = ["HTTPRetriever", "fit_http_budget", "HTTP_DEFAULT_TIMEOUT_S", "HTTP_DEFAULT_BACKOFF_S", "HTTP_TOOL_SHARE"]

HTTP_DEFAULT_TIMEOUT_S = 10.0
HTTP_DEFAULT_BACKOFF_S = 0.5
HTTP_TOOL_SHARE = 0.9
"""Share of a tool call's time limit that one HTTP request may use (the rest renders the results)."""


class HTTPRetriever:
    """Client for a Search-R1-style retrieval server.

    Request: ``POST <url>`` with ``{"queries": [...], "topk": k, "return_scores": true}``. Response:
    ``{"result": [[{"document": {"id": ..., "contents": "\\"Title\\"\\ntext"}, "score": s}, ...], ...]}``
    (one list per query; entries may also be bare documents, and documents may carry
    ``title``/``text`` instead of ``contents``). Documents without an id get ``h<sha1 of contents>``.

    Args:
        url: the endpoint, e.g. ``http://127.0.0.1:8000/retrieve`` (a bare host adds ``/retrieve``).
        timeout_s: per-request timeout (connect, read, write, pool).
        retries: extra attempts after a connection error, timeout, HTTP 429 or 5xx.
        backoff_s: the first retry waits this long; each later one doubles it.
        deadline_s: overall wall-clock budget of one request, attempts and backoff included (``None``:
            no overall limit, see :attr:`worst_case_s`). Each attempt's timeout is cut to what is left,
            and no retry starts when its backoff would not leave time for it; the error then says so.
        transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    """

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = HTTP_DEFAULT_TIMEOUT_S,
        retries: int = 3,
        backoff_s: float = HTTP_DEFAULT_BACKOFF_S,
        deadline_s: float | None = None,
        transport: Any = None,
    ) -> None:
        import httpx

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"retriever_url must be an http(s) URL such as 'http://127.0.0.1:8000/retrieve', got {url!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ConfigError(f"need timeout_s > 0, retries >= 0, backoff_s >= 0; got {timeout_s}, {retries}, {backoff_s}")
        if deadline_s is not None and deadline_s <= 0:
            raise ConfigError(f"deadline_s must be positive or None, got {deadline_s}")
        parsed = httpx.URL(url)
        self.url = str(parsed.copy_with(path="/retrieve")) if parsed.path in ("", "/") else url
        self.timeout_s, self.retries, self.backoff_s, self.deadline_s = timeout_s, retries, backoff_s, deadline_s
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport)
        self._httpx = httpx

    @staticmethod
    def budget_s(timeout_s: float, retries: int, backoff_s: float) -> float:
        """Longest time one request can take without a deadline: every attempt times out, every backoff waits."""
        return (retries + 1) * timeout_s + backoff_s * (2 ** retries - 1)

    @property
    def worst_case_s(self) -> float:
        """Longest time one request can take: :meth:`budget_s`, capped by ``deadline_s``."""
        full = self.budget_s(self.timeout_s, self.retries, self.backoff_s)
        return full if self.deadline_s is None else min(full, self.deadline_s)

    def close(self) -> None:
        self._client.close()

    def _post(self, payload: dict[str, Any]) -> Any:
        httpx = self._httpx
        last = ""
        attempts = 0
        end = None if self.deadline_s is None else time.monotonic() + self.deadline_s
        for attempt in range(self.retries + 1):
            timeout: Any = None
            if attempt:
                wait = self.backoff_s * 2 ** (attempt - 1)
                if end is not None and end - time.monotonic() - wait < min(self.timeout_s, 0.05):
                    last += f"; no time left for retry {attempt} within the {self.deadline_s:g} s deadline"
                    break
                time.sleep(wait)
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                timeout = httpx.Timeout(min(self.timeout_s, left))
            attempts += 1
            try:
                r = self._client.post(self.url, json=payload, **({"timeout": timeout} if timeout is not None else {}))
            except httpx.TransportError as e:  # connect refused, timeout, reset
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code >= 400:
                raise RetrievalError(
                    f"retrieval server {self.url} refused the request with HTTP {r.status_code}: {r.text[:300]!r}. "
                    'It must accept POST {"queries": [...], "topk": k, "return_scores": true} (the Search-R1 protocol).'
                )
            try:
                return r.json()
            except ValueError as e:
                raise RetrievalError(f"retrieval server {self.url} answered with non-JSON text: {r.text[:200]!r}") from e
        raise RetrievalError(
            f"retrieval server {self.url} is not answering ({attempts} attempts, last: {last}). "
            "Start the server (Search-R1 retrieval_server.py or any server speaking POST /retrieve), "
            "check retriever_url, or use backend='bm25' for the local index."
        )

    @staticmethod
    def _document(obj: Any) -> Document:
        if not isinstance(obj, dict):
            raise RetrievalError(f"expected a document object, got {type(obj).__name__}: {str(obj)[:100]!r}")
        if "contents" in obj:
            title, text = parse_contents(str(obj["contents"]))
            title = str(obj.get("title") or title)
        elif "text" in obj:
            title, text = str(obj.get("title") or ""), str(obj["text"])
        else:
            raise RetrievalError(f'a returned document has neither "contents" nor "text": {str(obj)[:150]!r}')
        doc_id = obj.get("id", obj.get("doc_id"))
        if doc_id is None or str(doc_id) == "":
            doc_id = "h" + hashlib.sha1(f"{title}\n{text}".encode()).hexdigest()[:12]
        return Document(str(doc_id), title, text)

    def search_batch(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        data = self._post({"queries": list(queries), "topk": int(k), "return_scores": True})
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list) or len(result) != len(queries):
            raise RetrievalError(
                f'retrieval server {self.url} sent an unexpected response: expected {{"result": [one list per query]}} '
                f"for {len(queries)} queries, got {str(data)[:200]!r}"
            )
        out: list[list[Hit]] = []
        for per_query in result:
            if not isinstance(per_query, list):
                raise RetrievalError(f"expected a list of results per query, got {str(per_query)[:150]!r}")
            hits = []
            for rank, item in enumerate(per_query[:k]):
                if isinstance(item, dict) and "document" in item:
                    score = item.get("score", -rank)
                    try:
                        value = float(score)
                    except (TypeError, ValueError) as e:
                        raise RetrievalError(f"retrieval server {self.url} sent a score that is not a number: "
                                             f"{str(score)[:80]!r}") from e
                    hits.append(Hit(self._document(item["document"]), value))
                else:
                    hits.append(Hit(self._document(item), float(-rank)))
            out.append(hits)
        return out

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.search_batch([query], k)[0]

    def check(self) -> None:
        """Send one probe query; raises :class:`RetrievalError` when the server is down, answers with an
        HTTP error or sends a response of the wrong shape (:class:`~rlvr.envs.deepsearch.DeepSearchEnv`
        calls it when it is built)."""
        self.search_batch(["test"], 1)




def fit_http_budget(
    tool_timeout_s: float | None, timeout_s: float | None, retries: int, backoff_s: float = HTTP_DEFAULT_BACKOFF_S
) -> dict[str, Any]:
    """:class:`HTTPRetriever` options whose attempts and backoffs all fit inside a tool call's time limit.

    A search that outlasts its tool call is abandoned and its answer lost, so every retry must fit in
    ``HTTP_TOOL_SHARE * tool_timeout_s``. With ``timeout_s=None`` the per-attempt timeout is derived
    (that budget shared by ``retries + 1`` attempts after the backoffs, at most
    ``HTTP_DEFAULT_TIMEOUT_S``); an explicit ``timeout_s`` is checked, and a :class:`ConfigError` says
    how to fix a budget that does not fit. ``deadline_s`` is set to the budget as a hard stop.
    ``tool_timeout_s=None`` (tools without a time limit) leaves the options as given.
    """
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"http_retries must be an integer >= 0, got {retries!r}")
    def positive(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0

    if timeout_s is not None and not positive(timeout_s):
        raise ConfigError(f"http_timeout_s must be a positive number or None (derived from the tool timeout), got {timeout_s!r}")
    if tool_timeout_s is not None and not positive(tool_timeout_s):
        raise ConfigError(f"tool_timeout_s must be a positive number of seconds or None, got {tool_timeout_s!r}")
    if tool_timeout_s is None:
        return {"timeout_s": timeout_s or HTTP_DEFAULT_TIMEOUT_S, "retries": retries, "backoff_s": backoff_s}
    budget = HTTP_TOOL_SHARE * tool_timeout_s
    backoff_total = backoff_s * (2 ** retries - 1)
    if timeout_s is None:
        per_attempt = (budget - backoff_total) / (retries + 1)
        if per_attempt < 0.1:
            raise ConfigError(
                f"http_retries={retries} does not fit in tool_timeout_s={tool_timeout_s:g}: {retries + 1} attempts and "
                f"{backoff_total:g} s of backoff must fit in {budget:g} s ({HTTP_TOOL_SHARE:.0%} of the tool timeout). "
                "Lower http_retries or raise tool_timeout_s."
            )
        timeout_s = min(HTTP_DEFAULT_TIMEOUT_S, per_attempt)
    else:
        worst = HTTPRetriever.budget_s(timeout_s, retries, backoff_s)
        if worst > budget + 1e-9:
            raise ConfigError(
                f"http_timeout_s={timeout_s:g} with http_retries={retries} can take {worst:g} s ({retries + 1} attempts "
                f"of {timeout_s:g} s plus {backoff_total:g} s of backoff), longer than {budget:g} s "
                f"({HTTP_TOOL_SHARE:.0%} of tool_timeout_s={tool_timeout_s:g}): a search would be abandoned while it "
                "still retries. Lower http_timeout_s or http_retries, raise tool_timeout_s, or leave http_timeout_s "
                "unset to derive it."
            )
    return {"timeout_s": timeout_s, "retries": retries, "backoff_s": backoff_s, "deadline_s": budget}
