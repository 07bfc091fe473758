"""The on-disk store of generated games: built once, addressed by what they are made from.

A game is a directory under ``cache_dir()/textgames/<kind>/<key>``, where ``key`` is the SHA-256 of its
*recipe* (the generator, its version and every setting, seed included), so the same recipe finds the
same files in every process and on every machine, and a changed setting can never reuse a stale game.
A directory is built in a private temporary sibling and renamed into place (atomic on one file
system): concurrent builders of one recipe waste work at worst, never see half a game. Each directory
holds ``manifest.json`` (the recipe and the SHA-256 of every file); an entry whose files no longer match
it (a truncated copy, a hand edit) is rebuilt instead of being played.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from rlvr.caches import cache_dir

__all__ = ["recipe_key", "entry_dir", "build_once", "file_sha256"]

MANIFEST = "manifest.json"


def recipe_key(recipe: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a JSON-serialisable recipe, independent of key order."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def entry_dir(kind: str, recipe: Mapping[str, Any]) -> Path:
    """Where the game of ``recipe`` lives (whether or not it was built yet)."""
    return cache_dir() / "textgames" / kind / recipe_key(recipe)[:24]


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _intact(path: Path) -> bool:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        return bool(files) and all(file_sha256(path / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def build_once(kind: str, recipe: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
    """The cache directory of ``recipe``, calling ``build(tmp_dir)`` to write its files when it is missing
    or damaged. ``build`` writes into the empty directory it is given; an exception leaves nothing behind."""
    final = entry_dir(kind, recipe)
    if _intact(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"recipe": dict(recipe), "files": files}, indent=1, sort_keys=True))
        if final.exists():  # damaged: move it aside first so the rename below can land
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale.", dir=final.parent))
            try:
                os.replace(final, stale / "old")
            except OSError:
                pass
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # another process renamed its copy first
            if not _intact(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
