"""Check environment keyword arguments against the constructor's type annotations (used by the registry).

Nothing is coerced: a value either fits the annotation as given or the check raises a
:class:`~rlvr.errors.ConfigError` naming the keyword, the expected type, the value got and an
example. Option dicts that stand for a config dataclass (``synthetic={"hops": 2}``) have their keys
checked against the dataclass fields, with a did-you-mean, and their values against the field types.

Annotations the checker does not understand (non-runtime protocols, type variables, names it cannot
resolve) accept every value: the constructor's own validation still runs after this check.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import difflib
import functools
import inspect
import itertools
import json
import numbers
import os
import shlex
import types
import typing
from typing import Any

from rlvr.errors import ConfigError, did_you_mean

__all__ = ["check_kwarg_types", "constructor_params"]

_SEQUENCES = (list, tuple, set, frozenset, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection,
              cabc.Set, cabc.MutableSet)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


def _resolve(fn: Any) -> dict[str, Any]:
    """Type hints of ``fn``; annotations that cannot be evaluated are left out (checked as ``Any``)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    out: dict[str, Any] = {}
    ns = getattr(fn, "__globals__", {})
    for name, ann in getattr(fn, "__annotations__", {}).items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, dict(ns))  # noqa: S307 - the class's own annotation text, in its own module
            except Exception:
                continue
        out[name] = ann
    return out


@functools.lru_cache(maxsize=64)
def constructor_params(cls: type) -> dict[str, tuple[Any, Any]]:
    """``name -> (annotation, default)`` of every keyword ``cls(...)`` takes, following ``**kwargs`` up the MRO.

    The first class in the MRO that names a parameter decides its annotation (a subclass may narrow it).
    """
    out: dict[str, tuple[Any, Any]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        hints = _resolve(init)
        for p in params:
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in out:
                continue
            out[p.name] = (hints.get(p.name, Any), p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


from numpy import bool_ as np_bool  # numpy scalars are common in sweeps

_MAX_ITEMS_CHECKED = 10_000  # items of a long sequence checked here; the constructor still sees them all


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _arms(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if _is_union(tp) else (tp,)


def _is_str_like(value: Any) -> bool:
    return isinstance(value, (str, bytes, bytearray))


def matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits the annotation ``tp`` as it is (no conversion)."""
    if tp is Any or tp is object or isinstance(tp, (typing.TypeVar, typing.ForwardRef, str)):
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(tp):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is typing.Annotated:
        return matches(value, args[0])
    if tp is bool:
        return isinstance(value, (bool, np_bool))
    if tp is int:  # numpy integers count; bools and floats (5.0) do not
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np_bool))
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np_bool))
    if tp is complex:
        return isinstance(value, numbers.Complex) and not isinstance(value, (bool, np_bool))
    if tp is str:
        return isinstance(value, (str, os.PathLike))  # a path where a file name is annotated as str
    if tp in _SEQUENCES or origin in _SEQUENCES:
        base = origin or tp
        if _is_str_like(value) or isinstance(value, cabc.Mapping):
            return False
        if base in (set, frozenset, cabc.Set, cabc.MutableSet):
            ok = isinstance(value, (cabc.Set, list, tuple))
        elif base in (list, tuple):
            ok = isinstance(value, (list, tuple))  # a JSON list stands for a tuple too
        elif base in (cabc.Sequence, cabc.MutableSequence):
            ok = isinstance(value, cabc.Sequence)
        else:
            ok = isinstance(value, cabc.Iterable)
        if not ok:
            return False
        if not isinstance(value, cabc.Collection):
            return True  # an iterator: checking its items would consume it
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if args == ((),):
                return len(value) == 0
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
        if args and args[0] is not Ellipsis:
            return all(matches(v, args[0]) for v in itertools.islice(value, _MAX_ITEMS_CHECKED))
        return True
    if tp in _MAPPINGS or origin in _MAPPINGS:
        if not isinstance(value, cabc.Mapping):
            return False
        if len(args) == 2:
            items = itertools.islice(value.items(), _MAX_ITEMS_CHECKED)
            return all(matches(k, args[0]) and matches(v, args[1]) for k, v in items)
        return True
    if tp is cabc.Callable or origin is cabc.Callable:
        return callable(value)
    if origin is type:
        return isinstance(value, type)
    cls = origin if isinstance(origin, type) else tp
    if isinstance(cls, type):
        if getattr(cls, "_is_protocol", False) and not getattr(cls, "_is_runtime_protocol", False):
            return True  # a static protocol: nothing to check at run time
        try:
            return isinstance(value, cls)
        except TypeError:
            return True
    return True


def describe(tp: Any) -> str:
    """The annotation in words, as an error message says it."""
    if tp is Any or tp is object:
        return "anything"
    if tp is None or tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(tp):
        parts = [describe(a) for a in args if a is not type(None)]
        if type(None) in args:
            parts.append("None")
        return " or ".join(parts)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return describe(args[0])
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string", complex: "a number"}
    if tp in simple:
        return simple[tp]
    if tp in _SEQUENCES or origin in _SEQUENCES:
        base = origin or tp
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(set(args)) == 1:
                return f"a list of {len(args)} {_plural(args[0])}"
            return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
        if args and args[0] is not Ellipsis and args[0] is not Any:
            return f"a list of {_plural(args[0])}"
        return "a list"
    if tp in _MAPPINGS or origin in _MAPPINGS:
        if len(args) == 2 and not (args[0] is Any and args[1] is Any):
            return f"a dict of {_plural(args[0])} to {_plural(args[1])}"
        return "a dict"
    if tp is cabc.Callable or origin is cabc.Callable:
        return "a callable"
    cls = origin if isinstance(origin, type) else tp
    if cls is os.PathLike:
        return "a path"
    return f"a {getattr(cls, '__name__', str(cls))}"


def _plural(tp: Any) -> str:
    words = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}
    if tp in words:
        return words[tp]
    d = describe(tp)
    return d[2:] + "s" if d.startswith("a ") and " " not in d[2:] else f"({d})"


def _sample(tp: Any, value: Any = None) -> Any:
    """A JSON value that fits ``tp``, for an example; ``None`` when there is no natural one."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(tp):
        for a in args:
            if a is not type(None):
                s = _sample(a, value)
                if s is not None:
                    return s
        return None
    if origin is typing.Literal:
        return args[0]
    if tp is bool:
        return True
    if tp is int:
        return 10
    if tp is float:
        return 1.0
    if tp is str:
        return "text"
    if tp in _SEQUENCES or origin in _SEQUENCES:
        if value is not None and args and args[0] is not Ellipsis and matches(value, args[0]):
            return [value]  # "multi_turn_base" for a list of strings: ["multi_turn_base"]
        if (origin or tp) is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            items = [_sample(a) for a in args]
            return None if any(i is None for i in items) else items
        inner = _sample(args[0]) if args and args[0] is not Ellipsis else "text"
        return None if inner is None else [inner]
    if tp in _MAPPINGS or origin in _MAPPINGS:
        if len(args) == 2:
            k, v = _sample(args[0]), _sample(args[1])
            if isinstance(value, cabc.Mapping) and value and matches(next(iter(value)), args[0]):
                k = next(iter(value))  # keep the user's key: {"outcome": "1"} -> {"outcome": 1.0}
            if k is not None and v is not None:
                return {k: v}
        return None
    return None


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _example(name: str, tp: Any, default: Any, value: Any, key: str | None = None) -> str:
    """``"; for example name=JSON (on the command line: -e ...)"``; with ``key``, the value sits in ``{key: ...}``."""
    ex = None
    close = [a for arm in _arms(tp) if typing.get_origin(arm) is typing.Literal for a in typing.get_args(arm)]
    close = difflib.get_close_matches(value, [c for c in close if isinstance(c, str)], n=1) if isinstance(value, str) else []
    if close:
        ex = close[0]
    elif not _element_of_sequence(value, tp) and default is not inspect.Parameter.empty and default is not None and default != ()  \
            and matches(default, tp) and _jsonable(default):
        ex = list(default) if isinstance(default, tuple) else default
    if ex is None:
        ex = _sample(tp, value)
    if ex is None:
        return ""
    ex = ex if key is None else {key: ex}
    text = json.dumps(ex, ensure_ascii=False)
    cli = text
    if isinstance(ex, str):
        try:
            json.loads(ex)
        except ValueError:
            cli = ex  # -e reads a value that is not JSON as a plain string
    return f"; for example {name}={text} (on the command line: -e {shlex.quote(f'{name}={cli}')})"


def _element_of_sequence(value: Any, tp: Any) -> bool:
    """Whether ``value`` would fit as one element of a sequence ``tp`` accepts (``"a"`` for ``Sequence[str]``)."""
    return value is not None and any(
        (a in _SEQUENCES or typing.get_origin(a) in _SEQUENCES) and bool(typing.get_args(a))
        and typing.get_args(a)[0] is not Ellipsis and matches(value, typing.get_args(a)[0]) for a in _arms(tp))


def _got(value: Any, tp: Any) -> str:
    r = repr(value)
    if len(r) > 80:
        r = r[:77] + "..."
    note = ", which would be read letter by letter" if isinstance(value, str) and _element_of_sequence(value, tp) else ""
    return f"{r} ({type(value).__name__}{note})"


def _config_class(tp: Any) -> type | None:
    """The config dataclass among the arms of ``tp``, if any."""
    for a in _arms(tp):
        if isinstance(a, type) and dataclasses.is_dataclass(a):
            return a
    return None


def _accepts_mapping(tp: Any) -> bool:
    return any(a in _MAPPINGS or typing.get_origin(a) in _MAPPINGS for a in _arms(tp))


def _check_config_dict(where: str, name: str, value: cabc.Mapping, cfg: type) -> None:
    fields = {f.name: f for f in dataclasses.fields(cfg) if f.init}
    hints = _resolve(cfg)
    for key in value:
        if not isinstance(key, str) or key not in fields:
            raise ConfigError(
                f"{where}: {name} got an unknown key {key!r}{did_you_mean(str(key), fields)}; "
                f"{cfg.__name__} accepts: {', '.join(sorted(fields))}"
            )
    for key, v in value.items():
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        _check_one(where, f"{name}[{key!r}]", v, hints.get(key, Any), default, parent=(name, key))


def _check_one(where: str, name: str, value: Any, tp: Any, default: Any, parent: tuple[str, str] | None = None) -> None:
    cfg = _config_class(tp)
    if cfg is not None and isinstance(value, cabc.Mapping) and not matches(value, cfg):
        if _accepts_mapping(tp):
            _check_config_dict(where, name, value, cfg)
            return
        fields = sorted(f.name for f in dataclasses.fields(cfg) if f.init)
        raise ConfigError(
            f"{where}: {name} must be {describe(tp)}, got a dict; build it in Python as "
            f"{cfg.__module__}.{cfg.__name__}(...) with fields {', '.join(fields)}"
        )
    if matches(value, tp):
        return
    hint = ""
    choices = [a for arm in _arms(tp) if typing.get_origin(arm) is typing.Literal for a in typing.get_args(arm)]
    if isinstance(value, str) and choices:
        hint = did_you_mean(value, [c for c in choices if isinstance(c, str)])
    example = _example(parent[0], tp, default, value, key=parent[1]) if parent else _example(name, tp, default, value)
    raise ConfigError(f"{where}: {name} must be {describe(tp)}, got {_got(value, tp)}{hint}{example}")


def check_kwarg_types(where: str, cls: type, kwargs: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first keyword whose value does not fit ``cls``'s annotation.

    ``where`` names the environment in the message (its id). Keywords ``cls`` does not declare are
    left to the unknown-keyword check.
    """
    params = constructor_params(cls)
    for name, value in kwargs.items():
        if name in params:
            tp, default = params[name]
            _check_one(where, name, value, tp, default)
