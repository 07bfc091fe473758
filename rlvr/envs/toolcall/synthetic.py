"""Synthetic multi-step tool tasks with gold call traces, deterministic from a seed.

Each task lives in a small invented world (people, companies, cities, countries) with lookup tools
(``get_employer``, ``get_headquarters``, ``get_country``, ``get_capital``, ``get_mayor``,
``get_founder``) and numeric attributes (``get_age``, ``get_revenue``, ``get_population``,
``get_area``). A question chains lookups: every call after the first needs the previous result::

    What is the population of the city where the company that employs Ada Verin is headquartered?
    get_employer(person="Ada Verin") -> "Zorbex Labs"
    get_headquarters(company="Zorbex Labs") -> "Velmora"
    get_population(city="Velmora") -> 412305

Difficulty knobs (:class:`SyntheticConfig`): ``hops`` (calls per chain), ``branches`` (independent
chains whose results are combined by an ``aggregate`` call; their calls can run in parallel, one
step at a time), ``distractors`` (decoy tools) and ``entities`` (world size). The gold trace groups
calls in steps: step ``t`` holds the ``t``-th call of every chain, and the ``aggregate`` call comes last.
The tools are plain Python sources (:class:`~rlvr.envs.toolcall.code.CodeBackend`), so a task can be
written out as an FTRL-style JSON record (:func:`to_record`) and read back by the JSON loader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlvr.envs.toolcall.code import CodeBackend
from rlvr.envs.toolcall.task import Request, ToolTask
from rlvr.errors import ConfigError
from rlvr.rewards.matchtir import GoldCall

__all__ = ["SyntheticConfig", "generate_task", "to_record"]

_TYPES = ("person", "company", "city", "country")
# relation tool -> (argument type, result type, phrase with {x})
_RELATIONS: dict[str, tuple[str, str, str]] = {
    "get_employer": ("person", "company", "the company that employs {x}"),
    "get_headquarters": ("company", "city", "the city where {x} is headquartered"),
    "get_founder": ("company", "person", "the founder of {x}"),
    "get_country": ("city", "country", "the country that {x} is in"),
    "get_capital": ("country", "city", "the capital of {x}"),
    "get_mayor": ("city", "person", "the mayor of {x}"),
}
# attribute tool -> (argument type, phrase, low, high)
_ATTRIBUTES: dict[str, tuple[str, str, int, int]] = {
    "get_age": ("person", "the age in years of {x}", 21, 90),
    "get_revenue": ("company", "the annual revenue in millions of dollars of {x}", 3, 9_000),
    "get_population": ("city", "the population of {x}", 8_000, 4_000_000),
    "get_area": ("country", "the area in square kilometres of {x}", 900, 950_000),
}
_RELATION_DOCS = {
    "get_employer": "Look up the company a person works for.",
    "get_headquarters": "Look up the city where a company has its headquarters.",
    "get_founder": "Look up the person who founded a company.",
    "get_country": "Look up the country a city belongs to.",
    "get_capital": "Look up the capital city of a country.",
    "get_mayor": "Look up the mayor of a city.",
    "get_age": "Look up a person's age in years.",
    "get_revenue": "Look up a company's annual revenue in millions of dollars.",
    "get_population": "Look up a city's population.",
    "get_area": "Look up a country's area in square kilometres.",
}
# decoy tool -> (argument type, description, values)
_DECOYS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "get_currency": ("country", "Look up the currency used in a country.", ("crown", "mark", "florin", "dinar", "real", "peso")),
    "get_weather": ("city", "Look up today's weather in a city.", ("sunny", "rainy", "cloudy", "windy", "snowy", "foggy")),
    "get_ticker": ("company", "Look up a company's stock ticker symbol.", ("ZBX", "QRL", "MNV", "TKA", "PLO", "WDE")),
    "get_email": ("person", "Look up a person's work e-mail address.", ("office", "contact", "hello", "desk", "mail", "team")),
    "get_timezone": ("city", "Look up the time zone of a city.", ("UTC+1", "UTC+2", "UTC-5", "UTC+8", "UTC", "UTC-3")),
    "get_language": ("country", "Look up the main language spoken in a country.", ("Vesk", "Orran", "Talic", "Mereen", "Qual", "Sorn")),
    "get_industry": ("company", "Look up the industry a company works in.", ("energy", "retail", "software", "shipping", "food", "finance")),
    "get_birth_city": ("person", "Look up the city a person was born in.", ()),
}
_SYLLABLES = ("ka", "ve", "lo", "mi", "ra", "to", "sen", "dor", "qui", "bel", "mar", "zen", "or", "ta", "fi", "nu", "gra", "pel")
_SUFFIX = {"company": ("Labs", "Works", "Systems", "Foods", "Motors", "Group"), "city": ("ton", "ville", "ford", "mora", "by", "holm"),
           "country": ("land", "ia", "stan", "ora", "mark", "istan")}
_OPS = {"sum": "the sum", "max": "the largest", "min": "the smallest"}
_INSTRUCTIONS = (
    "Answer the question with the tools. Look facts up instead of guessing: each lookup may need the "
    "result of an earlier one. Give the final answer as a number only."
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Difficulty knobs of the synthetic generator.

    Args:
        hops: calls per chain (``hops - 1`` relation lookups, then one numeric attribute), 1 to 8.
        branches: independent chains combined by one ``aggregate`` call (1: no aggregate), 1 to 4.
        distractors: decoy tools offered besides the useful ones, 0 to 8.
        entities: entities of each type in the world (people, companies, cities, countries), 2 to 40.
    """

    hops: int = 2
    branches: int = 1
    distractors: int = 2
    entities: int = 6

    def __post_init__(self) -> None:
        for name, lo, hi in (("hops", 1, 8), ("branches", 1, 4), ("distractors", 0, len(_DECOYS)), ("entities", 2, 40)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ConfigError(f"SyntheticConfig.{name} must be an integer in [{lo}, {hi}], got {v!r}")

    @property
    def label(self) -> str:
        return f"h{self.hops}-b{self.branches}-d{self.distractors}-e{self.entities}"


def _names(rng: np.random.Generator, kind: str, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        root = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), size=int(rng.integers(2, 4))))
        root = root.capitalize()
        if kind == "person":
            last = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), size=2)).capitalize()
            name = f"{root} {last}"
        elif kind == "company":
            name = f"{root} {_SUFFIX[kind][int(rng.integers(len(_SUFFIX[kind])))]}"
        else:
            name = root + _SUFFIX[kind][int(rng.integers(len(_SUFFIX[kind])))]
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def _world(rng: np.random.Generator, n: int) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    taken: set[str] = set()
    ents = {t: _names(rng, t, n, taken) for t in _TYPES}
    tables: dict[str, dict[str, Any]] = {}
    pick = lambda kind: ents[kind][int(rng.integers(n))]  # noqa: E731
    tables["get_country"] = {c: ents["country"][i % n] for i, c in enumerate(ents["city"])}
    tables["get_capital"] = {k: next(c for c, kk in tables["get_country"].items() if kk == k) for k in ents["country"]}
    for tool in ("get_employer", "get_headquarters", "get_founder", "get_mayor"):
        arg, res, _ = _RELATIONS[tool]
        tables[tool] = {e: pick(res) for e in ents[arg]}
    for tool, (arg, _, lo, hi) in _ATTRIBUTES.items():
        tables[tool] = {e: int(rng.integers(lo, hi + 1)) for e in ents[arg]}
    for tool, (arg, _, values) in _DECOYS.items():
        if tool == "get_birth_city":
            tables[tool] = {e: pick("city") for e in ents[arg]}
        elif tool == "get_email":
            tables[tool] = {e: f"{values[int(rng.integers(len(values)))]}@{e.split()[1].lower()}.example" for e in ents[arg]}
        else:
            tables[tool] = {e: values[int(rng.integers(len(values)))] for e in ents[arg]}
    return ents, tables


def _lookup_source(tool: str, arg: str, table: dict[str, Any]) -> str:
    return (
        f"TABLE = {table!r}\n\n\n"
        f"def {tool}({arg}):\n"
        f"    if {arg} not in TABLE:\n"
        f"        raise ValueError(f'unknown {arg} {{{arg}!r}}; known: {{sorted(TABLE)}}')\n"
        f"    return TABLE[{arg}]\n"
    )


_AGGREGATE_SOURCE = '''
def aggregate(operation, values):
    if not values:
        raise ValueError("values must be a non-empty list of numbers")
    if operation == "sum":
        return sum(values)
    if operation == "max":
        return max(values)
    if operation == "min":
        return min(values)
    raise ValueError(f"operation must be 'sum', 'max' or 'min', got {operation!r}")
'''


def _spec(tool: str, arg: str, doc: str) -> dict[str, Any]:
    return {
        "name": tool,
        "description": doc,
        "parameters": {
            "type": "object",
            "properties": {arg: {"type": "string", "description": f"the {arg}'s exact name"}},
            "required": [arg],
            "additionalProperties": False,
        },
    }


_AGGREGATE_SPEC = {
    "name": "aggregate",
    "description": "Combine numbers: their sum, the largest or the smallest.",
    "parameters": {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": ["sum", "max", "min"], "description": "how to combine"},
            "values": {"type": "array", "items": {"type": "number"}, "description": "the numbers"},
        },
        "required": ["operation", "values"],
        "additionalProperties": False,
    },
}


def _chain(rng: np.random.Generator, ents: dict[str, list[str]], tables: dict[str, dict[str, Any]], hops: int):
    """A random chain: ``hops - 1`` relations from a random start, then an attribute. Returns calls, results, phrase."""
    kind = _TYPES[int(rng.integers(len(_TYPES)))]
    x = ents[kind][int(rng.integers(len(ents[kind])))]
    phrase = x
    calls: list[GoldCall] = []
    results: list[Any] = []
    for _ in range(hops - 1):
        options = [t for t, (a, _, _) in _RELATIONS.items() if a == kind]
        tool = options[int(rng.integers(len(options)))]
        arg, kind, template = _RELATIONS[tool]
        calls.append(GoldCall(tool, {arg: x}))
        x = tables[tool][x]
        results.append(x)
        phrase = template.format(x=phrase)
    attr = next(t for t, (a, *_rest) in _ATTRIBUTES.items() if a == kind)
    calls.append(GoldCall(attr, {kind: x}))
    value = tables[attr][x]
    results.append(value)
    return calls, results, _ATTRIBUTES[attr][1].format(x=phrase), value


def generate_task(seed: int, config: SyntheticConfig | None = None) -> ToolTask:
    """The task of ``seed`` under ``config`` (same seed and config, same task, in any process)."""
    config = config or SyntheticConfig()
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([int(seed), *map(int, hashlib.sha256(config.label.encode()).digest()[:4])])
    ents, tables = _world(rng, config.entities)
    chains = [_chain(rng, ents, tables, config.hops) for _ in range(config.branches)]
    steps: list[tuple[GoldCall, ...]] = [tuple(ch[0][t] for ch in chains) for t in range(config.hops)]
    if config.branches == 1:
        question = f"What is {chains[0][2]}?"
        answer = chains[0][3]
    else:
        op = tuple(_OPS)[int(rng.integers(len(_OPS)))]
        values = [ch[3] for ch in chains]
        answer = {"sum": sum, "max": max, "min": min}[op](values)
        listed = "; ".join(f"({i + 1}) {ch[2]}" for i, ch in enumerate(chains))
        question = f"What is {_OPS[op]} of these values: {listed}?"
        steps.append((GoldCall("aggregate", {"operation": op, "values": values}),))
    useful = sorted({c.name for step in steps for c in step} | set(_RELATIONS) | set(_ATTRIBUTES))
    decoy_names = sorted(_DECOYS)
    chosen = [decoy_names[int(i)] for i in rng.permutation(len(decoy_names))[: config.distractors]]
    names = sorted(set(useful) | set(chosen))
    functions: list[dict[str, Any]] = []
    codes: dict[str, str] = {}
    for tool in names:
        if tool == "aggregate":
            functions.append(_AGGREGATE_SPEC)
            codes[tool] = _AGGREGATE_SOURCE
            continue
        arg = (_RELATIONS.get(tool) or _ATTRIBUTES.get(tool) or _DECOYS[tool])[0]
        doc = _RELATION_DOCS.get(tool) or _DECOYS[tool][1]
        functions.append(_spec(tool, arg, doc))
        codes[tool] = _lookup_source(tool, arg, tables[tool])
    order = [int(i) for i in rng.permutation(len(functions))]
    functions = [functions[i] for i in order]
    request = Request(({"role": "user", "content": question},), tuple(steps), (), str(answer))
    return ToolTask(
        task_id=f"synthetic/{config.label}/{int(seed)}",
        source="synthetic",
        category=config.label,
        functions=tuple(functions),
        requests=(request,),
        backend=CodeBackend.from_mapping(codes, label=f"synthetic task {seed}"),
        outcome="answer",
        answer=str(answer),
        answer_metric="em",
        instructions=_INSTRUCTIONS,
        meta={"config": asdict(config), "seed": int(seed)},
    )


def to_record(task: ToolTask) -> dict[str, Any]:
    """An FTRL-style JSON record of a task whose backend is a :class:`CodeBackend` (one request)."""
    if not isinstance(task.backend, CodeBackend):
        raise ConfigError(f"task {task.task_id!r}: only tasks with tool source code can be written as records")
    if len(task.requests) != 1:
        raise ConfigError(f"task {task.task_id!r} has {len(task.requests)} requests; records hold one")
    req = task.requests[0]
    return {
        "id": task.task_id,
        "data_source": f"{task.source}/{task.category}",
        "messages": [{"role": "system", "content": task.instructions}, *map(dict, req.messages)] if task.instructions else list(map(dict, req.messages)),
        "tools": json.dumps([{"type": "function", "function": dict(f)} for f in task.functions]),
        "codes": json.dumps(dict(task.backend.codes)),
        "ground_truth": json.dumps([{"name": c.name, "parameters": dict(c.arguments)} for c in req.gold]),
        "gold_steps": [[c.to_dict() for c in step] for step in req.steps],
        "answer": task.answers[0] if task.answers else None,
    }
