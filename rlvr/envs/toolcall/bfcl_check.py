"""BFCL's function schemas and AST checker: pure functions over BFCL function docs and possible answers.

Split from :mod:`rlvr.envs.toolcall.bfcl` (which loads the data and runs the executable backends, and
re-exports :func:`to_json_schema` and :func:`ast_check`). Nothing here reads files or imports ``bfcl_eval``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.envs.toolcall.task import json_roundtrip
from rlvr.rewards.matchtir import GoldCall

__all__ = ["ast_check", "to_json_schema"]

# --------------------------------------------------------------------------- schemas

_JSON_TYPES = {
    "string": "string", "String": "string", "char": "string", "any": "string", "Any": "string",
    "integer": "integer", "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "Bigint": "integer", "float": "number", "double": "number", "number": "number",
    "boolean": "boolean", "bool": "boolean", "Boolean": "boolean",
    "array": "array", "list": "array", "tuple": "array", "ArrayList": "array", "Array": "array",
    "Queue": "array", "Stack": "array", "dict": "object", "object": "object", "HashMap": "object",
    "Hashtable": "object",
}
_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list, "object": dict}
_KEEP = ("description", "enum", "default")


def to_json_schema(spec: Mapping[str, Any], *, language: str = "python", enums: bool = True) -> dict[str, Any]:
    """Convert a BFCL parameter spec (types ``dict``, ``float``, ``tuple``, Java / JS names, ...) to JSON schema.

    Keeps ``description``, ``enum``, ``default``, ``properties``, ``items`` and (top level) ``required``.
    The top-level object refuses unknown parameters; its optional parameters also accept ``null``
    (BFCL's possible answers use ``None`` for "not given"). With ``enums=False`` allowed values move
    into the description (BFCL does not enforce them; its checker judges the values). For Java and
    JavaScript every value may also be a string (a variable name or a source expression, as BFCL's
    own Java / JavaScript cases write them), and ``any`` is unconstrained.
    """
    out = _convert(spec, language=language, enums=enums)
    out["type"] = "object"
    props = out.setdefault("properties", {})
    required = [r for r in spec.get("required", []) if isinstance(r, str)]
    for name, p in props.items():
        if name not in required and "type" in p:
            p["type"] = (p["type"] if isinstance(p["type"], list) else [p["type"]]) + ["null"]
            if "enum" in p:
                p["enum"] = list(p["enum"]) + [None]
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _convert(spec: Mapping[str, Any], *, language: str, enums: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw = str(spec.get("type", ""))
    t = None if language != "python" and raw in ("any", "Any") else _JSON_TYPES.get(raw)
    if t:
        out["type"] = [t, "string"] if language != "python" and t != "string" else t
    for k in _KEEP:
        if k in spec and (k != "enum" or enums):
            out[k] = spec[k]
    if not enums and isinstance(spec.get("enum"), list):
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in spec["enum"])
        out["description"] = (str(spec.get("description", "")) + f" Allowed values: {allowed}.").strip()
    if "properties" in spec and isinstance(spec["properties"], Mapping):
        out["properties"] = {k: _convert(v, language=language, enums=enums) for k, v in spec["properties"].items()}
    if isinstance(spec.get("items"), Mapping):
        out["items"] = _convert(spec["items"], language=language, enums=enums)
    return out


def _function_spec(doc: Mapping[str, Any], language: str = "python", enums: bool = True) -> dict[str, Any]:
    return {
        "name": doc["name"],
        "description": str(doc.get("description", "")),
        "parameters": to_json_schema(
            doc.get("parameters", {"type": "dict", "properties": {}}), language=language, enums=enums
        ),
    }


def _signature(doc: Mapping[str, Any], language: str = "python") -> dict[str, Any]:
    """What the AST check needs of a BFCL function doc: parameter types, required names, language."""
    def jtype(raw: Any) -> str | None:
        if raw is None or (language != "python" and raw in ("any", "Any")):
            return None
        return _JSON_TYPES.get(str(raw))

    props = doc.get("parameters", {}).get("properties", {})
    types = {}
    for k, v in props.items():
        item = v.get("items", {}).get("type") if isinstance(v.get("items"), Mapping) else None
        types[k] = (jtype(v.get("type")), jtype(item))
    return {"types": types, "required": list(doc.get("parameters", {}).get("required", [])), "language": language}


# --------------------------------------------------------------------------- AST check (BFCL rules)


def _standardize(s: str) -> str:
    """BFCL's lenient string form: no spaces or ``,./-_*^``, lower case, single quotes as double."""
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


def _answer_type(acceptable: Sequence[Any]) -> type | None:
    for a in acceptable:
        if a != "":
            return type(a)
    return None


def _dict_ok(value: Mapping[str, Any], templates: Sequence[Any]) -> bool:
    for tpl in templates:
        if tpl == "" or not isinstance(tpl, Mapping):
            continue
        ok = True
        for k, v in value.items():
            if k not in tpl:
                ok = False
                break
            allowed = [_standardize(a) if isinstance(a, str) else a for a in tpl[k]]
            if (_standardize(v) if isinstance(v, str) else v) not in allowed:
                ok = False
                break
        if ok and all(k in value or "" in tpl[k] for k in tpl):
            return True
    return False


def _list_dict_ok(value: Sequence[Any], templates: Sequence[Any]) -> bool:
    for tpl in templates:
        tpl = [] if tpl == "" else tpl
        if not isinstance(tpl, list) or len(tpl) != len(value):
            continue
        if all(isinstance(v, Mapping) and _dict_ok(v, [t]) for v, t in zip(value, tpl)):
            return True
    return False


def _std_list(v: Sequence[Any]) -> list[Any]:
    return [_standardize(x) if isinstance(x, str) else x for x in v]


def _value_ok(value: Any, acceptable: Sequence[Any], ptype: str | None, item_type: str | None) -> bool:
    """One argument against its possible answers, following BFCL's simple-function checker."""
    if ptype is None:
        return value in acceptable
    expected = _PY_TYPES[ptype]
    if expected is float and type(value) is int:
        value = float(value)
    atype = _answer_type(acceptable)
    is_variable = atype is not None and atype is not expected
    nested = _PY_TYPES.get(item_type) if item_type else None
    if type(value) is expected:
        if nested is not None:
            def items_ok(pa: Any) -> bool:
                if not isinstance(pa, list):
                    return True
                inner = _answer_type(pa)
                return all(type(v) is nested or (inner is not None and type(v) is inner) for v in value)

            if not any(items_ok(pa) for pa in acceptable):
                return False
    elif atype is not None and type(value) is atype:
        is_variable = True
    else:
        return False
    if not is_variable:
        if expected is dict:
            return _dict_ok(value, acceptable)
        if expected is list and nested is dict:
            return _list_dict_ok(value, acceptable)
        if expected is str:
            return _standardize(value) in [_standardize(a) for a in acceptable if isinstance(a, str)]
        if expected is list:
            options = [[] if a == "" else a for a in acceptable]
            return _std_list(value) in [_std_list(a) for a in options if isinstance(a, list)]
    return value in acceptable


def _from_source(value: Any, ptype: str | None) -> Any:
    """Java / JavaScript: a string holding a literal of the declared type (``"true"``, ``"42"``) is that value."""
    if not isinstance(value, str) or ptype in (None, "string"):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if ptype in _PY_TYPES and _of_type(parsed, ptype) else value


def _of_type(value: Any, ptype: str | None) -> bool:
    """Whether a value has the declared BFCL type (an int is a number; unknown types fit)."""
    expected = _PY_TYPES.get(ptype) if ptype else None
    return expected is None or type(value) is expected or (expected is float and type(value) is int)


def _acceptable(gold: GoldCall, param: str) -> list[Any]:
    return list(gold.accept.get(param, ())) + ([""] if param in gold.optional else [])


def _call_ok(name: str, args: Mapping[str, Any], gold: GoldCall, signature: Mapping[str, Any]) -> bool:
    if name != gold.name:
        return False
    if any(p not in args for p in signature["required"]):
        return False
    known = set(gold.accept) | set(gold.optional)
    for p, v in args.items():
        if p not in signature["types"] or p not in known:
            return False
        ptype, item = signature["types"][p]
        if signature.get("language", "python") != "python":
            v = _from_source(v, ptype)
        if not _value_ok(v, _acceptable(gold, p), ptype, item):
            return False
    return all(p in args or p in gold.optional for p in known)


def ast_check(
    calls: Sequence[Mapping[str, Any]], golds: Sequence[GoldCall], signatures: Mapping[str, Mapping[str, Any]]
) -> bool:
    """BFCL's AST verdict for one request: as many calls as gold calls, and each gold call (in order)
    matched by the first not-yet-used call that satisfies it. With no gold calls, no call may be made."""
    if len(calls) != len(golds):
        return False
    used: set[int] = set()
    for g in golds:
        sig = signatures.get(g.name)
        if sig is None:
            return False
        for i, c in enumerate(calls):
            if i not in used and _call_ok(str(c.get("name")), c.get("arguments") or {}, g, sig):
                used.add(i)
                break
        else:
            return False
    return True


def _canonical(value: Any, ptype: str | None, item_type: str | None) -> Any:
    """The first allowed value of a possible-answer entry (dict templates resolved one level deep)."""
    def from_template(tpl: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for k, opts in tpl.items():
            firsts = [o for o in opts if o != ""]
            if firsts:
                out[k] = firsts[0]
        return out

    if ptype == "object" and isinstance(value, Mapping):
        return from_template(value)
    if ptype == "array" and item_type == "object" and isinstance(value, list):
        return [from_template(v) if isinstance(v, Mapping) else v for v in value]
    return value


def _ast_gold(answer: Mapping[str, Any], signatures: Mapping[str, Any]) -> GoldCall:
    (name, params), = answer.items()
    signature = signatures.get(name, {"types": {}})
    types = signature["types"]
    typed = signature.get("language", "python") == "python"  # Java / JavaScript values may be source strings
    args: dict[str, Any] = {}
    accept: dict[str, tuple[Any, ...]] = {}
    optional = set()
    for p, options in params.items():
        values = [o for o in options if o != ""]
        if "" in options:
            optional.add(p)
        if values:
            accept[p] = tuple(values)
            if p in optional and (p not in types or values[0] is None):
                continue  # the oracle leaves out optional parameters it cannot state cleanly
            ptype, item = types.get(p, (None, None))
            # the first allowed value of the declared type: some possible answers also list values of another
            # type (False for a string enum of "True" / "False"), which the tool's schema refuses
            fitting = [v for v in values if not typed or _of_type(v, ptype)]
            if not fitting and p in optional:
                continue  # every stated value contradicts the declared type: an optional parameter is left out
            args[p] = json_roundtrip(_canonical((fitting or values)[0], ptype, item))
    return GoldCall(name, args, frozenset(optional), accept)
