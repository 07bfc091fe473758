"""Berkeley Function Calling Leaderboard (BFCL v4) cases as :class:`~rlvr.envs.toolcall.task.ToolTask`.

The data comes from the ``bfcl-eval`` package (install it with ``pip install --no-deps bfcl-eval``:
only its data files and its executable multi-turn backends are used, located with
:func:`importlib.util.find_spec` and imported module by module, never through the package's
evaluation runner). Files are read lazily, per category, and the parsed tasks are cached for the
life of the process. The schema conversion and the AST checker are pure functions in
:mod:`rlvr.envs.toolcall.bfcl_check` (:func:`to_json_schema` and :func:`ast_check` are re-exported here).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr._jsonl import read_jsonl
from rlvr.caches import BFCL
from rlvr.envs.toolcall.bfcl_check import _ast_gold, _function_spec, _signature, ast_check, to_json_schema
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
