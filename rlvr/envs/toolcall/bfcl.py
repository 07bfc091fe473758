"""Berkeley Function Calling Leaderboard (BFCL v4) cases as :class:`~rlvr.envs.toolcall.task.ToolTask`.

The data comes from the ``bfcl-eval`` package (install it with ``pip install --no-deps bfcl-eval``:
only its data files and its executable multi-turn backends are used, located with
:func:`importlib.util.find_spec` and imported module by module, never through the package's
evaluation runner). Files are read lazily, per category, and the parsed tasks are cached for the
life of the process.

Categories and how they are judged:

* AST categories (``simple_python``, ``simple_java``, ``simple_javascript``, ``multiple``,
  ``parallel``, ``parallel_multiple`` and the ``live_*`` versions): one request whose calls must
  match the possible answers by BFCL's AST rules (:func:`ast_check`); the tools only record calls.
* Irrelevance (``irrelevance``, ``live_irrelevance``): no call may be made.
* Multi-turn (``multi_turn_base``, ``multi_turn_miss_func``, ``multi_turn_miss_param``,
  ``multi_turn_long_context``): several requests answered with BFCL's executable backends (file
  system, trading, travel, vehicle control, ...). After each request the gold calls are replayed on a
  second copy of the backends; the request passes when the backends' public attributes are equal and
  every gold result appears among the results of the calls made so far (BFCL's state and response
  checks). ``miss_func`` functions appear when their request opens; ``miss_param`` requests have no
  gold calls (the model should ask for the missing value).

Not loaded: ``live_relevance`` (no gold calls to check or replay), ``memory`` (needs a memory backend
with extra dependencies and prerequisite conversations), ``web_search`` (needs the internet) and
``format_sensitivity`` (a list of prompt formats, not cases).

Deviations, by design: Java and JavaScript arguments are typed JSON values (checked with the Python
rules) rather than Java / JavaScript source literals; BFCL's unused ``excluded_function`` field is
ignored, as in BFCL itself.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import importlib.util
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr._jsonl import read_jsonl
from rlvr.caches import BFCL
from rlvr.envs.toolcall.task import Request, ToolTask, json_roundtrip
from rlvr.errors import ConfigError, did_you_mean
from rlvr.rewards.matchtir import GoldCall

__all__ = [
    "AST_CATEGORIES",
    "BFCLRuntime",
    "BFCL_CATEGORIES",
    "IRRELEVANCE_CATEGORIES",
    "MULTI_TURN_CATEGORIES",
    "UNSUPPORTED_CATEGORIES",
    "ast_check",
    "bfcl_data_dir",
    "bfcl_report",
    "load_bfcl",
    "parse_call_string",
    "to_json_schema",
]

AST_CATEGORIES: tuple[str, ...] = (
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
)
IRRELEVANCE_CATEGORIES: tuple[str, ...] = ("irrelevance", "live_irrelevance")
MULTI_TURN_CATEGORIES: tuple[str, ...] = (
    "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context",
)
BFCL_CATEGORIES: tuple[str, ...] = AST_CATEGORIES + IRRELEVANCE_CATEGORIES + MULTI_TURN_CATEGORIES
UNSUPPORTED_CATEGORIES: dict[str, str] = {
    "live_relevance": "no gold calls: nothing to check beyond 'some call was made', nothing to replay",
    "memory": "needs a memory backend with extra dependencies and prerequisite conversations",
    "web_search": "needs the internet",
    "format_sensitivity": "a list of prompt formats, not cases",
}

_BACKEND_PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
_BACKENDS: dict[str, tuple[str, str]] = {  # class -> (module, function-doc file)
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}
_STATELESS = {"MathAPI"}

_INSTRUCTIONS = (
    "You are an expert in composing functions. You are given a request and a set of functions. "
    "Make one or more function calls to fulfil the request. If none of the functions can be used, "
    "or the request lacks a parameter a function needs, say so instead of calling."
)
_MULTI_TURN_INSTRUCTIONS = _INSTRUCTIONS + (
    " Keep calling functions until the current request is fulfilled, then reply to the user inside "
    "<answer></answer>; the user may then make another request."
)
_DONE = "The request has been handled with the function calls above."
_DECLINE = "I cannot do this with the available functions and the information given."
_NEW_FUNCTIONS = "More functions are available now. Please try the previous request again."

# --------------------------------------------------------------------------- data location


def bfcl_data_dir() -> Path:
    """The ``data`` folder of the installed ``bfcl_eval`` package (without importing the package)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "BFCL tasks need the 'bfcl-eval' package; install its data and backends with "
            "`pip install --no-deps bfcl-eval`, or use source='synthetic'"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not root.is_dir():
        raise ConfigError(f"bfcl_eval is installed but has no data folder at {root}; reinstall bfcl-eval")
    return root


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path, what="BFCL record"))


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
    expected = _PY_TYPES[ptype]
    if type(parsed) is expected or (expected is float and type(parsed) is int):
        return parsed
    return value


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
    types = signatures.get(name, {"types": {}})["types"]
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
            args[p] = json_roundtrip(_canonical(values[0], ptype, item))
    return GoldCall(name, args, frozenset(optional), accept)


# --------------------------------------------------------------------------- multi-turn backends


@functools.lru_cache(maxsize=None)
def _backend_class(name: str) -> type:
    if name not in _BACKENDS:
        raise ConfigError(f"unknown BFCL backend class {name!r}{did_you_mean(name, _BACKENDS)}")
    module = importlib.import_module(f"{_BACKEND_PACKAGE}.{_BACKENDS[name][0]}")
    return getattr(module, name)


def _func_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    return BFCL.get_or_build(("func_docs", class_name), lambda: tuple(
        _read_jsonl(bfcl_data_dir() / "multi_turn_func_doc" / _BACKENDS[class_name][1])))


def _class_specs(class_name: str) -> dict[str, dict[str, Any]]:
    """The converted specs of a backend class, shared by every case (memoised in the ``toolcall.bfcl`` cache)."""
    return BFCL.get_or_build(("class_specs", class_name),
                             lambda: {d["name"]: _function_spec(d) for d in _func_docs(class_name)})


def _result_text(value: Any) -> str:
    """BFCL's text form of a backend return value."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


class _Method:
    """A backend method called with keyword arguments; returns BFCL's text form of the result."""

    __slots__ = ("method",)

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method

    def __call__(self, **kwargs: Any) -> str:
        return _result_text(self.method(**kwargs))


@dataclass
class BFCLRuntime:
    """Fresh instances of a case's backend classes, loaded with its initial configuration.

    ``state()`` is every public attribute of every instance (what BFCL's state check compares).
    """

    classes: tuple[str, ...]
    initial_config: Mapping[str, Any]
    long_context: bool = False
    instances: dict[str, Any] = field(init=False)
    _fns: dict[str, Callable[..., Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.instances = {}
        self._fns = {}
        for name in self.classes:
            inst = _backend_class(name)()
            if name not in _STATELESS:
                inst._load_scenario(copy.deepcopy(dict(self.initial_config.get(name, {}))), long_context=self.long_context)
            self.instances[name] = inst
            for attr, member in inspect.getmembers(inst, predicate=inspect.ismethod):
                if not attr.startswith("_"):
                    self._fns[attr] = _Method(member)

    def functions(self) -> Mapping[str, Callable[..., Any]]:
        return self._fns

    def state(self) -> dict[str, dict[str, Any]]:
        return {
            name: {k: v for k, v in vars(inst).items() if not k.startswith("_")}
            for name, inst in self.instances.items()
        }


@dataclass(frozen=True)
class _BFCLBackend:
    """Picklable factory of :class:`BFCLRuntime` for one case."""

    classes: tuple[str, ...]
    initial_config: Mapping[str, Any]
    long_context: bool

    def __call__(self) -> BFCLRuntime:
        return BFCLRuntime(self.classes, self.initial_config, self.long_context)


def _record_only() -> Any:
    from rlvr.envs.toolcall.task import FunctionRuntime

    return FunctionRuntime({})


def parse_call_string(text: str, params: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """Parse a Python-style call ``name(a, k=v)`` into ``(name, arguments)``.

    Positional arguments are named from ``params`` (the function's parameter names, in order);
    values must be literals. Raises ConfigError otherwise.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ConfigError(f"cannot parse call {text!r}: {e.msg}") from e
    if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
        raise ConfigError(f"expected a function call like name(arg=value), got {text!r}")
    name = ast.unparse(node.func)
    args: dict[str, Any] = {}
    try:
        for i, a in enumerate(node.args):
            if i >= len(params):
                raise ConfigError(f"call {text!r} has {len(node.args)} positional arguments; {name} takes {list(params)}")
            args[params[i]] = ast.literal_eval(a)
        for kw in node.keywords:
            if kw.arg is None:
                raise ConfigError(f"call {text!r} uses **kwargs; name each argument")
            args[kw.arg] = ast.literal_eval(kw.value)
    except ValueError as e:
        raise ConfigError(f"call {text!r} has a non-literal argument: {e}") from e
    return name, args


# --------------------------------------------------------------------------- loaders


@dataclass
class _Skipped:
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _opening(question: Sequence[Mapping[str, Any]]) -> tuple[str, tuple[dict[str, Any], ...]]:
    """Split a BFCL turn into system text and chat messages."""
    system = "\n\n".join(str(m.get("content", "")) for m in question if m.get("role") == "system")
    msgs = tuple(
        {"role": m["role"], "content": str(m.get("content", ""))} for m in question if m.get("role") in ("user", "assistant")
    )
    return system, msgs


def _load_single_turn(category: str, root: Path, skipped: _Skipped) -> list[ToolTask]:
    entries = _read_jsonl(root / f"BFCL_v4_{category}.json")
    irrelevance = category in IRRELEVANCE_CATEGORIES
    answers: dict[str, Any] = {}
    if not irrelevance:
        answers = {r["id"]: r["ground_truth"] for r in _read_jsonl(root / "possible_answer" / f"BFCL_v4_{category}.json")}
    tasks = []
    language = {"simple_java": "java", "simple_javascript": "javascript"}.get(category, "python")
    for e in entries:
        try:
            signatures = {d["name"]: _signature(d, language) for d in e["function"]}
            functions = tuple(_function_spec(d, language, enums=False) for d in e["function"])
            if irrelevance:
                golds: tuple[GoldCall, ...] = ()
            else:
                if e["id"] not in answers:
                    skipped.add("no possible answer")
                    continue
                golds = tuple(_ast_gold(a, signatures) for a in answers[e["id"]])
            system, msgs = _opening(e["question"][0])
            request = Request(msgs, (golds,) if golds else (), (), _DONE if golds else _DECLINE)
            tasks.append(
                ToolTask(
                    task_id=e["id"], source="bfcl", category=category, functions=functions, requests=(request,),
                    backend=_record_only, outcome="ast", instructions="\n\n".join(x for x in (_INSTRUCTIONS, system) if x),
                    meta={"signatures": signatures},
                )
            )
        except (ConfigError, KeyError, TypeError, ValueError) as err:
            skipped.add(f"{type(err).__name__}: {err}"[:120])
    return tasks


def _load_multi_turn(category: str, root: Path, skipped: _Skipped) -> list[ToolTask]:
    entries = _read_jsonl(root / f"BFCL_v4_{category}.json")
    answers = {r["id"]: r["ground_truth"] for r in _read_jsonl(root / "possible_answer" / f"BFCL_v4_{category}.json")}
    long_context = "long_context" in category
    tasks = []
    for e in entries:
        try:
            classes = tuple(e["involved_classes"])
            for c in classes:
                _backend_class(c)  # import errors skip the case with the reason
            docs: list[dict[str, Any]] = [d for c in classes for d in _func_docs(c)]
            params = {
                name: [p for p in inspect.signature(getattr(_backend_class(c), name)).parameters if p != "self"]
                for c in classes for name in (d["name"] for d in _func_docs(c))
            }
            missed = {int(k): list(v) for k, v in e.get("missed_function", {}).items()}
            held = {n for names in missed.values() for n in names}
            specs = {n: spec for c in classes for n, spec in _class_specs(c).items()}
            functions = tuple(specs[d["name"]] for d in docs if d["name"] not in held)
            requests = []
            for i, (question, gold) in enumerate(zip(e["question"], answers[e["id"]], strict=True)):
                calls = []
                for s in gold:
                    name, args = parse_call_string(s, params.get(s.split("(")[0].strip(), ()))
                    calls.append(GoldCall(name, json_roundtrip(args)))
                system, msgs = _opening(question)
                new = tuple(specs[n] for n in missed.get(i, []))
                if new and not msgs:
                    msgs = ({"role": "user", "content": _NEW_FUNCTIONS},)
                requests.append(Request(msgs, (tuple(calls),) if calls else (), new, _DONE if calls else _DECLINE))
            tasks.append(
                ToolTask(
                    task_id=e["id"], source="bfcl", category=category, functions=functions, requests=tuple(requests),
                    backend=_BFCLBackend(classes, e.get("initial_config", {}), long_context), outcome="state",
                    instructions=_MULTI_TURN_INSTRUCTIONS, meta={"involved_classes": classes},
                )
            )
        except ImportError as err:
            skipped.add(f"backend import failed: {err}"[:120])
        except (ConfigError, KeyError, TypeError, ValueError) as err:
            skipped.add(f"{type(err).__name__}: {err}"[:120])
    return tasks


def _load_category(category: str) -> tuple[tuple[ToolTask, ...], dict[str, Any]]:
    """The tasks of a category and its load report (memoised in the ``toolcall.bfcl`` cache)."""
    return BFCL.get_or_build(("category", category), lambda: _parse_category(category))


def _parse_category(category: str) -> tuple[tuple[ToolTask, ...], dict[str, Any]]:
    root = bfcl_data_dir()
    skipped = _Skipped()
    if category in MULTI_TURN_CATEGORIES:
        tasks = _load_multi_turn(category, root, skipped)
    else:
        tasks = _load_single_turn(category, root, skipped)
    with (root / f"BFCL_v4_{category}.json").open(encoding="utf-8") as f:
        total = sum(1 for line in f if line.strip())
    return tuple(tasks), {"cases": total, "loaded": len(tasks), "skipped": dict(skipped.reasons)}


def _check_categories(categories: Sequence[str]) -> None:
    for c in categories:
        if c in UNSUPPORTED_CATEGORIES:
            raise ConfigError(f"BFCL category {c!r} is not supported: {UNSUPPORTED_CATEGORIES[c]}")
        if c not in BFCL_CATEGORIES:
            raise ConfigError(
                f"unknown BFCL category {c!r}{did_you_mean(c, BFCL_CATEGORIES)}; expected some of {list(BFCL_CATEGORIES)}"
            )


def load_bfcl(categories: Sequence[str] | None = None) -> tuple[ToolTask, ...]:
    """The BFCL v4 cases of ``categories`` (default: every supported category), parsed once per process."""
    cats = tuple(categories) if categories is not None else BFCL_CATEGORIES
    _check_categories(cats)
    return tuple(t for c in cats for t in _load_category(c)[0])


def bfcl_report(categories: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per category: cases in the file, cases loaded, and why the others were skipped (loads them if needed)."""
    cats = tuple(categories) if categories is not None else BFCL_CATEGORIES
    _check_categories(cats)
    report = {c: dict(_load_category(c)[1]) for c in cats}
    for c, why in UNSUPPORTED_CATEGORIES.items():
        if categories is None:
            report[c] = {"cases": None, "loaded": 0, "skipped": {why: None}}
    return report
