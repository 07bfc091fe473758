"""Every in-process cache rlvr keeps, in one place: named, bounded, thread-safe, cleared by :func:`clear_caches`.

The caches below are the only module-level memory rlvr keeps between calls. Each is an :class:`LRUCache`
bounded by a number of entries or by a byte budget (least recently used entries go first); all are
safe to use from the threads a rollout steps environments in. :func:`rlvr.clear_caches` empties every
one of them (and any per-object :class:`LRUCache`, such as a SWE generator's tasks), as a new process
would find them; nothing on disk is touched.

==========================  ====================================================  ==================
name                        holds                                                 bound (default)
==========================  ====================================================  ==================
``toolcall.tools``          validated ToolCall tool prototypes, keyed by the      65,536 entries
                            spec's content
``toolcall.prompts``        the ToolCall system prompt of a task object (held     512 entries
                            weakly: an entry goes with its task)
``toolcall.bfcl``           parsed BFCL categories, function docs and specs       256 entries
``deepsearch.spans``        sentence and page spans of a document text            8,192 entries
``deepsearch.retrieval``    loaded BM25 indexes, MiniLM encoders, embeddings      16 entries
``swe.projects``            the shipped SWE projects' files                       256 MiB
``swe.mutations``           candidate mutations per project and kinds             256 entries
``swe.catalogs``            generator catalog text per (path, mtime)              8 entries
``swe.git_trees``           ``git archive`` trees of SWE-bench clones             512 MiB
``swe.generated_tasks``     one per SWE generator: the tasks it built (files)     256 MiB each
``grounding.images``        Grounding-v0 originals (decoded RGB) and their        512 MiB
                            opening views, shared by the environments of a
                            process (a group's episodes share one copy)
==========================  ====================================================  ==================

On disk, :func:`cache_dir` (``$RLVR_CACHE``, else ``$XDG_CACHE_HOME/rlvr`` or ``~/.cache/rlvr``) holds
downloaded models and built retrieval indexes; :func:`clear_caches` leaves it alone.

Memos of code lookups (``functools.lru_cache`` over a class or a backend name, such as
``rlvr._kwarg_types.constructor_params``) stay beside their code: they are bounded by the classes that
exist and hold no data.

A bound can be changed at run time with :meth:`LRUCache.resize` (``rlvr.caches.SWE_GIT_TREES.resize(
max_bytes=2 << 30)``). Environments' shared *resources* (container backends, sandbox pools) are not
caches: they hold live processes and are closed at exit by their own modules.

Keys are values (strings, tuples, digests), never ``id()`` of an object, since ids are reused once
an object is collected; a cache made with ``weak_keys=True`` holds its key objects weakly and
compares them by identity, so a collected object's entry can never answer for a new one.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Generic, Hashable, TypeVar

from rlvr.errors import ConfigError

__all__ = [
    "LRUCache", "MiB", "cache_dir", "clear_caches", "named_caches", "tree_bytes",
    "TOOL_PROTOTYPES", "TOOL_PROMPTS", "BFCL", "TEXT_SPANS", "RETRIEVAL",
    "SWE_PROJECTS", "SWE_MUTATIONS", "SWE_CATALOGS", "SWE_GIT_TREES", "GROUNDING_IMAGES",
]

V = TypeVar("V")
MiB = 1 << 20

_ALL: "weakref.WeakSet[LRUCache[Any]]" = weakref.WeakSet()
_ALL_LOCK = threading.Lock()


class _Ref:
    """A key held weakly and compared by identity (``weak_keys=True``)."""

    __slots__ = ("ref", "ident")

    def __init__(self, obj: Any) -> None:
        self.ref, self.ident = weakref.ref(obj), id(obj)


class LRUCache(Generic[V]):
    """A thread-safe least-recently-used map bounded by entries and/or bytes.

    Args:
        name: shown in :func:`named_caches` and in messages.
        max_items: most entries kept (``None``: no entry bound).
        max_bytes: most bytes kept, as measured by ``size`` (``None``: no byte bound). A value larger
            than the whole budget is returned but not kept.
        size: bytes of one value (needed with ``max_bytes``).
        weak_keys: keys are objects held weakly and compared by identity (for unhashable objects such
            as tasks holding dicts); the entry of a collected object is dropped.
    """

    def __init__(self, name: str, *, max_items: int | None = None, max_bytes: int | None = None,
                 size: Callable[[V], int] | None = None, weak_keys: bool = False) -> None:
        if max_items is None and max_bytes is None:
            raise ConfigError(f"cache {name!r} needs a bound: pass max_items=, max_bytes= or both")
        if max_bytes is not None and size is None:
            raise ConfigError(f"cache {name!r}: max_bytes needs size= (the bytes of one value)")
        self.name = name
        self.max_items, self.max_bytes = max_items, max_bytes
        self._size = size
        self._weak = weak_keys
        self._data: OrderedDict[Hashable, tuple[Any, V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self._building: dict[Hashable, threading.Lock] = {}
        with _ALL_LOCK:
            _ALL.add(self)

    # ------------------------------------------------------------------ keys
    def _key(self, key: Any) -> tuple[Hashable, Any]:
        """The internal key and what the entry keeps to check it (the weak reference for weak keys)."""
        if not self._weak:
            return key, None
        return id(key), _Ref(key)

    def _valid(self, key: Any, guard: Any) -> bool:
        return guard is None or guard.ref() is key

    # ------------------------------------------------------------------ map
    def get(self, key: Any, default: Any = None) -> Any:
        """The cached value of ``key`` (and mark it recently used), or ``default``."""
        k, _ = self._key(key)
        with self._lock:
            hit = self._data.get(k)
            if hit is None or not self._valid(key, hit[0]):
                return default
            self._data.move_to_end(k)
            return hit[1]

    def put(self, key: Any, value: V) -> V:
        """Store ``value`` under ``key``, evicting least recently used entries past the bounds; returns it."""
        k, guard = self._key(key)
        n = self._size(value) if self._size is not None else 0
        with self._lock:
            self._drop(k)
            if self.max_bytes is not None and n > self.max_bytes:
                return value  # larger than the whole budget: not kept
            self._data[k] = (guard, value, n)
            self._bytes += n
            self._evict()
        return value

    def get_or_build(self, key: Any, build: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``build()`` stored; concurrent callers of one key build it once."""
        sentinel = _MISSING
        hit = self.get(key, sentinel)
        if hit is not sentinel:
            return hit
        k, _ = self._key(key)
        with self._lock:
            lock = self._building.setdefault(k, threading.Lock())
        try:
            with lock:
                hit = self.get(key, sentinel)
                if hit is not sentinel:
                    return hit
                return self.put(key, build())
        finally:
            with self._lock:
                if self._building.get(k) is lock and not lock.locked():
                    del self._building[k]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def resize(self, *, max_items: int | None = None, max_bytes: int | None = None) -> None:
        """Change the bounds (``None`` keeps a bound as it is) and evict what no longer fits."""
        with self._lock:
            if max_items is not None:
                self.max_items = max_items
            if max_bytes is not None:
                if self._size is None:
                    raise ConfigError(f"cache {self.name!r} counts entries, not bytes; pass max_items=")
                self.max_bytes = max_bytes
            self._evict()

    def __contains__(self, key: Any) -> bool:
        k, _ = self._key(key)
        with self._lock:
            hit = self._data.get(k)
            return hit is not None and self._valid(key, hit[0])

    def __len__(self) -> int:
        with self._lock:
            self._purge_dead()
            return len(self._data)

    @property
    def nbytes(self) -> int:
        """Bytes held, as measured by ``size`` (0 for a cache bounded by entries only)."""
        return self._bytes

    def __repr__(self) -> str:
        bound = ", ".join(f"{k}={v}" for k, v in (("max_items", self.max_items), ("max_bytes", self.max_bytes)) if v)
        return f"LRUCache({self.name!r}, {bound}, entries={len(self)}, bytes={self._bytes})"

    # ------------------------------------------------------------------ internals (lock held)
    def _drop(self, k: Hashable) -> None:
        old = self._data.pop(k, None)
        if old is not None:
            self._bytes -= old[2]

    def _purge_dead(self) -> None:
        if self._weak:
            for k in [k for k, (g, _, _) in self._data.items() if g.ref() is None]:
                self._drop(k)

    def _evict(self) -> None:
        self._purge_dead()
        while self._data and (
            (self.max_items is not None and len(self._data) > self.max_items)
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            self._drop(next(iter(self._data)))


_MISSING = object()


def cache_dir() -> Path:
    """Root of rlvr's caches on disk (models, indexes): ``$RLVR_CACHE``, else ``$XDG_CACHE_HOME/rlvr`` or
    ``~/.cache/rlvr``."""
    root = os.environ.get("RLVR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "rlvr"
    )
    return Path(root)


def tree_bytes(files: Any) -> int:
    """Bytes of a ``{path: bytes}`` file tree, or of an object with such a ``files`` attribute (``None``: 0)."""
    files = getattr(files, "files", files)
    return sum(len(v) for v in files.values()) if files else 0


def clear_caches() -> None:
    """Empty every cache rlvr keeps in this process (each :class:`LRUCache`); files on disk are kept."""
    with _ALL_LOCK:
        live = list(_ALL)
    for cache in live:
        cache.clear()


def named_caches() -> dict[str, LRUCache[Any]]:
    """The module-level caches listed in this module's docstring, by name."""
    return {c.name: c for c in (TOOL_PROTOTYPES, TOOL_PROMPTS, BFCL, TEXT_SPANS, RETRIEVAL, SWE_PROJECTS,
                                SWE_MUTATIONS, SWE_CATALOGS, SWE_GIT_TREES, GROUNDING_IMAGES)}


TOOL_PROTOTYPES: LRUCache[Any] = LRUCache("toolcall.tools", max_items=65_536)
TOOL_PROMPTS: LRUCache[str] = LRUCache("toolcall.prompts", max_items=512, weak_keys=True)
BFCL: LRUCache[Any] = LRUCache("toolcall.bfcl", max_items=256)
TEXT_SPANS: LRUCache[tuple[tuple[int, int], ...]] = LRUCache("deepsearch.spans", max_items=8192)
RETRIEVAL: LRUCache[Any] = LRUCache("deepsearch.retrieval", max_items=16)
SWE_PROJECTS: LRUCache[Any] = LRUCache("swe.projects", max_bytes=256 * MiB, size=tree_bytes)
SWE_MUTATIONS: LRUCache[Any] = LRUCache("swe.mutations", max_items=256)
SWE_CATALOGS: LRUCache[str] = LRUCache("swe.catalogs", max_items=8)
SWE_GIT_TREES: LRUCache[dict[str, bytes]] = LRUCache("swe.git_trees", max_bytes=512 * MiB, size=tree_bytes)


def _image_pair_bytes(pair: Any) -> int:
    """Bytes of decoded RGB images: a tuple of PIL images or objects with an ``image``."""
    total = 0
    for item in pair:
        img = getattr(item, "image", item)
        total += 3 * img.width * img.height
    return total


GROUNDING_IMAGES: LRUCache[Any] = LRUCache("grounding.images", max_bytes=512 * MiB, size=_image_pair_bytes)
