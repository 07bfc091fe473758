"""rlvr.caches: named, bounded, thread-safe caches, all emptied by rlvr.clear_caches()."""

import gc
import re
import threading
import time

import pytest

import rlvr
from rlvr import caches
from rlvr.caches import LRUCache, tree_bytes
from rlvr.errors import ConfigError


def test_entry_bound_evicts_least_recently_used():
    c = LRUCache("t", max_items=2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # "a" is now the most recently used
    c.put("c", 3)
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3 and len(c) == 2


def test_byte_bound_and_values_larger_than_the_budget():
    c = LRUCache("t", max_bytes=10, size=len)
    c.put("a", b"12345")
    c.put("b", b"1234")
    assert c.nbytes == 9
    c.put("c", b"123")
    assert "a" not in c and c.nbytes == 7
    assert c.put("huge", b"x" * 11) == b"x" * 11 and "huge" not in c and c.nbytes == 7
    c.put("b", b"1")  # replacing an entry updates the byte count
    assert c.nbytes == 4


def test_resize_evicts_what_no_longer_fits():
    c = LRUCache("t", max_items=5)
    for i in range(5):
        c.put(i, i)
    c.resize(max_items=2)
    assert len(c) == 2 and 3 in c and 4 in c
    with pytest.raises(ConfigError, match="counts entries, not bytes"):
        c.resize(max_bytes=1)


def test_a_cache_needs_a_bound():
    with pytest.raises(ConfigError, match="needs a bound"):
        LRUCache("t")
    with pytest.raises(ConfigError, match="max_bytes needs size="):
        LRUCache("t", max_bytes=1)


def test_get_or_build_builds_once_under_concurrency():
    c = LRUCache("t", max_items=4)
    calls = []

    def build():
        calls.append(1)
        time.sleep(0.05)
        return "v"

    out = []
    threads = [threading.Thread(target=lambda: out.append(c.get_or_build("k", build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["v"] * 8 and len(calls) == 1


def test_a_failed_build_is_not_cached():
    c = LRUCache("t", max_items=4)
    with pytest.raises(ZeroDivisionError):
        c.get_or_build("k", lambda: 1 / 0)
    assert "k" not in c and c.get_or_build("k", lambda: 2) == 2


class _Obj:
    __hash__ = None  # unhashable, as tasks holding dicts are


def test_weak_keys_go_with_their_object_and_never_answer_for_a_new_one():
    c = LRUCache("t", max_items=100, weak_keys=True)
    a = _Obj()
    c.put(a, "a")
    assert c.get(a) == "a" and a in c
    del a
    gc.collect()
    assert len(c) == 0  # the entry went with its key object
    # an entry filed under an id that a new object now has (what an id() key would do) is a miss
    x, b = _Obj(), _Obj()
    c.put(x, "x")
    c._data[id(b)] = c._data.pop(id(x))
    assert c.get(b) is None and b not in c and c.get(x) is None


def test_clear_caches_empties_named_and_per_object_caches():
    own = LRUCache("per-object", max_items=3)
    own.put("k", 1)
    caches.TEXT_SPANS.put(("x",), ((0, 1),))
    rlvr.clear_caches()
    assert len(own) == 0 and len(caches.TEXT_SPANS) == 0


def test_every_named_cache_is_documented_with_its_bound():
    doc = caches.__doc__
    for name, cache in caches.named_caches().items():
        assert f"``{name}``" in doc, name
        assert cache.max_items is not None or cache.max_bytes is not None
    listed = set(re.findall(r"^``([a-z_.]+)``\s{2,}", doc, flags=re.M))
    assert listed - {"swe.generated_tasks"} == set(caches.named_caches())


def test_tree_bytes():
    assert tree_bytes({"a": b"12", "b": b"345"}) == 5
    assert tree_bytes(None) == 0

    class T:
        files = {"a": b"1234"}

    assert tree_bytes(T()) == 4


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    from rlvr.agents import models

    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "c"))
    assert caches.cache_dir() == tmp_path / "c" and models.cache_dir is caches.cache_dir
    monkeypatch.delenv("RLVR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert caches.cache_dir() == tmp_path / "xdg" / "rlvr"


def test_toolcall_tool_prototypes_are_keyed_by_spec_content():
    from rlvr.envs.toolcall.env import ToolCallEnv

    rlvr.clear_caches()
    spec = {"name": "add", "description": "Add.", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}
    twin = {"name": "add", "description": "Add.", "parameters": {"properties": {"a": {"type": "integer"}}, "type": "object"}}
    other = {**spec, "description": "Sum."}
    ToolCallEnv._tool(spec, lambda a: a, False)
    ToolCallEnv._tool(twin, lambda a: a, False)
    assert len(caches.TOOL_PROTOTYPES) == 1  # same content, another object: one prototype
    t = ToolCallEnv._tool(other, lambda a: a + 1, False)
    assert len(caches.TOOL_PROTOTYPES) == 2 and t.description == "Sum." and t.fn(1) == 2
