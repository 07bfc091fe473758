"""CaRR: citation-aware rubric rewards, and the C-GRPO combination with the outcome reward.

A multi-hop question is decomposed into single-hop **rubrics**, statements with entity placeholders:
``<E0>`` is the answer entity, ``<E1>, <E2>, ...`` are hidden intermediate entities (visible
entities are written out). A rubric scores only when all three hold:

1. **identified**: every placeholder it mentions is named in the final answer;
2. **supported**: a document the answer cites (``[doc_id]``) states it, judged only on what the agent
   itself saw of that document this episode (search snippets, opened pages, find results);
3. **connected**: it is reachable from ``<E0>`` by breadth-first search over the bipartite graph of
   entities and identified, supported rubrics.

``R_rubric = #connected / #rubrics`` (the denominator counts every rubric, identified or not).

Two ways to check 1 and 2:

* exact (:func:`rubric_reward_exact`): entity names are matched after answer normalisation, and a
  rubric is supported when a cited document's seen character spans cover one of its gold
  :class:`Evidence` spans. Used for synthetic tasks, where the gold evidence is known.
* judge (:func:`rubric_reward_judge`): any agent (``act(messages) -> str``, for example an
  OpenAI-compatible server) extracts the entities and decides support from the cited context,
  with the prompts :data:`IDENTIFY_PROMPT` and :data:`SUPPORT_PROMPT` shipped here. Malformed judge
  replies are retried. A judge that still fails (it raises, or its replies stay unparsable) says
  nothing about the answer, so the rubric is *not applicable*: ``RubricResult.score`` is ``None``,
  ``RubricResult.error`` holds the cause, and C-GRPO falls back to the outcome alone, as for a task
  without rubrics. (The reference implementation scores 0.0 there, which gives a correct answer 0.7.)

C-GRPO (:func:`cgrpo_reward`, :func:`cgrpo_group`): rubric credit only tops up correct answers.

* ``form="code"`` (**default**; what the released training scripts compute):
  ``R = R_o`` if ``R_o == 0`` else ``(1 - a) R_o + a R_r``, with the raw ``R_r`` and ``a = 0.3``.
* ``form="paper"``: ``R = (1 - a) R_o + a R_o R̂_r`` with ``R̂_r = R_r / max_group R_r`` (left as is
  when the group maximum is 0). Needs the whole rollout group, so only :func:`cgrpo_group` offers it.

A rubric score of ``None`` (not applicable) gives ``R = R_o`` in both forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr.errors import ConfigError, RLVRError
from rlvr.rewards.outcome import normalize_answer

__all__ = [
    "Evidence",
    "Rubric",
    "RubricResult",
    "extract_citations",
    "identify_entities_exact",
    "spans_cover",
    "support_exact",
    "connected_rubrics",
    "rubric_reward_exact",
    "CaRRJudge",
    "rubric_reward_judge",
    "parse_json_object",
    "cgrpo_reward",
    "cgrpo_group",
    "CGRPOReward",
    "IDENTIFY_PROMPT",
    "SUPPORT_PROMPT",
]

PLACEHOLDER = re.compile(r"<(E\d+)>")
ROOT = "E0"
Spans = Mapping[str, Sequence[tuple[int, int]]]
CGRPOForm = Literal["code", "paper"]


class JudgeReplyError(RLVRError, ValueError):
    """A rubric judge kept replying with text that could not be parsed (the rubric is then not applicable)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a fact is stated: characters ``[start, end)`` of document ``doc_id``."""

    doc_id: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Rubric:
    """A single-hop statement with placeholders, e.g. ``"<E1> founded <E0>."``, and its gold evidence."""

    text: str
    evidence: tuple[Evidence, ...] = ()

    @property
    def entities(self) -> tuple[str, ...]:
        """The placeholders it mentions, in order of first appearance (``("E1", "E0")``)."""
        return tuple(dict.fromkeys(PLACEHOLDER.findall(self.text)))

    def fill(self, values: Mapping[str, str | None]) -> str:
        """The statement with each placeholder replaced by its value (unknown ones left as is)."""
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or m.group(0), self.text)


@dataclass(slots=True)
class RubricResult:
    """Per-rubric flags and the score ``#connected / #rubrics``.

    ``score`` is ``None`` when the rubric could not be judged (the judge failed); ``error`` then says why.
    ``error`` also explains a legitimate 0.0 (no citations, nothing cited was seen).
    """

    score: float | None
    identified: list[bool] = field(default_factory=list)
    supported: list[bool] = field(default_factory=list)
    connected: list[bool] = field(default_factory=list)
    entities: dict[str, str | None] = field(default_factory=dict)
    cited: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def applicable(self) -> bool:
        """False when the rubric could not be judged (``score is None``)."""
        return self.score is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "identified": self.identified, "supported": self.supported,
            "connected": self.connected, "entities": self.entities, "cited": self.cited, "error": self.error,
        }


# --------------------------------------------------------------------------- citations and entities
_BRACKET = re.compile(r"\[([^\[\]\n]{1,200})\]")
_SPLIT = re.compile(r"[,;]|\s+and\s+")


def extract_citations(text: str, known: Container[str] | None = None) -> list[str]:
    """Document ids cited as ``[doc_id]`` (also ``[a, b]`` / ``[a; b]``), deduplicated in order.

    Markdown links ``[n](url)`` cite their URL. With ``known``, only ids in it are kept, so prose in
    brackets is never mistaken for a citation.
    """
    out: dict[str, None] = {}
    for m in _BRACKET.finditer(text):
        inner = m.group(1)
        after = text[m.end(): m.end() + 1]
        if after == "(":
            close = text.find(")", m.end())
            if close != -1:
                url = text[m.end() + 1: close].strip()
                if url and (known is None or url in known):
                    out.setdefault(url, None)
                continue
        for part in _SPLIT.split(inner):
            part = part.strip().strip("'\"`")
            if part.lower().startswith("doc_id:"):
                part = part[len("doc_id:"):].strip()
            if part and (known is None or part in known):
                out.setdefault(part, None)
    return list(out)


def _contains_phrase(haystack_tokens: list[str], needle: str) -> bool:
    n = normalize_answer(needle).split()
    if not n:
        return False
    L = len(n)
    return any(haystack_tokens[i:i + L] == n for i in range(len(haystack_tokens) - L + 1))


def identify_entities_exact(answer: str, entities: Mapping[str, Sequence[str]]) -> dict[str, str | None]:
    """For each placeholder, the first accepted name that the answer mentions (whole words after
    normalisation), else ``None``."""
    tokens = normalize_answer(answer).split()
    out: dict[str, str | None] = {}
    for ph, names in entities.items():
        out[ph] = next((n for n in names if _contains_phrase(tokens, n)), None)
    return out


def spans_cover(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    """True when the union of half-open ``spans`` covers ``[start, end)``."""
    pos = start
    for a, b in sorted(spans):
        if a > pos:
            break
        pos = max(pos, b)
        if pos >= end:
            return True
    return pos >= end


def support_exact(rubrics: Sequence[Rubric], cited: Iterable[str], seen: Spans) -> list[bool]:
    """A rubric is supported when some cited document's seen spans cover one of its evidence spans."""
    cited = set(cited)
    return [
        any(ev.doc_id in cited and spans_cover(seen.get(ev.doc_id, ()), ev.start, ev.end) for ev in r.evidence)
        for r in rubrics
    ]


def connected_rubrics(rubrics: Sequence[Rubric], usable: Sequence[bool], root: str = ROOT) -> list[bool]:
    """Breadth-first search from ``root`` over usable rubrics: a usable rubric that mentions a reached
    entity is reached, and so are all its entities."""
    if len(usable) != len(rubrics):
        raise ConfigError(f"got {len(usable)} flags for {len(rubrics)} rubrics")
    reached_entities = {root}
    connected = [False] * len(rubrics)
    frontier = [root]
    while frontier:
        ent = frontier.pop(0)
        for i, r in enumerate(rubrics):
            if connected[i] or not usable[i] or ent not in r.entities:
                continue
            connected[i] = True
            for e in r.entities:
                if e not in reached_entities:
                    reached_entities.add(e)
                    frontier.append(e)
    return connected


def _finish(rubrics: Sequence[Rubric], identified: list[bool], supported: list[bool], **kw: Any) -> RubricResult:
    usable = [i and s for i, s in zip(identified, supported)]
    connected = connected_rubrics(rubrics, usable)
    score = sum(connected) / len(rubrics) if rubrics else 0.0
    return RubricResult(score, identified, supported, connected, **kw)


def rubric_reward_exact(
    answer: str,
    rubrics: Sequence[Rubric],
    entities: Mapping[str, Sequence[str]],
    seen: Spans,
    known_ids: Container[str] | None = None,
) -> RubricResult:
    """CaRR with exact checks: names matched in the answer, support from seen spans of cited documents.

    Args:
        answer: the final answer text (explanation with ``[doc_id]`` citations).
        rubrics: the task's rubrics, each with gold evidence spans.
        entities: placeholder -> accepted names.
        seen: doc id -> character spans the agent was shown this episode.
        known_ids: restrict citations to these ids.
    """
    if not rubrics:
        raise ConfigError("rubric_reward_exact needs at least one rubric")
    cited = extract_citations(answer, known_ids)
    values = identify_entities_exact(answer, entities)
    identified = [all(values.get(e) for e in r.entities) for r in rubrics]
    supported = support_exact(rubrics, cited, seen)
    return _finish(rubrics, identified, supported, entities=values, cited=cited)


# --------------------------------------------------------------------------- judge
IDENTIFY_PROMPT = """You extract entities from an answer.

A multi-hop question was decomposed into statements with placeholders. <E0> stands for the final answer; <E1>, <E2>, ... stand for intermediate entities.

Question:
{question}

Statements:
{rubrics}

Answer to read:
{answer}

For each placeholder ({placeholders}), give the entity that the answer explicitly states for it, or null when the answer does not state one. Use only the answer, not your own knowledge.
Reply with a single JSON object mapping every placeholder to a string or null, and nothing else, e.g. {example}"""

SUPPORT_PROMPT = """You check statements against evidence.

Evidence (documents the answer cites, as the author saw them):
{context}

Statements:
{statements}

For each statement S1..S{n}, decide whether the evidence fully supports it. Partial, implied or outside knowledge does not count.
Reply with a single JSON object mapping each statement id to true or false, and nothing else, e.g. {example}"""


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (code fences allowed), or ``None``."""
    decoder = json.JSONDecoder()
    pos = 0
    for _ in range(64):
        i = text.find("{", pos)
        if i < 0:
            return None
        try:
            obj, _end = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError, ValueError):
            pos = i + 1
            continue
        if isinstance(obj, dict):
            return obj
        pos = i + 1
    return None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "yes", "supported", "fully supported"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("false", "no", "unsupported", "not supported"):
        return False
    return None


class CaRRJudge:
    """Uses any agent (``act(messages) -> str``) to identify entities and check support.

    Args:
        agent: the judge model, e.g. an OpenAI-compatible agent.
        retries: attempts per request before giving up (the reference uses 5).
        max_context_chars: cap on the evidence text sent to the judge.
    """

    def __init__(self, agent: Any, retries: int = 5, max_context_chars: int = 60_000) -> None:
        if not hasattr(agent, "act"):
            raise ConfigError(f"the judge must be an agent with act(messages) -> str, got {type(agent).__name__}")
        if retries < 1:
            raise ConfigError(f"retries must be >= 1, got {retries}")
        self.agent, self.retries, self.max_context_chars = agent, retries, max_context_chars

    def _ask(self, prompt: str, check) -> Any:
        last = "no reply"
        for _ in range(self.retries):
            reply = self.agent.act([{"role": "user", "content": prompt}])
            text = reply if isinstance(reply, str) else getattr(reply, "text", str(reply))
            obj = parse_json_object(text)
            if obj is None:
                last = f"no JSON object in the reply {text[:120]!r}"
                continue
            got, problem = check(obj)
            if problem is None:
                return got
            last = problem
        raise JudgeReplyError(f"the judge gave no usable reply after {self.retries} attempts (last: {last})")

    def identify(self, question: str, answer: str, rubrics: Sequence[Rubric]) -> dict[str, str | None]:
        placeholders = sorted({e for r in rubrics for e in r.entities}, key=lambda e: int(e[1:]))
        prompt = IDENTIFY_PROMPT.format(
            question=question, answer=answer, placeholders=", ".join(placeholders),
            rubrics="\n".join(f"- {r.text}" for r in rubrics),
            example=json.dumps({p: ("..." if i == 0 else None) for i, p in enumerate(placeholders)}),
        )

        def check(obj: dict[str, Any]):
            if set(obj) != set(placeholders):
                return None, f"expected keys {placeholders}, got {sorted(obj)}"
            vals = {k: (str(v).strip() if v not in (None, "", "null") else None) for k, v in obj.items()}
            return vals, None

        return self._ask(prompt, check)

    def support(self, statements: Sequence[str], context: str) -> list[bool]:
        ids = [f"S{i + 1}" for i in range(len(statements))]
        prompt = SUPPORT_PROMPT.format(
            context=context[: self.max_context_chars], n=len(statements),
            statements="\n".join(f"{i}: {s}" for i, s in zip(ids, statements)),
            example=json.dumps({i: True for i in ids[:2]}),
        )

        def check(obj: dict[str, Any]):
            vals = [_as_bool(obj.get(i)) for i in ids]
            if any(v is None for v in vals):
                return None, f"expected true/false for {ids}, got {json.dumps(obj)[:120]}"
            return vals, None

        return self._ask(prompt, check)


def rubric_reward_judge(
    judge: CaRRJudge,
    question: str,
    answer: str,
    rubrics: Sequence[Rubric],
    context_by_doc: Mapping[str, str],
    max_cited_docs: int = 20,
) -> RubricResult:
    """CaRR with a judge. ``context_by_doc``: doc id -> the text the agent saw of it this episode.

    No citation, or no cited document the agent saw, gives 0.0 without calling the judge. A judge
    that raises or whose replies stay unusable after its retries gives ``score=None`` (not
    applicable) with the cause in ``error``: a failed judge is no evidence against the answer.
    """
    if not rubrics:
        raise ConfigError("rubric_reward_judge needs at least one rubric")
    cited = extract_citations(answer)
    seen_cited = [d for d in cited if context_by_doc.get(d)][:max_cited_docs]
    n = len(rubrics)
    if not seen_cited:
        reason = "no citations" if not cited else "no cited document was seen this episode"
        return RubricResult(0.0, [False] * n, [False] * n, [False] * n, cited=cited, error=reason)
    context = "\n\n".join(f"[{d}]\n{context_by_doc[d]}" for d in seen_cited)
    try:
        values = judge.identify(question, answer, rubrics)
        identified = [all(values.get(e) for e in r.entities) for r in rubrics]
        todo = [i for i, ok in enumerate(identified) if ok]
        supported = [False] * n
        if todo:
            flags = judge.support([rubrics[i].fill(values) for i in todo], context)
            for i, f in zip(todo, flags):
                supported[i] = f
    except JudgeReplyError as e:
        return RubricResult(None, [False] * n, [False] * n, [False] * n, cited=cited, error=str(e))
    except Exception as e:  # noqa: BLE001 - the judge's failure is recorded with its cause, never scored 0.0
        why = f"the judge failed: {type(e).__name__}: {e}"
        return RubricResult(None, [False] * n, [False] * n, [False] * n, cited=cited, error=why)
    return _finish(rubrics, identified, supported, entities=values, cited=cited)


# --------------------------------------------------------------------------- C-GRPO
def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"the rubric weight alpha must lie in [0, 1], got {alpha}")


def cgrpo_reward(outcome: float, rubric: float | None, alpha: float = 0.3) -> float:
    """Per-rollout C-GRPO (the default ``code`` form): ``R_o`` if ``R_o == 0`` else ``(1-a) R_o + a R_r``.

    ``rubric=None`` (not applicable: no rubric, or the judge failed) gives ``R_o``.
    """
    _check_alpha(alpha)
    if rubric is None or outcome == 0:
        return float(outcome)
    return (1.0 - alpha) * outcome + alpha * rubric


def cgrpo_group(
    outcomes: Sequence[float], rubrics: Sequence[float | None], alpha: float = 0.3, form: CGRPOForm = "code"
) -> list[float]:
    """C-GRPO rewards of one rollout group (see the module docstring for the two forms).

    A rubric of ``None`` (not applicable) gives that rollout ``R_o`` and is left out of the group maximum.
    """
    _check_alpha(alpha)
    if len(outcomes) != len(rubrics):
        raise ConfigError(f"got {len(outcomes)} outcomes and {len(rubrics)} rubric rewards; pass one of each per rollout")
    if form == "code":
        return [cgrpo_reward(o, r, alpha) for o, r in zip(outcomes, rubrics)]
    if form == "paper":
        top = max((r for r in rubrics if r is not None), default=0.0)
        scaled = [None if r is None else (r / top if top > 0 else r) for r in rubrics]
        return [float(o) if r is None else (1.0 - alpha) * o + alpha * o * r for o, r in zip(outcomes, scaled)]
    raise ConfigError(f"unknown C-GRPO form {form!r}; expected 'code' (default) or 'paper'")


@dataclass(frozen=True, slots=True)
class CGRPOReward:
    """C-GRPO over a group of trajectories, reading the final turn's reward components.

    Args:
        alpha: rubric weight.
        form: ``"code"`` (default) or ``"paper"``.
        outcome_key, rubric_key: component names holding ``R_o`` and ``R_r`` (DeepSearch: ``em``, ``rubric``);
        a trajectory whose last turn has no ``rubric_key`` (no rubric, or the judge failed) gets ``R_o``.
    """

    alpha: float = 0.3
    form: CGRPOForm = "code"
    outcome_key: str = "em"
    rubric_key: str = "rubric"

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)
        if self.form not in ("code", "paper"):
            raise ConfigError(f"unknown C-GRPO form {self.form!r}; expected 'code' or 'paper'")

    def __call__(self, group: Sequence[Any]) -> list[float]:
        outs, rubs = [], []
        for traj in group:
            last = traj.turns[-1].reward_components if traj.turns else {}
            outs.append(float(last.get(self.outcome_key, 0.0)))
            rub = last.get(self.rubric_key)
            rubs.append(None if rub is None else float(rub))
        return cgrpo_group(outs, rubs, self.alpha, self.form)
