"""The interface every retrieval backend implements: ``search(query, k) -> list[Hit]``.

:class:`Hit` (a document and its score), the :class:`Retriever` protocol, the backend names and
:class:`RetrievalError`. The backends live in :mod:`rlvr.envs.deepsearch.retrieval` (BM25, dense)
and :mod:`rlvr.envs.deepsearch.http_retriever` (Search-R1 protocol); all of these names are also
importable from :mod:`rlvr.envs.deepsearch.retrieval`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, runtime_checkable

from rlvr.envs.deepsearch.corpus import Document
from rlvr.errors import InfrastructureError

__all__ = ["BackendName", "Hit", "Retriever", "RetrievalError"]

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
