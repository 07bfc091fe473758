"""ALFWorld games authored offline from what the alfworld wheel ships, each verified by a plan.

The wheel carries the PDDL domain (``data/alfred.pddl``), the grammar (``data/alfred.twl2``), the goal
library of the task types (``gen/goal_library.py``), the object and receptacle tables
(``gen/constants.py``) and 120 floor plans (``gen/layouts``: the object types of each room and the
receptacles with their positions), but no games. A game here is:

1. a floor plan valid for the task type (kitchens 1-30, living rooms 201-230, bedrooms 301-330,
   bathrooms 401-430, as ``GOALS_VALID`` says);
2. its receptacles, with the ids of the layout (``Cabinet|+00.68|+00.50|-02.20``; sinks and bathtubs get
   their ``SinkBasin`` / ``BathtubBasin``), plus one of each other static receptacle type the room lists;
3. a target object type and receptacle that fit the task (a heatable object and a microwave in the
   room, for instance), seeded, with the target instances placed away from the target receptacle,
   and up to :data:`DISTRACTORS` other object types of the room, 1-2 instances each, in receptacles that can hold them
   (``canContain`` from ``VAL_RECEPTACLE_OBJECTS``, properties from ``VAL_ACTION_OBJECTS``);
4. the goal from the goal library and its templated description in the grammar;
5. a check: textworld's PDDL engine loads the game, the planner finds a plan within
   :data:`VERIFY_TIMEOUT_S`, and playing the plan wins. A draw that fails is redrawn (up to
   :data:`ATTEMPTS` times).

The files follow the official layout (``game.tw-pddl``: ``{pddl_domain, grammar, pddl_problem, solvable,
walkthrough}``, and a ``traj_data.json`` with ``task_type`` and ``pddl_params``), so the official
loaders and the handcoded expert read them too. Sliced objects and movable receptacles as targets are
left out (the shipped domain has their actions commented out).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.envs.textgames.base import ENGINE_LOCK
from rlvr.envs.textgames.cache import build_once
from rlvr.errors import ConfigError

__all__ = ["TASK_TYPES", "generate", "scene_types", "candidates", "GameSpec", "memoize_engine_parsers"]

TASK_TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
              "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")
"""The six ALFWorld task types, in ALFWorld's order (its task ids 1-6)."""

ATTEMPTS = 20
VERIFY_TIMEOUT_S = 60.0
"""Longest the planner may take to solve one draw before the draw is dropped (it takes 1-5 s typically)."""
DISTRACTORS = 6
"""Other object types placed in a game besides the target (1-2 instances each)."""
GENERATOR_VERSION = 2
_ROOMS = {"Kitchen": range(1, 31), "LivingRoom": range(201, 231), "Bedroom": range(301, 331), "Bathroom": range(401, 431)}
_BASINS = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}
_LAMPS = ("DeskLamp", "FloorLamp")
_LAMP_HOLDERS = ("Desk", "SideTable", "Dresser", "DiningTable", "CoffeeTable", "Shelf", "TVStand")
_NEEDS = {"pick_clean_then_place_in_recep": ("Cleanable", "SinkBasin"),
          "pick_heat_then_place_in_recep": ("Heatable", "Microwave"),
          "pick_cool_then_place_in_recep": ("Coolable", "Fridge")}


def _alfworld() -> tuple[Path, Any, Any]:
    try:
        import alfworld
        import alfworld.gen.constants as constants
        import alfworld.gen.goal_library as goals
    except ImportError as e:
        raise ConfigError("rlvr/ALFWorld-v0 needs alfworld: pip install 'rlvr-gym[textgames]' "
                          "(or alfworld==0.4.2 and its fast-downward-textworld)") from e
    return Path(alfworld.__file__).parent, constants, goals


def _mangle(name: str) -> str:
    """An ALFRED object id as a PDDL name (``Cabinet|+00.68`` -> ``Cabinet_bar__plus_00_dot_68``)."""
    for a, b in (("|", "_bar_"), ("-", "_minus_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        name = name.replace(a, b)
    return name


@dataclass(frozen=True)
class Scene:
    """One floor plan: receptacle ids by type and the pickable object types of the room."""

    floor_plan: int
    room: str
    receptacles: dict[str, list[str]]
    objects: list[str]


def _scene(root: Path, constants: Any, plan: int) -> Scene:
    base = root / "gen" / "layouts" / f"FloorPlan{plan}"
    placed = json.loads(Path(f"{base}-openable.json").read_text())
    listed = json.loads(Path(f"{base}-objects.json").read_text())
    holds = constants.VAL_RECEPTACLE_OBJECTS
    receps: dict[str, list[str]] = {}
    for rid in sorted(placed):
        kind = rid.split("|")[0]
        if kind in _BASINS:
            rid = rid if rid.endswith(_BASINS[kind]) else f"{rid}|{_BASINS[kind]}"
            kind = _BASINS[kind]
        if kind in holds and kind not in constants.MOVABLE_RECEPTACLES:
            receps.setdefault(kind, []).append(rid)
    for kind in sorted(set(listed)):
        if kind in holds and kind not in receps and kind not in constants.MOVABLE_RECEPTACLES:
            receps[kind] = [f"{kind}|+00.00|+00.00|+00.00"]
    pickable = set().union(*holds.values())
    objects = sorted(o for o in set(listed) if o in pickable and not o.endswith("Sliced") and o not in receps)
    objects += [lamp for lamp in _LAMPS if lamp in listed]
    room = next(name for name, plans in _ROOMS.items() if plan in plans)
    return Scene(plan, room, receps, objects)


@functools.lru_cache(maxsize=1)
def scene_types() -> dict[int, Scene]:
    """Every floor plan of the wheel, parsed (read once: the wheel's files do not change)."""
    root, constants, _ = _alfworld()
    plans = sorted(int(p.name[len("FloorPlan"):].split("-")[0]) for p in (root / "gen" / "layouts").glob("FloorPlan*-openable.json"))
    return {p: _scene(root, constants, p) for p in plans}


def candidates(task_type: str, scene: Scene) -> list[tuple[str, str, str]]:
    """Every ``(object, receptacle, lamp)`` target of ``task_type`` in ``scene`` (lamp ``""`` unless looked
    at in light): what the generator draws from."""
    _, constants, _ = _alfworld()
    if scene.room not in constants.GOALS_VALID[task_type]:
        return []
    holds, actions = constants.VAL_RECEPTACLE_OBJECTS, constants.VAL_ACTION_OBJECTS
    movable = [o for o in scene.objects if o not in _LAMPS]
    if task_type == "look_at_obj_in_light":
        lamps = [lamp for lamp in _LAMPS if lamp in scene.objects]
        if not lamps or not any(h in scene.receptacles for h in _LAMP_HOLDERS):
            return []
        return [(o, "", lamp) for lamp in lamps for o in movable if any(o in holds[r] for r in scene.receptacles)]
    need, tool = _NEEDS.get(task_type, (None, None))
    if tool is not None and tool not in scene.receptacles:
        return []
    out = []
    for o in movable:
        if need is not None and o not in actions[need]:
            continue
        for r in scene.receptacles:
            others = [s for s in scene.receptacles if s != r and o in holds[s]]
            if o in holds[r] and r != tool and others:
                out.append((o, r, ""))
    return out


@dataclass(frozen=True)
class GameSpec:
    """A drawn game before it is verified: the problem text and what it asks."""

    task_type: str
    floor_plan: int
    object_target: str
    parent_target: str
    toggle_target: str
    problem: str
    goal_text: str


def _draw(task_type: str, rng: np.random.Generator, scenes: dict[int, Scene]) -> GameSpec:
    _, constants, goals = _alfworld()
    holds, actions = constants.VAL_RECEPTACLE_OBJECTS, constants.VAL_ACTION_OBJECTS
    options = [(p, c) for p, s in scenes.items() for c in candidates(task_type, s)]
    if not options:
        raise ConfigError(f"no floor plan of the alfworld wheel fits {task_type}")
    plan, (obj, recep, lamp) = options[int(rng.integers(len(options)))]
    scene = scenes[plan]
    others = [o for o in scene.objects if o not in (obj, lamp) and o not in _LAMPS]
    rng.shuffle(others)
    count = {obj: 2 if task_type == "pick_two_obj_and_place" else int(rng.integers(1, 3))}
    count.update({o: int(rng.integers(1, 3)) for o in others[:DISTRACTORS]})
    objects: list[tuple[str, str, str]] = []  # (id, type, receptacle id)
    for otype, n in count.items():
        spots = [rid for r, ids in scene.receptacles.items() if otype in holds[r] and not (otype == obj and r == recep)
                 for rid in ids]
        if not spots:
            continue
        for k in range(n):
            objects.append((f"{otype}|{k + 1:+06.2f}|{int(rng.integers(100)):+06.2f}", otype, spots[int(rng.integers(len(spots)))]))
    if lamp:
        holders = [rid for r in _LAMP_HOLDERS for rid in scene.receptacles.get(r, [])]
        objects.append((f"{lamp}|+01.00|+00.00", lamp, holders[int(rng.integers(len(holders)))]))
    rtypes = sorted(set(scene.receptacles) | {"SinkBasin", "Microwave", "Fridge"})
    otypes = sorted({t for _, t, _ in objects} | {"Knife", "ButterKnife", obj})
    lines = ["(define (problem plan_rlvr)", "(:domain alfred)", "(:objects", "agent1 - agent"]
    lines += [f"{t}Type - otype" for t in otypes] + [f"{t}Type - rtype" for t in rtypes]
    lines += [f"{_mangle(i)} - object" for i, _, _ in objects]
    recep_ids = [(rid, r) for r, ids in scene.receptacles.items() for rid in ids]
    lines += [f"{_mangle(rid)} - receptacle" for rid, _ in recep_ids]
    lines += ["loc_bar_start - location"] + [f"loc_bar_{k} - location" for k in range(len(recep_ids))] + [")"]
    init = ["(= (total-cost) 0)", "(atLocation agent1 loc_bar_start)"]
    where = {}
    for k, (rid, r) in enumerate(recep_ids):
        m = _mangle(rid)
        where[rid] = f"loc_bar_{k}"
        init += [f"(receptacleAtLocation {m} loc_bar_{k})", f"(receptacleType {m} {r}Type)"]
        if r in constants.OPENABLE_CLASS_SET:
            init.append(f"(openable {m})")
    for oid, otype, rid in objects:
        m = _mangle(oid)
        init += [f"(objectType {m} {otype}Type)", f"(inReceptacle {m} {_mangle(rid)})", f"(objectAtLocation {m} {where[rid]})"]
        if otype in _LAMPS:
            init.append(f"(toggleable {m})")
            continue
        init.append(f"(pickupable {m})")
        for prop, word in (("Heatable", "heatable"), ("Coolable", "coolable"), ("Cleanable", "cleanable"), ("Sliceable", "sliceable")):
            if otype in actions[prop]:
                init.append(f"({word} {m})")
    init += [f"(canContain {r}Type {o}Type)" for r in sorted(scene.receptacles) for o in otypes if o in holds.get(r, ())]
    goal = goals.gdict[task_type]["pddl"].format(obj=obj, recep=recep, toggle=lamp).replace("#", "-")
    problem = "\n".join(lines + ["(:init"] + init + [")"]) + "\n" + goal.strip() + "\n"
    template = goals.gdict[task_type]["templates"][int(rng.integers(len(goals.gdict[task_type]["templates"])))]
    text = template.format(obj=obj.lower(), recep=recep.lower(), toggle=lamp.lower(), mrecep="")
    return GameSpec(task_type, plan, obj, recep, lamp, problem, text)


def memoize_engine_parsers() -> None:
    """Parse each grammar template and fact query of textworld's PDDL engine once per process.

    The engine re-parses (TatSu) the same few hundred templates for every admissible command of every
    step, most of a step's cost in a furnished room, and translates the game's PDDL to SAS twice at
    every reset. All three are pure functions of their text: the template parse tree is memoized and
    turned into fresh symbols for each caller (the engine sets contexts on the symbols it gets), the query parse and
    the translation (the 32 latest games) are memoized as they are (their results are only read). The
    translator also overwrites ``sys.argv``; the wrapper puts it back. Applied once, when the first
    ALFWorld env is built or game generated; importing rlvr changes nothing in textworld.
    """
    import fast_downward
    import textworld.envs.pddl.textgen as textgen
    from textworld.logic import Rule

    if getattr(textgen._parse_and_convert, "_rlvr_memo", False):
        return
    @functools.lru_cache(maxsize=8192)
    def parse_template(text: str, rule_name: str) -> Any:
        return textgen._PARSER.parse(text, rule_name=rule_name)

    def template(text: str, rule_name: str, trace: bool = False) -> Any:
        return textgen._Converter().walk(parse_template(text, rule_name))  # fresh symbols from the kept parse

    template._rlvr_memo = True  # type: ignore[attr-defined]
    textgen._parse_and_convert = template
    translate = functools.lru_cache(maxsize=32)(fast_downward.pddl2sas)

    def pddl2sas(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        argv = sys.argv  # the translator overwrites sys.argv: give the process its own back
        try:
            return translate(domain, problem, bool(verbose), bool(optimize))
        finally:
            sys.argv = argv

    fast_downward.pddl2sas = pddl2sas
    Rule.parse_conjunctive_query = staticmethod(functools.lru_cache(maxsize=8192)(Rule.parse_conjunctive_query))


def _verify(game: dict[str, Any]) -> list[str]:
    """The plan that wins ``game`` (played to the end in textworld's PDDL engine), or ``[]``."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    memoize_engine_parsers()
    env = AlfredDemangler(PddlEnv(textworld.EnvInfos(won=True, policy_commands=True)))
    try:
        env.load(game)
        state = env.reset()
        plan = list(state["policy_commands"] or [])
        for command in plan:
            state, _, done = env.step(command)
        return plan if plan and state["won"] else []
    finally:
        env.close()


def _verify_in_child(game: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(_verify(game))
    except Exception:  # an engine failure is an unverified game, as a timeout is
        conn.send([])
    finally:
        conn.close()


def _verify_bounded(game: dict[str, Any], timeout_s: float) -> list[str]:
    """:func:`_verify` in a forked child killed after ``timeout_s``: fast-downward's search has no time
    limit, and a few draws (two objects in a crowded room) keep it busy for many minutes. A draw that
    times out counts as unsolvable and is redrawn. Without ``fork`` the check runs in-process, unbounded."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return _verify(game)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_verify_in_child, args=(game, send), daemon=True)
    child.start()
    send.close()
    try:
        return list(receive.recv()) if receive.poll(timeout_s) else []
    except EOFError:  # the child died without answering
        return []
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def recipe(task_type: str, seed: int) -> dict[str, Any]:
    """What a generated ALFWorld game is made from (its cache key)."""
    from importlib.metadata import version

    return {"generator": "rlvr-alfworld", "rlvr": GENERATOR_VERSION, "alfworld": version("alfworld"),
            "task_type": task_type, "seed": int(seed)}


def generate(task_type: str, seed: int) -> Path:
    """The ``game.tw-pddl`` of ``(task_type, seed)``: drawn, verified and cached on first use (well under a
    second each), read from the cache afterwards."""
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown ALFWorld task type {task_type!r}; choose from {', '.join(TASK_TYPES)}")
    root, _, _ = _alfworld()

    def build(out: Path) -> None:
        domain = (root / "data" / "alfred.pddl").read_text()
        grammar = (root / "data" / "alfred.twl2").read_text()
        rng = np.random.default_rng([int(seed), TASK_TYPES.index(task_type)])
        scenes = scene_types()
        for draw in range(1, ATTEMPTS + 1):
            spec = _draw(task_type, rng, scenes)
            game = {"pddl_domain": domain, "grammar": grammar.replace("UNKNOWN GOAL", spec.goal_text),
                    "pddl_problem": spec.problem, "solvable": True, "walkthrough": []}
            with ENGINE_LOCK:  # textworld's parsers and generators are not thread-safe
                plan = _verify_bounded(game, VERIFY_TIMEOUT_S)
            if plan:
                game["walkthrough"] = plan
                (out / "game.tw-pddl").write_text(json.dumps(game))
                params = {"object_target": spec.object_target, "parent_target": spec.parent_target,
                          "toggle_target": spec.toggle_target, "mrecep_target": "", "object_sliced": False}
                traj = {"task_type": task_type, "pddl_params": params, "scene": {"floor_plan": f"FloorPlan{spec.floor_plan}"},
                        "turk_annotations": {"anns": [{"task_desc": spec.goal_text}]}, "rlvr_draws": draw}
                (out / "traj_data.json").write_text(json.dumps(traj, indent=1))
                return
        raise ConfigError(f"no solvable {task_type} game in {ATTEMPTS} draws for seed {seed}")

    return build_once("alfworld", recipe(task_type, seed), build) / "game.tw-pddl"
