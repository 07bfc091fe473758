"""Question-answering tasks for DeepSearch, and loaders for common multi-hop QA files.

A :class:`Task` is a question with gold answers (aliases), optionally the gold path (one
:class:`Hop` per step: a search query and the document that answers it) and CaRR rubrics.

Loaders (all return ``(tasks, corpus_or_None)``; the corpus is built from the context paragraphs the
file carries, deduplicated by title, so the gold documents are searchable):

* HotpotQA (JSON list, ``_id / question / answer / supporting_facts / context``),
* 2WikiMultihopQA (the same layout, plus ``evidences`` and ``type``),
* MuSiQue (JSON Lines, ``id / question / answer / answer_aliases / paragraphs``),
* Search-R1 parquet (``question`` or ``prompt``, answers in ``golden_answers`` or
  ``reward_model.ground_truth.target``; a ``"a<|answer_split|>b"`` string is split into aliases).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from rlvr.envs.deepsearch.corpus import Corpus, Document
from rlvr.errors import ConfigError
from rlvr.rewards.carr import Evidence, Rubric

__all__ = ["Hop", "Task", "QAFormat", "load_qa", "load_hotpotqa", "load_2wiki", "load_musique", "load_searchr1_parquet"]

QAFormat = Literal["auto", "hotpotqa", "2wiki", "musique", "searchr1"]


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of the gold path: what to search for and the document that answers it.

    ``evidence`` marks where in ``doc_id`` the fact is stated (character spans); empty when unknown.
    """

    query: str
    doc_id: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Task:
    """A question, its gold answers (first = canonical) and, when known, gold path and rubrics.

    Args:
        id: stable task id.
        question: what the agent is asked.
        answers: accepted answers (aliases); the first one is canonical.
        hops: gold path (search query and gold document per hop).
        rubrics: CaRR single-hop statements with ``<E0>`` (answer) and ``<E1>..`` placeholders.
        entities: placeholder -> accepted names, for exact entity identification.
        source: where the task comes from ("synthetic", "hotpotqa", ...).
        meta: anything else (hop count, question type...).
    """

    id: str
    question: str
    answers: tuple[str, ...]
    hops: tuple[Hop, ...] = ()
    rubrics: tuple[Rubric, ...] = ()
    entities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "synthetic"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise ConfigError(f"task {self.id!r} has an empty question")
        if not self.answers or not all(isinstance(a, str) and a.strip() for a in self.answers):
            raise ConfigError(f"task {self.id!r} needs at least one non-empty answer string, got {self.answers!r}")

    @property
    def gold_doc_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for h in self.hops:
            seen.setdefault(h.doc_id, None)
        return tuple(seen)


# --------------------------------------------------------------------------- helpers
def _read_json_or_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path.name}: not valid JSON ({e.msg} at line {e.lineno})") from e
        if not all(isinstance(x, dict) for x in data):
            raise ConfigError(f"{path.name}: expected a JSON list of objects")
        return data
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path.name} line {lineno}: not valid JSON ({e.msg}); expected a JSON list or JSON Lines") from e
        if not isinstance(obj, dict):
            raise ConfigError(f"{path.name} line {lineno}: expected a JSON object per line")
        rows.append(obj)
    return rows


def _require(row: dict[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {missing}; present: {sorted(row)[:12]}")


def _aliases(*groups: Any) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for g in groups:
        if g is None:
            continue
        if isinstance(g, str):
            parts = g.split("<|answer_split|>")
        elif isinstance(g, dict):  # {"target": [...]}
            return _aliases(g.get("target"), g.get("answers"))
        else:
            try:
                parts = [str(x) for x in g]
            except TypeError:
                parts = [str(g)]
        for p in parts:
            if p.strip():
                out.setdefault(p.strip(), None)
    return tuple(out)


class _CorpusBuilder:
    """Context paragraphs deduplicated by (title, text) into documents ``p0, p1, ...``."""

    def __init__(self, prefix: str = "p") -> None:
        self.prefix = prefix
        self.docs: list[Document] = []
        self._key: dict[tuple[str, str], str] = {}
        self.by_title: dict[str, str] = {}

    def add(self, title: str, text: str) -> str:
        key = (title, text)
        if key not in self._key:
            doc_id = f"{self.prefix}{len(self.docs)}"
            self.docs.append(Document(doc_id, title, text))
            self._key[key] = doc_id
        self.by_title.setdefault(title, self._key[key])
        return self._key[key]

    def corpus(self, name: str) -> Corpus | None:
        return Corpus(self.docs, name=name) if self.docs else None


def _hotpot_like(path: Path, source: str) -> tuple[list[Task], Corpus | None]:
    rows = _read_json_or_jsonl(path)
    cb = _CorpusBuilder()
    tasks = []
    for i, row in enumerate(rows):
        where = f"{path.name} item {i}"
        _require(row, ["question", "answer"], where)
        local: dict[str, str] = {}
        for ctx in row.get("context") or []:
            if not (isinstance(ctx, (list, tuple)) and len(ctx) == 2):
                raise ConfigError(f"{where}: each context entry must be [title, [sentences]], got {str(ctx)[:80]!r}")
            title, sents = ctx
            text = "".join(sents) if isinstance(sents, list) else str(sents)
            local[title] = cb.add(str(title), text)
        hops: list[Hop] = []
        for fact in row.get("supporting_facts") or []:
            title = fact[0] if isinstance(fact, (list, tuple)) else fact.get("title")
            doc_id = local.get(title) or cb.by_title.get(title)
            if doc_id and all(h.doc_id != doc_id for h in hops):
                hops.append(Hop(str(title), doc_id))
        answers = _aliases(row["answer"], row.get("answer_aliases"), row.get("aliases"))
        meta = {k: row[k] for k in ("type", "level", "evidences") if k in row}
        tasks.append(Task(str(row.get("_id", row.get("id", f"{source}-{i}"))), row["question"], answers, tuple(hops),
                          source=source, meta=meta))
    return tasks, cb.corpus(f"{source}-contexts")


def load_hotpotqa(path: str | os.PathLike[str]) -> tuple[list[Task], Corpus | None]:
    """HotpotQA JSON (distractor or fullwiki form); supporting titles become the gold path."""
    return _hotpot_like(Path(path), "hotpotqa")


def load_2wiki(path: str | os.PathLike[str]) -> tuple[list[Task], Corpus | None]:
    """2WikiMultihopQA JSON (HotpotQA layout; ``evidences`` triples kept in ``meta``)."""
    return _hotpot_like(Path(path), "2wiki")


def load_musique(path: str | os.PathLike[str]) -> tuple[list[Task], Corpus | None]:
    """MuSiQue JSON Lines; supporting paragraphs (in decomposition order when given) are the gold path.
    Unanswerable items (``answerable: false``) are skipped."""
    path = Path(path)
    rows = _read_json_or_jsonl(path)
    cb = _CorpusBuilder()
    tasks = []
    for i, row in enumerate(rows):
        where = f"{path.name} item {i}"
        _require(row, ["question", "answer"], where)
        if row.get("answerable") is False:
            continue
        by_idx: dict[int, str] = {}
        support: list[str] = []
        for j, p in enumerate(row.get("paragraphs") or []):
            if not isinstance(p, dict) or "paragraph_text" not in p:
                raise ConfigError(f"{where}: paragraph {j} needs 'title' and 'paragraph_text'")
            doc_id = cb.add(str(p.get("title", "")), p["paragraph_text"])
            by_idx[int(p.get("idx", j))] = doc_id
            if p.get("is_supporting"):
                support.append(doc_id)
        order = [by_idx[d["paragraph_support_idx"]] for d in row.get("question_decomposition") or []
                 if isinstance(d, dict) and d.get("paragraph_support_idx") in by_idx]
        ids = list(dict.fromkeys(order + support))
        hops = tuple(Hop(cb.docs[int(d[len(cb.prefix):])].title or d, d) for d in ids)
        answers = _aliases(row["answer"], row.get("answer_aliases"))
        tasks.append(Task(str(row.get("id", f"musique-{i}")), row["question"], answers, hops, source="musique"))
    return tasks, cb.corpus("musique-contexts")


_QUESTION_IN_PROMPT = re.compile(r"Question:\s*(.+?)\s*$", re.DOTALL)


def load_searchr1_parquet(path: str | os.PathLike[str]) -> tuple[list[Task], None]:
    """Search-R1 / IGPO parquet rows. No corpus: pair it with ``corpus=`` or an HTTP retriever."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ConfigError("reading parquet needs pyarrow: pip install 'rlvr-gym[search]'") from e
    path = Path(path)
    rows = pq.read_table(path).to_pylist()
    tasks = []
    for i, row in enumerate(rows):
        q = row.get("question")
        if not q:
            prompt = row.get("prompt")
            if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
                content = str(prompt[-1].get("content", ""))
                m = _QUESTION_IN_PROMPT.search(content)
                q = m.group(1) if m else content
        rm = row.get("reward_model") or {}
        gt = rm.get("ground_truth") if isinstance(rm, dict) else None
        answers = _aliases(row.get("golden_answers"), gt)
        if not q or not answers:
            raise ConfigError(f"{path.name} row {i}: need a question (column 'question' or 'prompt') and answers "
                              "('golden_answers' or reward_model.ground_truth)")
        extra = row.get("extra_info") or {}
        tid = row.get("id") or f"{row.get('data_source', 'searchr1')}-{extra.get('index', i)}"
        tasks.append(Task(str(tid), str(q).strip(), answers, source=str(row.get("data_source") or "searchr1")))
    return tasks, None


def load_qa(path: str | os.PathLike[str], fmt: QAFormat = "auto") -> tuple[list[Task], Corpus | None]:
    """Load QA tasks in any supported format (``fmt="auto"`` guesses from the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"QA file {str(path)!r} does not exist")
    if fmt == "auto":
        if path.suffix == ".parquet":
            fmt = "searchr1"
        else:
            rows = _read_json_or_jsonl(path)
            first = rows[0] if rows else {}
            if "paragraphs" in first:
                fmt = "musique"
            elif "evidences" in first or first.get("type") in ("compositional", "comparison", "inference", "bridge_comparison"):
                fmt = "2wiki"
            elif "context" in first or "supporting_facts" in first:
                fmt = "hotpotqa"
            else:
                raise ConfigError(f"{path.name}: cannot tell the QA format; pass qa_format= one of hotpotqa, 2wiki, musique, searchr1")
    loaders = {"hotpotqa": load_hotpotqa, "2wiki": load_2wiki, "musique": load_musique, "searchr1": load_searchr1_parquet}
    if fmt not in loaders:
        raise ConfigError(f"unknown qa_format {fmt!r}; expected one of {['auto', *loaders]}")
    tasks, corpus = loaders[fmt](path)
    if not tasks:
        raise ConfigError(f"{path.name}: no usable questions")
    return tasks, corpus
