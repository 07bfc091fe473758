"""Question-answering tasks for DeepSearch, and loaders for common multi-hop QA files.

A :class:`Task` is a question with gold answers (aliases), optionally the gold path (one
:class:`Hop` per step: a search query and the document that answers it) and CaRR rubrics.

Loaders (all return ``(tasks, corpus_or_None)``; the corpus is built from the context paragraphs the
file carries, deduplicated by title and text, so the gold documents are searchable):

* HotpotQA (JSON list, ``_id / question / answer / supporting_facts / context``),
* 2WikiMultihopQA (the same layout, plus ``evidences`` and ``type``),
* MuSiQue (JSON Lines, ``id / question / answer / answer_aliases / paragraphs``),
* Search-R1 parquet (``question`` or ``prompt``, answers in ``golden_answers`` or
  ``reward_model.ground_truth.target``; a ``"a<|answer_split|>b"`` string is split into aliases).

Supporting facts (HotpotQA / 2Wiki ``supporting_facts`` titles, MuSiQue ``is_supporting`` paragraphs)
are kept in ``Task.meta["supporting_facts"]`` and resolved **by title** (:func:`normalize_title`)
against the corpus the tasks are searched in: the file's own context paragraphs, or the corpus passed
as ``corpus=`` (``wikipedia``, a JSONL corpus; HotpotQA's fullwiki setting carries no context at all).
:func:`resolve_supporting_facts` turns each resolved title into a :class:`Hop` (gold document, the
supporting sentences as evidence spans) and a CaRR rubric; titles the corpus lacks are listed in an
:class:`UnresolvedTitleWarning` and in ``Task.meta["unresolved_titles"]``.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

from rlvr._jsonl import read_json_records
from rlvr.envs.deepsearch.corpus import Corpus, Document, normalize_title
from rlvr.errors import ConfigError
from rlvr.rewards.carr import Evidence, Rubric
from rlvr.rewards.outcome import normalize_answer

__all__ = [
    "Hop", "Task", "QAFormat", "load_qa", "load_hotpotqa", "load_2wiki", "load_musique", "load_searchr1_parquet",
    "resolve_supporting_facts", "UnresolvedTitleWarning",
]

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
        meta: anything else (hop count, question type...). Tasks from QA files also hold
            ``supporting_facts`` (``[{"title", "sentences"}]``, as in the file) and
            ``unresolved_titles`` (those titles no document of the corpus has).
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
    return [obj for _, obj in read_json_records(path, what="QA item")]


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

    def add(self, title: str, text: str) -> str:
        key = (title, text)
        if key not in self._key:
            doc_id = f"{self.prefix}{len(self.docs)}"
            self.docs.append(Document(doc_id, title, text))
            self._key[key] = doc_id
        return self._key[key]

    def corpus(self, name: str) -> Corpus | None:
        return Corpus(self.docs, name=name) if self.docs else None


def _pairs(value: Any, keys: tuple[str, str], where: str, what: str) -> list[tuple[Any, Any]]:
    """``[[a, b], ...]`` rows, or the Hugging Face ``{keys[0]: [a...], keys[1]: [b...]}`` column form."""
    if value is None:
        return []
    if isinstance(value, dict):
        if not all(k in value for k in keys):
            raise ConfigError(f"{where}: {what} as a dict needs the keys {list(keys)}, got {sorted(value)}")
        firsts, seconds = value[keys[0]], value[keys[1]]
        if not (isinstance(firsts, (list, tuple)) and isinstance(seconds, (list, tuple)) and len(firsts) == len(seconds)):
            raise ConfigError(f"{where}: {what}[{keys[0]!r}] and [{keys[1]!r}] must be lists of the same length")
        return list(zip(firsts, seconds))
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: {what} must be a list of [{keys[0]}, {keys[1]}] pairs, got {type(value).__name__}")
    out = []
    for entry in value:
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            out.append((entry[0], entry[1]))
        elif isinstance(entry, dict) and keys[0] in entry:
            out.append((entry[keys[0]], entry.get(keys[1])))
        else:
            raise ConfigError(f"{where}: each {what} entry must be [{keys[0]}, {keys[1]}], got {str(entry)[:80]!r}")
    return out


def _hotpot_like(path: Path, source: str, corpus: Corpus | None = None) -> tuple[list[Task], Corpus | None]:
    rows = _read_json_or_jsonl(path)
    cb = _CorpusBuilder()
    tasks = []
    for i, row in enumerate(rows):
        where = f"{path.name} item {i}"
        _require(row, ["question", "answer"], where)
        sentences_of: dict[str, list[str]] = {}  # normalised context title -> its sentences
        for title, sents in _pairs(row.get("context"), ("title", "sentences"), where, "context"):
            sent_list = [str(x) for x in sents] if isinstance(sents, (list, tuple)) else [str(sents)]
            cb.add(str(title), "".join(sent_list))
            sentences_of.setdefault(normalize_title(str(title)), sent_list)
        facts: dict[str, dict[str, Any]] = {}
        for title, sent_id in _pairs(row.get("supporting_facts"), ("title", "sent_id"), where, "supporting_facts"):
            if not isinstance(title, str) or not title.strip():
                raise ConfigError(f"{where}: a supporting fact's title must be a non-empty string, got {title!r}")
            fact = facts.setdefault(normalize_title(title), {"title": title, "sentences": [], "sent_ids": []})
            fact["sent_ids"].append(sent_id)
            sents = sentences_of.get(normalize_title(title), [])
            if isinstance(sent_id, int) and 0 <= sent_id < len(sents) and sents[sent_id].strip():
                if sents[sent_id].strip() not in fact["sentences"]:
                    fact["sentences"].append(sents[sent_id].strip())
        answers = _aliases(row["answer"], row.get("answer_aliases"), row.get("aliases"))
        meta = {k: row[k] for k in ("type", "level", "evidences") if k in row}
        meta["supporting_facts"] = list(facts.values())
        tasks.append(Task(str(row.get("_id", row.get("id", f"{source}-{i}"))), row["question"], answers,
                          source=source, meta=meta))
    contexts = cb.corpus(f"{source}-contexts")
    return resolve_supporting_facts(tasks, corpus if corpus is not None else contexts), contexts


def load_hotpotqa(path: str | os.PathLike[str], corpus: Corpus | None = None) -> tuple[list[Task], Corpus | None]:
    """HotpotQA JSON (distractor or fullwiki form); supporting titles become the gold path.

    Args:
        path: the JSON (or JSON Lines) file.
        corpus: resolve the supporting titles against this corpus (for instance
            :func:`~rlvr.envs.deepsearch.corpus.wikipedia_corpus`) instead of the file's ``context``.
    """
    return _hotpot_like(Path(path), "hotpotqa", corpus)


def load_2wiki(path: str | os.PathLike[str], corpus: Corpus | None = None) -> tuple[list[Task], Corpus | None]:
    """2WikiMultihopQA JSON (HotpotQA layout; ``evidences`` triples kept in ``meta``); ``corpus`` as in
    :func:`load_hotpotqa`."""
    return _hotpot_like(Path(path), "2wiki", corpus)


def load_musique(path: str | os.PathLike[str], corpus: Corpus | None = None) -> tuple[list[Task], Corpus | None]:
    """MuSiQue JSON Lines; supporting paragraphs (in decomposition order when given) are the gold path.
    Unanswerable items (``answerable: false``) are skipped; ``corpus`` as in :func:`load_hotpotqa`."""
    path = Path(path)
    rows = _read_json_or_jsonl(path)
    cb = _CorpusBuilder()
    tasks = []
    for i, row in enumerate(rows):
        where = f"{path.name} item {i}"
        _require(row, ["question", "answer"], where)
        if row.get("answerable") is False:
            continue
        by_idx: dict[int, tuple[str, str]] = {}
        support: list[tuple[str, str]] = []
        for j, p in enumerate(row.get("paragraphs") or []):
            if not isinstance(p, dict) or "paragraph_text" not in p:
                raise ConfigError(f"{where}: paragraph {j} needs 'title' and 'paragraph_text'")
            title, text = str(p.get("title", "")), str(p["paragraph_text"])
            cb.add(title, text)
            by_idx[int(p.get("idx", j))] = (title, text)
            if p.get("is_supporting"):
                support.append((title, text))
        order = [by_idx[d["paragraph_support_idx"]] for d in row.get("question_decomposition") or []
                 if isinstance(d, dict) and d.get("paragraph_support_idx") in by_idx]
        facts: dict[str, dict[str, Any]] = {}
        untitled = 0
        for title, text in dict.fromkeys(order + support):
            if not title.strip():
                untitled += 1
                continue
            fact = facts.setdefault(normalize_title(title), {"title": title, "sentences": []})
            if text.strip() and text.strip() not in fact["sentences"]:
                fact["sentences"].append(text.strip())
        if untitled:
            raise ConfigError(f"{where}: {untitled} supporting paragraph(s) have no title; the gold documents are "
                              "found by title, so give every supporting paragraph its 'title'")
        answers = _aliases(row["answer"], row.get("answer_aliases"))
        tasks.append(Task(str(row.get("id", f"musique-{i}")), row["question"], answers, source="musique",
                          meta={"supporting_facts": list(facts.values())}))
    contexts = cb.corpus("musique-contexts")
    return resolve_supporting_facts(tasks, corpus if corpus is not None else contexts), contexts


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


def load_qa(
    path: str | os.PathLike[str], fmt: QAFormat = "auto", corpus: Corpus | None = None
) -> tuple[list[Task], Corpus | None]:
    """Load QA tasks in any supported format (``fmt="auto"`` guesses from the file).

    Args:
        path: the QA file.
        fmt: its format, or ``auto``.
        corpus: the corpus the tasks will be searched in, when it is not the file's own context
            paragraphs (``wikipedia``, a JSONL corpus): supporting titles are resolved against it, so
            the gold document ids are that corpus's ids. The returned corpus is still the file's.
    """
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
    if fmt == "searchr1":
        tasks, contexts = load_searchr1_parquet(path)
    else:
        tasks, contexts = loaders[fmt](path, corpus)
    if not tasks:
        raise ConfigError(f"{path.name}: no usable questions")
    return tasks, contexts


# --------------------------------------------------------------------------- supporting facts
class UnresolvedTitleWarning(UserWarning):
    """Supporting-fact titles that the corpus has no document for (listed in ``Task.meta["unresolved_titles"]``)."""


_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")


def _in_text(phrase: str, text: str) -> bool:
    needle = normalize_answer(phrase).split()
    hay = normalize_answer(text).split()
    n = len(needle)
    return bool(n) and any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))


def _entity_names(title: str) -> tuple[str, ...]:
    base = _DISAMBIGUATION.sub("", title).strip()
    return tuple(dict.fromkeys(n for n in (title, base) if n))


def _resolve_fact(fact: dict[str, Any], corpus: Corpus) -> list[tuple[Document, list[Evidence]]]:
    """The documents a supporting fact points to, each with the spans stating it; ``[]`` when no
    document has its title. A sentence is looked up verbatim in the same-titled documents; when none
    is found (or none is known, as in HotpotQA fullwiki) the evidence is the whole first such document."""
    candidates = corpus.titled(str(fact.get("title", "")))
    if not candidates:
        return []
    found: dict[str, tuple[Document, list[Evidence]]] = {}
    for sentence in fact.get("sentences") or []:
        for doc in candidates:
            at = doc.text.find(sentence)
            if at >= 0:
                ev = Evidence(doc.id, at, at + len(sentence))
                entry = found.setdefault(doc.id, (doc, []))
                if ev not in entry[1]:
                    entry[1].append(ev)
                break
    if not found:
        doc = candidates[0]
        return [(doc, [Evidence(doc.id, 0, len(doc.text))])]
    return list(found.values())


def _support_rubrics(task: Task, docs: Sequence[Document]) -> tuple[tuple[Rubric, ...], dict[str, tuple[str, ...]]]:
    """One rubric per gold document: it must be cited (and its evidence seen) next to the answer ``<E0>``.
    A document about an entity that neither the question nor the answer names (a bridge entity) also
    needs that entity named: its rubric mentions the placeholder ``<E1>``, ``<E2>``..."""
    entities: dict[str, tuple[str, ...]] = {"E0": task.answers}
    placeholder_of: dict[str, str] = {}
    rubrics = []
    for doc in docs:
        key = normalize_title(doc.title)
        is_answer = any(normalize_answer(a) == normalize_answer(n) for a in task.answers for n in _entity_names(doc.title))
        named_in_question = any(_in_text(n, task.question) for n in _entity_names(doc.title))
        if is_answer or named_in_question or not normalize_answer(doc.title):
            text = f'The document "{doc.title}" supports the answer <E0>.'
        else:
            ph = placeholder_of.get(key)
            if ph is None:
                ph = placeholder_of[key] = f"E{len(placeholder_of) + 1}"
                entities[ph] = _entity_names(doc.title)
            text = f'The document "{doc.title}" is about <{ph}>, a step towards the answer <E0>.'
        rubrics.append(Rubric(text, tuple(e for e in _evidence_of(task, doc))))
    return tuple(rubrics), entities


def _evidence_of(task: Task, doc: Document) -> tuple[Evidence, ...]:
    return next((h.evidence for h in task.hops if h.doc_id == doc.id), ())


def resolve_supporting_facts(tasks: Sequence[Task], corpus: Corpus | None) -> list[Task]:
    """Rebuild each task's gold path from ``meta["supporting_facts"]`` against ``corpus``.

    Each fact (``{"title": ..., "sentences": [...]}``) is looked up by :func:`normalize_title`; a
    resolved one becomes a :class:`Hop` (query: the document's title, gold document: its id in
    ``corpus``, evidence: the spans of its supporting sentences) and a CaRR :class:`Rubric` with the
    same evidence, so the ``evidence`` reward, the exact rubric check and the oracle all work. Titles
    the corpus lacks go to ``meta["unresolved_titles"]`` and into one :class:`UnresolvedTitleWarning`
    for the whole call. Tasks without supporting facts are returned unchanged.

    Args:
        tasks: tasks from :func:`load_qa` (or any task whose ``meta`` holds ``supporting_facts``).
        corpus: the corpus the tasks are searched in; ``None`` (an HTTP retriever only) resolves nothing.
    """
    out: list[Task] = []
    missing: list[tuple[str, str]] = []
    for task in tasks:
        facts = task.meta.get("supporting_facts")
        if not facts:
            out.append(task)
            continue
        hops: dict[str, Hop] = {}
        docs: dict[str, Document] = {}
        unresolved: list[str] = []
        for fact in facts:
            resolved = _resolve_fact(fact, corpus) if corpus is not None else []
            if not resolved:
                unresolved.append(str(fact.get("title")))
                continue
            for doc, evs in resolved:
                if doc.id in hops:
                    merged = hops[doc.id].evidence + tuple(e for e in evs if e not in hops[doc.id].evidence)
                    hops[doc.id] = Hop(doc.title, doc.id, merged)
                else:
                    hops[doc.id] = Hop(doc.title, doc.id, tuple(evs))
                    docs[doc.id] = doc
        missing.extend((task.id, t) for t in unresolved)
        task = replace(task, hops=tuple(hops.values()), rubrics=(), entities={},
                       meta={**task.meta, "unresolved_titles": unresolved})
        if hops:
            rubrics, entities = _support_rubrics(task, list(docs.values()))
            task = replace(task, rubrics=rubrics, entities=entities)
        out.append(task)
    if missing:
        shown = ", ".join(f"{title!r} (task {tid})" for tid, title in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        where = f"corpus {corpus.name!r}" if corpus is not None else "any local corpus (none was given)"
        n_tasks = len({tid for tid, _ in missing})
        warnings.warn(
            f"{len(missing)} supporting title(s) of {n_tasks} task(s) match no document title in {where}: "
            f"{shown}{more}. Those steps have no gold document, so the evidence and rubric rewards leave them out "
            "(listed in Task.meta['unresolved_titles']). Pass the corpus the titles come from (corpus=...), or fix "
            "the titles.",
            UnresolvedTitleWarning, stacklevel=2,
        )
    return out
