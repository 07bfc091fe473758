"""``rlvr describe ENV``: an environment's options, reward components and weights, reset options and tools.

Everything comes from the declarations the code checks against, never from a second copy: the
keyword arguments and their types from the constructors (:func:`rlvr._kwarg_types.constructor_params`,
what ``gym.make`` checks), their documentation from the classes' ``Args:`` sections and settings
dataclasses, the components from ``reward_components`` / ``optional_components``, the weights from
the built environment's ``reward_weights`` (every weight in force), the reset keys from
``reset_options`` and the tools from the environment's tool set.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
from typing import Any

from rlvr._kwarg_types import constructor_params
from rlvr._kwarg_types import describe as describe_type
from rlvr.agents.trajectory import plain
from rlvr.errors import RLVRError
from rlvr.registry import check_env_args, env_info

__all__ = ["describe_env", "format_description", "reward_components_of"]

_ARG = re.compile(r"^(\*{0,2}[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _args_section(doc: str | None) -> dict[str, str]:
    """``name -> text`` of a Google-style ``Args:`` section (``a, b: text`` documents both)."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return {}
    indent: int | None = None
    names: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip():
            if names:
                break
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        m = _ARG.match(line.strip()) if depth == indent else None
        if m:
            names = [n.strip() for n in m.group(1).split(",")]
            for n in names:
                out[n] = m.group(2).strip()
        elif names:
            for n in names:
                out[n] = f"{out[n]} {line.strip()}".strip()
    return out


def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings (a string right after ``name: type = default``) of a class's source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            out[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return out


def _option_docs(cls: type, names: set[str]) -> dict[str, str]:
    """Documentation of each keyword: the ``Args:`` of every class in the MRO (the most derived wins), then the
    fields of settings dataclasses the class's module uses whose fields are all keywords of the class."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_args_section(klass.__doc__))
    module = inspect.getmodule(cls)
    for obj in vars(module).values() if module else ():
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            fields = {f.name for f in dataclasses.fields(obj)}
            if fields and fields <= names:
                for k, v in _field_docs(obj).items():
                    docs.setdefault(k, v)
    return {k: v for k, v in docs.items() if k in names}


def reward_components_of(env_id: str) -> tuple[str, ...]:
    """The reward components an environment class declares (``reward_components``), without building it."""
    cls = check_env_args(env_id, {})
    return tuple(getattr(cls, "reward_components", ()) or ())


def _tool_entry(tool: Any) -> dict[str, Any]:
    params = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": {k: {"type": v.get("type", "any"), "required": k in required,
                           **({"description": v["description"]} if "description" in v else {})}
                       for k, v in params.items()},
    }


def describe_env(env_id: str, env_kwargs: dict[str, Any] | None = None, *, build: bool = True) -> dict[str, Any]:
    """A JSON-ready description of ``env_id`` made with ``env_kwargs``.

    With ``build`` (default) the environment is built once to read the weights in force and its tools
    (reset with seed 0 when its tools come with the task); a build that fails (a missing Docker engine,
    a server down) leaves ``build_error`` and the declared information only.
    """
    kwargs = dict(env_kwargs or {})
    cls = check_env_args(env_id, kwargs)
    if cls is None:
        raise RLVRError(f"{env_id} is not an rlvr environment class; `rlvr describe` knows the ids `rlvr list` shows")
    try:
        info = env_info(env_id)
        family, description, entry, requires = info.family, info.description, info.entry_point, list(info.requires)
    except RLVRError:
        family, description = getattr(cls, "family", ""), getattr(cls, "description", "")
        entry, requires = f"{cls.__module__}:{cls.__qualname__}", []
    params = constructor_params(cls)
    docs = _option_docs(cls, set(params))
    options = [{"name": name, "type": describe_type(tp), "default": None if default is inspect.Parameter.empty
                else plain(default), "required": default is inspect.Parameter.empty, "doc": docs.get(name, ""),
                **({"given": plain(kwargs[name])} if name in kwargs else {})}
               for name, (tp, default) in params.items()]
    declared = tuple(getattr(cls, "reward_components", ()))
    optional = set(getattr(cls, "optional_components", ()))
    weights: dict[str, float] = {}
    tools: list[dict[str, Any]] = []
    tools_note = "the environment's tools"
    build_error = None
    if build:
        import gymnasium as gym

        env = None
        try:
            env = gym.make(env_id, **kwargs)
            u = env.unwrapped
            weights = {str(k): float(v) for k, v in dict(getattr(u, "reward_weights", {}) or {}).items()}
            if getattr(u, "tools", None) is not None and not len(u.tools):
                env.reset(seed=0)
                tools_note = "tools of the task at reset(seed=0): they come with each task"
            tools = [_tool_entry(t) for t in (getattr(u, "tools", None) or ())]
        except Exception as e:  # noqa: BLE001 - reported in the description, the declared part still useful
            build_error = f"{type(e).__name__}: {e}"
        finally:
            if env is not None:
                env.close()
    components = [{"name": n, "weight": weights.get(n) if build_error is None and build else None,
                   "optional": n in optional} for n in declared]
    out: dict[str, Any] = {
        "id": env_id, "family": family, "description": description, "entry_point": entry, "requires": requires,
        "options": options, "reward_components": components,
        "reset_options": list(getattr(cls, "reset_options", ())), "tools": tools, "tools_note": tools_note,
    }
    if build_error is not None:
        out["build_error"] = build_error
    return out


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return "None" if value is None else str(value)


def format_description(d: dict[str, Any], width: int = 100) -> str:
    """The text ``rlvr describe`` prints for a :func:`describe_env` result."""
    lines = [f"{d['id']}  ({d['family']})", *textwrap.wrap(d["description"], width, initial_indent="  ",
                                                         subsequent_indent="  ")]
    lines.append(f"  entry point: {d['entry_point']}; needs: {', '.join(d['requires']) or 'nothing else'}")
    lines += ["", "options (gym.make keywords; on the command line -e KEY=VALUE, values as JSON):"]
    w = max(len(o["name"]) for o in d["options"])
    for o in d["options"]:
        default = "required" if o["required"] else f"default {_cell(o['default'])}"
        given = f"; given {_cell(o['given'])}" if "given" in o else ""
        lines.append(f"  {o['name']:<{w}}  {o['type']}; {default}{given}")
        if o["doc"]:
            lines += textwrap.wrap(o["doc"], width, initial_indent=" " * (w + 4), subsequent_indent=" " * (w + 4))
    lines += ["", "reward components (reward = sum of weight * component; weights in force):"]
    w = max((len(c["name"]) for c in d["reward_components"]), default=4)
    for c in d["reward_components"]:
        weight = "?" if c["weight"] is None else f"{c['weight']:g}"
        note = "  (optional: absent where it does not apply)" if c["optional"] else ""
        lines.append(f"  {c['name']:<{w}}  weight {weight}{note}")
    lines += ["", f"reset options (env.reset(options={{...}})): {', '.join(d['reset_options'])}"]
    if "build_error" in d:
        lines += ["", f"tools: not listed, the environment could not be built here: {d['build_error']}"]
    else:
        lines += ["", f"tools ({d['tools_note']}):" if d["tools"] else "tools: none"]
        for t in d["tools"]:
            args = ", ".join(f"{k}: {v['type']}{'' if v['required'] else '?'}" for k, v in t["parameters"].items())
            lines.append(f"  {t['name']}({args})")
            lines += textwrap.wrap(t["description"], width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
