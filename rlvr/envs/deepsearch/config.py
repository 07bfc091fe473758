"""The settings of rlvr/DeepSearch-v0: :class:`DeepSearchConfig`, checked when it is built.

:class:`~rlvr.envs.deepsearch.env.DeepSearchEnv` takes every field as a keyword argument of the
same name; the class is also importable from :mod:`rlvr.envs.deepsearch.env` and :mod:`rlvr.envs.deepsearch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from rlvr.envs.deepsearch.corpus import Corpus
from rlvr.envs.deepsearch.interface import BackendName
from rlvr.envs.deepsearch.tasks import QAFormat, Task
from rlvr.errors import ConfigError, did_you_mean

__all__ = ["DeepSearchConfig"]


@dataclass(frozen=True, slots=True)
class DeepSearchConfig:
    """Settings of :class:`DeepSearchEnv` (the env's keyword arguments of the same names)."""

    tasks: str | os.PathLike[str] | Sequence[Task] = "synthetic"
    """``"synthetic"`` (generated world), a QA file (HotpotQA / 2Wiki / MuSiQue JSON(L), Search-R1 parquet) or Task objects."""
    qa_format: QAFormat = "auto"
    """Format of a QA file; ``auto`` guesses."""
    corpus: str | os.PathLike[str] | Corpus = "auto"
    """``auto`` (the world's, or the QA file's context paragraphs), ``wikipedia``, a JSONL path or a Corpus.
    A QA file's supporting titles are resolved against this corpus by title, so its gold documents,
    evidence rewards and rubrics use this corpus's ids (unmatched titles: an ``UnresolvedTitleWarning``)."""
    hops: int | tuple[int, int] = (1, 4)
    """Synthetic: hops per question, an int or an inclusive (min, max) range within 1..6."""
    n_entities: int = 200
    """Synthetic: entities (one document each)."""
    distractors: int | None = None
    """Synthetic: distractor documents (``None``: half of n_entities)."""
    wiki_distractors: int = 0
    """Synthetic: real Wikipedia summaries mixed in as distractors."""
    paraphrase: int = 3
    """Synthetic: wordings per relation and question (1 = fixed wording)."""
    world_seed: int = 0
    """Synthetic: seed of the world (reset(seed=) picks the question)."""
    n_tasks: int = 256
    """Synthetic: questions generated."""
    backend: BackendName = "bm25"
    """Retrieval backend: ``bm25`` (local, cached), ``http`` (Search-R1 server) or ``dense`` (MiniLM, optional)."""
    retriever_url: str | None = None
    """``http``: the server's /retrieve endpoint."""
    http_timeout_s: float | None = None
    """``http``: per-attempt timeout; ``None`` derives it so that every attempt and backoff fits in the
    tool timeout (at most 10 s); an explicit value that does not fit is a ConfigError
    (:func:`~rlvr.envs.deepsearch.http_retriever.fit_http_budget`)."""
    http_retries: int = 3
    """``http``: retries after connection errors, timeouts, 429 and 5xx (exponential backoff from 0.5 s)."""
    top_k: int = 5
    """Default number of search results."""
    max_k: int = 20
    """Largest k a search may ask for."""
    page_chars: int = 1500
    """Characters per page of ``open``."""
    snippet_chars: int = 240
    """Characters per search-result snippet."""
    max_query_chars: int = 512
    """Longer queries are refused with an error observation."""
    rubric_alpha: float = 0.3
    """C-GRPO rubric weight a (0 turns the rubric off)."""
    outcome_metric: Literal["em", "f1"] = "em"
    """R_o for C-GRPO: exact match or token F1."""
    rubric_check: Literal["auto", "exact", "judge"] = "auto"
    """``auto``: exact for tasks with gold evidence, the judge otherwise (when one is given)."""

    def __post_init__(self) -> None:
        if self.backend not in ("bm25", "http", "dense"):
            raise ConfigError(f"backend must be 'bm25', 'http' or 'dense', got {self.backend!r}{did_you_mean(str(self.backend), ['bm25', 'http', 'dense'])}")
        if self.backend == "http" and not self.retriever_url:
            raise ConfigError("backend='http' needs retriever_url, e.g. 'http://127.0.0.1:8000/retrieve'")
        if self.outcome_metric not in ("em", "f1"):
            raise ConfigError(f"outcome_metric must be 'em' or 'f1', got {self.outcome_metric!r}")
        if self.rubric_check not in ("auto", "exact", "judge"):
            raise ConfigError(f"rubric_check must be 'auto', 'exact' or 'judge', got {self.rubric_check!r}")
        if not 1 <= self.top_k <= self.max_k:
            raise ConfigError(f"need 1 <= top_k <= max_k, got top_k={self.top_k}, max_k={self.max_k}")
        for name in ("page_chars", "snippet_chars", "max_query_chars"):
            if getattr(self, name) < 20:
                raise ConfigError(f"{name} must be >= 20, got {getattr(self, name)}")
        if not 0.0 <= self.rubric_alpha <= 1.0:
            raise ConfigError(f"rubric_alpha must lie in [0, 1], got {self.rubric_alpha}")
        if isinstance(self.tasks, (str, os.PathLike)) and str(self.tasks) != "synthetic" and not Path(self.tasks).is_file():
            raise ConfigError(f"tasks must be 'synthetic', an existing QA file or a list of Task; got {str(self.tasks)!r}")
