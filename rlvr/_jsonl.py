"""The one JSON Lines reader behind every file rlvr loads (corpora, task files, BFCL data, trajectories).

Every failure is a :class:`~rlvr.errors.ConfigError` (or the subclass a caller names, such as the SWE
loader's :class:`~rlvr.envs.swe.errors.TaskError`) that names the file and line as ``path:line``, says
what was expected and how to fix it. Blank lines are skipped.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Iterator

from rlvr.errors import ConfigError

PathLike = str | os.PathLike[str]


def _plural(what: str, plural: str | None) -> str:
    return plural if plural is not None else f"{what}s"


def _check_file(path: Path, what: str, error: type[ConfigError]) -> None:
    if not path.is_file():
        raise error(f"no such {what} file: {str(path)!r}; pass the path of an existing JSON Lines file "
                    f"(one {what} object per line)")


def read_jsonl_located(path: PathLike, *, what: str = "task", plural: str | None = None, allow_empty: bool = False,
                       skip_torn_tail: bool = False,
                       error: type[ConfigError] = ConfigError) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, object)`` for every non-blank line of a JSON Lines file; ``where`` is ``"path:line"``.

    Args:
        what: singular name of one record (``"task"``, ``"document"``), used in the messages.
        plural: its plural when not ``what + "s"``.
        allow_empty: a file with no records is fine (otherwise an error once the file is read).
        skip_torn_tail: a last line that is not valid JSON is skipped (a writer died mid-line).
        error: the :class:`ConfigError` subclass to raise.
    """
    p = Path(path)
    _check_file(p, what, error)
    with open(p, encoding="utf-8") as f:
        yield from _records(p, f, what, plural, allow_empty, skip_torn_tail, error)


def _records(p: Path, f: Any, what: str, plural: str | None, allow_empty: bool, skip_torn_tail: bool,
             error: type[ConfigError]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The records of the open text stream ``f`` of file ``p`` (see :func:`read_jsonl_located`)."""
    n = 0
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if skip_torn_tail and not f.read().strip():
                break
            raise error(f"{where}: not valid JSON ({e.msg}); expected one {what} object per line: fix or "
                        "remove this line") from e
        if not isinstance(obj, dict):
            raise error(f"{where}: expected a JSON object ({what}), got {type(obj).__name__} "
                        f"{line.strip()[:80]!r}; write one {what} object per line")
        n += 1
        yield where, obj
    if n == 0 and not allow_empty:
        raise error(f"{p} holds no {_plural(what, plural)}: every line is blank; expected one {what} object per line")


def read_jsonl(path: PathLike, *, what: str = "task", plural: str | None = None, allow_empty: bool = False,
               skip_torn_tail: bool = False, error: type[ConfigError] = ConfigError) -> Iterator[dict[str, Any]]:
    """Yield the object of every non-blank line of a JSON Lines file (see :func:`read_jsonl_located`)."""
    for _, obj in read_jsonl_located(path, what=what, plural=plural, allow_empty=allow_empty,
                                     skip_torn_tail=skip_torn_tail, error=error):
        yield obj


def read_json_records(path: PathLike, *, what: str = "task", plural: str | None = None,
                      error: type[ConfigError] = ConfigError) -> list[tuple[str, dict[str, Any]]]:
    """``(where, object)`` for every record of a JSON file holding a list of objects, or of a JSON Lines file.

    ``where`` is ``"path[i]"`` for a list item and ``"path:line"`` for a JSON Lines record.
    """
    p = Path(path)
    _check_file(p, what, error)
    text = p.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        return list(_records(p, io.StringIO(text), what, plural, False, False, error))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{p}:{e.lineno}: not valid JSON ({e.msg}); expected a JSON list of {what} objects or "
                    "JSON Lines") from e
    out: list[tuple[str, dict[str, Any]]] = []
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise error(f"{p}[{i}]: expected a JSON object ({what}), got {type(obj).__name__}; the file must be a "
                        f"list of {what} objects")
        out.append((f"{p}[{i}]", obj))
    if not out:
        raise error(f"{p} holds no {_plural(what, plural)}: the list is empty")
    return out
