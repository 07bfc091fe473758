"""rlvr/DeepSearch-v0: multi-hop search over a local (or remote) index with citation-aware rewards.

* :class:`DeepSearchEnv`: the environment (tools ``search``, ``open``, ``find``; ``<answer>`` with ``[doc_id]`` citations).
* Corpora: :class:`Corpus`, :func:`load_corpus_jsonl`, :func:`wikipedia_corpus`; the synthetic world
  :func:`generate_world` / :class:`WorldConfig`.
* Tasks: :class:`Task`, :class:`Hop`, :func:`load_qa` (HotpotQA, 2Wiki, MuSiQue, Search-R1 parquet).
* Retrieval: :class:`BM25Retriever` (bm25s, cached on disk), :class:`HTTPRetriever` (Search-R1 protocol),
  :class:`DenseRetriever` (all-MiniLM-L6-v2, optional), all with ``search(query, k) -> list[Hit]``.

Layout: ``env.py`` (the environment and its tools), ``config.py`` (:class:`DeepSearchConfig`),
``pages.py`` (sentence and page spans), ``corpus.py``, ``tasks.py``, ``world.py``; retrieval in
``interface.py`` (:class:`Hit`, :class:`Retriever`, :class:`RetrievalError`), ``retrieval.py`` (the local
backends and :func:`make_retriever`, re-exporting every retrieval name) and ``http_retriever.py``.
"""

from rlvr.envs.deepsearch.corpus import Corpus, Document, load_corpus_jsonl, wikipedia_corpus
from rlvr.envs.deepsearch.env import DEFAULT_WEIGHTS, DeepSearchConfig, DeepSearchEnv, ToolInputError
from rlvr.envs.deepsearch.retrieval import (
    BM25Retriever,
    DenseRetriever,
    Hit,
    HTTPRetriever,
    RetrievalError,
    Retriever,
    make_retriever,
)
from rlvr.envs.deepsearch.tasks import Hop, Task, load_qa
from rlvr.envs.deepsearch.world import World, WorldConfig, generate_world

__all__ = [
    "DeepSearchEnv", "DeepSearchConfig", "DEFAULT_WEIGHTS", "ToolInputError",
    "Corpus", "Document", "load_corpus_jsonl", "wikipedia_corpus",
    "Task", "Hop", "load_qa",
    "World", "WorldConfig", "generate_world",
    "Retriever", "Hit", "RetrievalError", "BM25Retriever", "HTTPRetriever", "DenseRetriever", "make_retriever",
]
