"""rlvr/ALFWorld-v0: the six ALFWorld household task types in alfworld's TextWorld-PDDL engine.

Commands are ALFWorld's current set (``go to X``, ``open X``, ``take X from Y``, ``move X to Y``,
``heat/cool/clean X with Y``, ``use X``, ``examine X``, ``look``, ``inventory``). Games:

* generated (default): ``pool_size`` games authored offline from the floor plans, goal library and
  tables shipped in the alfworld wheel, each verified solvable by a plan (:mod:`rlvr.envs.textgames.alfgen`),
  cycling over ``task_types``; game ``i`` is type ``task_types[i % len(task_types)]`` with seed
  ``pool_seed + i // len(task_types)``;
* ``data_dir=``: every solvable ``game.tw-pddl`` under a folder, searched recursively (the official
  layout is ``json_2.1.1/{train,valid_seen,valid_unseen}/<task>/<trial>/game.tw-pddl``; ``"$ALFWORLD_DATA"``
  is expanded);
* ``games=``: a list of ``game.tw-pddl`` files.

Reward components: ``win``, ``format`` and ``invalid`` (the engine answers ``Nothing happens.`` to any
command that is not one of its actions) of :mod:`rlvr.envs.textgames.base`. Oracle: the planner's
plan from the current state (textworld's ``policy_commands``, computed on demand), with alfworld's
handcoded expert as the fallback when the planner has none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from rlvr.envs.textgames import alfgen
from rlvr.envs.textgames.base import ACTION_FORMAT, ENGINE_LOCK, GameState, TextGameEnv
from rlvr.envs.textgames.cache import recipe_key
from rlvr.errors import ConfigError, NoOracleError
from rlvr.registry import env_info

__all__ = ["ALFWorldEnv", "load_game_file", "find_games"]

GLOSSARY = """  look: look around
  inventory: what you carry
  go to (receptacle)
  open (receptacle) / close (receptacle)
  take (object) from (receptacle)
  move (object) to (receptacle): put an object in or on a receptacle
  examine (object or receptacle)
  use (object): switch a lamp on or off
  heat (object) with (receptacle) / cool (object) with (receptacle) / clean (object) with (receptacle)"""


def _task_type_of(path: Path) -> str | None:
    traj = path.parent / "traj_data.json"
    try:
        return str(json.loads(traj.read_text())["task_type"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for part in reversed(path.parts):
        head = part.split("-")[0]
        if head in alfgen.TASK_TYPES:
            return head
    return None


def _goal_from_traj(path: Path) -> str | None:
    """The templated goal of an official game whose grammar still says ``UNKNOWN GOAL``."""
    try:
        traj = json.loads((path.parent / "traj_data.json").read_text())
        import alfworld.gen.goal_library as goals

        params, kind = traj["pddl_params"], traj["task_type"]
        template = goals.gdict[kind]["templates"][0]
        return template.format(obj=params["object_target"].lower(), recep=params["parent_target"].lower(),
                               toggle=params.get("toggle_target", "").lower(), mrecep=params.get("mrecep_target", "").lower())
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        return None


def load_game_file(path: Path) -> dict[str, Any]:
    """A ``game.tw-pddl`` file as the engine takes it, or a :class:`ConfigError` naming what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read ALFWorld game file {path}: {e}") from e
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); a game.tw-pddl file holds "
                          "{pddl_domain, grammar, pddl_problem, ...}") from e
    missing = [k for k in ("pddl_domain", "grammar", "pddl_problem") if not isinstance(data, dict) or not isinstance(data.get(k), str)]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}: not an ALFWorld game.tw-pddl file")
    if "UNKNOWN GOAL" in data["grammar"]:
        goal = _goal_from_traj(Path(path))
        if goal is not None:
            data["grammar"] = data["grammar"].replace("UNKNOWN GOAL", goal)
    return data


def find_games(data_dir: str | os.PathLike, task_types: Sequence[str]) -> list[Path]:
    """Every solvable ``game.tw-pddl`` of ``task_types`` under ``data_dir`` (recursively, sorted)."""
    root = Path(os.path.expandvars(os.fspath(data_dir))).expanduser()
    if not root.is_dir():
        raise ConfigError(f"ALFWorld data_dir {root} is not a folder; point it at the official games "
                          "(json_2.1.1/... from alfworld-download) or leave it unset to play generated games")
    found, skipped = [], {"unsolvable": 0, "of another task type": 0, "sliced or movable": 0}
    for path in sorted(root.rglob("game.tw-pddl")):
        if "movable" in str(path.parent) or "Sliced" in str(path.parent):
            skipped["sliced or movable"] += 1
            continue
        if _task_type_of(path) not in task_types:
            skipped["of another task type"] += 1
            continue
        if not load_game_file(path).get("solvable", False):
            skipped["unsolvable"] += 1
            continue
        found.append(path)
    if not found:
        why = ", ".join(f"{n} {k}" for k, n in skipped.items() if n) or "no game.tw-pddl file at all"
        raise ConfigError(f"0 ALFWorld games under {root} ({why}); the official files come from `alfworld-download` "
                          "(json_2.1.1/{train,valid_seen,valid_unseen}/<task>/<trial>/game.tw-pddl)")
    return found


class ALFWorldEnv(TextGameEnv):
    """ALFWorld household tasks, one command per turn (module docstring).

    Args:
        task_types: the task types to play (default: all six of :data:`~rlvr.envs.textgames.alfgen.TASK_TYPES`).
        pool_size: games in the generated pool.
        pool_seed: the first seed of the generated pool.
        data_dir: a folder of ALFWorld game files (searched recursively) instead of the generated pool.
        games: a list of ``game.tw-pddl`` files instead of the generated pool.
        list_admissible: end each observation with ``Admissible commands: [...]`` (sorted).
        invalid_command_penalty: magnitude of the ``invalid`` component (a command the game did not understand).
        max_command_chars: longer commands are cut to this many UTF-8 bytes (with a ``format`` penalty).
        max_turns: turn budget; running out truncates the episode.
        **kwargs: budgets and options of :class:`~rlvr.envs.core.AgentEnv`.

    ``reset(options=...)`` accepts ``task_id`` (as reset info gives it) or ``game`` (an index).
    """

    env_id = "rlvr/ALFWorld-v0"
    family = env_info(env_id).family
    description = env_info(env_id).description
    reward_components = ("format", "tool_validity", "win", "invalid")

    def __init__(self, task_types: Sequence[str] = alfgen.TASK_TYPES, pool_size: int = 12, pool_seed: int = 0,
                 data_dir: str | os.PathLike | None = None, games: Sequence[str | os.PathLike] | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("show_inventory"):
            raise ConfigError("rlvr/ALFWorld-v0 has no separate inventory report; the agent can send `inventory`")
        super().__init__(**kwargs)
        alfgen._alfworld()  # a clear error when alfworld is missing
        with ENGINE_LOCK:
            alfgen.memoize_engine_parsers()
        if isinstance(task_types, str) or not task_types or any(t not in alfgen.TASK_TYPES for t in task_types):
            raise ConfigError(f"task_types must be a non-empty list of {', '.join(alfgen.TASK_TYPES)}; got {task_types!r}")
        self.task_types = tuple(task_types)
        self._paths: list[Path | None]
        self._kinds: list[str]
        if games is not None or data_dir is not None:
            if games is not None and data_dir is not None:
                raise ConfigError("pass games= or data_dir=, not both")
            if games is not None:
                if isinstance(games, (str, os.PathLike)) or not games:
                    raise ConfigError(f"games must be a non-empty list of game.tw-pddl paths, got {games!r}")
                paths = [Path(g) for g in games]
                for p in paths:
                    load_game_file(p)
            else:
                assert data_dir is not None
                paths = find_games(data_dir, self.task_types)
            self._paths = list(paths)
            self._kinds = [_task_type_of(p) or "unknown" for p in paths]
            self._ids = [f"{k}/{p.parent.name}" if p.parent.name else str(p) for k, p in zip(self._kinds, paths)]
            if len(set(self._ids)) < len(self._ids):
                self._ids = [f"{i}:{tid}" for i, tid in enumerate(self._ids)]
            self._seeds: list[int] = []
        else:
            if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
                raise ConfigError(f"pool_size must be a positive integer, got {pool_size!r}")
            if not isinstance(pool_seed, int) or isinstance(pool_seed, bool) or pool_seed < 0:
                raise ConfigError(f"pool_seed must be a non-negative integer, got {pool_seed!r}")
            n = len(self.task_types)
            self._kinds = [self.task_types[i % n] for i in range(pool_size)]
            self._seeds = [pool_seed + i // n for i in range(pool_size)]
            self._paths = [None] * pool_size
            self._ids = [f"{k}-seed{s}" for k, s in zip(self._kinds, self._seeds)]
        self._engine: Any = None
        self._wrapped: Any = None
        self._loaded: Path | None = None
        self._episode = 0
        self._plan: tuple[int, int, list[str]] | None = None  # (episode, history length it was made at, commands)

    def game_path(self, index: int) -> Path:
        """The ``game.tw-pddl`` of game ``index`` (generated into the cache on first use)."""
        path = self._paths[index]
        if path is None:
            path = alfgen.generate(self._kinds[index], self._seeds[index])
            self._paths[index] = path
        return path

    def task_type(self, index: int | None = None) -> str:
        """The task type of game ``index`` (default: the current game)."""
        return self._kinds[self.game_index if index is None else index]

    @property
    def dataset_hash(self) -> str | None:
        """The generated pool's recipes, or the paths of the given game files."""
        if self._seeds:
            return "alfworld:" + recipe_key({"pool": [alfgen.recipe(k, s) for k, s in zip(self._kinds, self._seeds)]})[:16]
        return "alfworld:" + recipe_key({"files": [str(p) for p in self._paths]})[:16]

    def _task_ids(self) -> Sequence[str]:
        return self._ids

    def _start_game(self, index: int) -> GameState:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        path = self.game_path(index)
        if self._loaded != path:
            if self._engine is None:
                self._engine = PddlEnv(textworld.EnvInfos(feedback=True, won=True, admissible_commands=True))
                self._wrapped = AlfredDemangler(self._engine)
            try:
                self._wrapped.load(load_game_file(path))
            except ConfigError:
                raise
            except Exception as e:  # the PDDL does not parse or ground
                raise ConfigError(f"alfworld's engine cannot load {path}: {type(e).__name__}: {e}") from e
            self._loaded = path
        self._episode += 1
        return self._state(self._wrapped.reset())

    def _state(self, s: Any) -> GameState:
        adm = s.get("admissible_commands")
        return GameState(feedback=str(s.get("feedback") or ""), won=bool(s.get("won")), lost=bool(s.get("lost")),
                         admissible=sorted(adm) if self.list_admissible and adm is not None else None,
                         extra={"admissible": list(adm or [])})

    def _send(self, command: str) -> GameState:
        s, _, _ = self._wrapped.step(command)
        return self._state(s)

    def _system_prompt(self, state: GameState) -> str:
        task = next((line for line in state.feedback.split("\n") if line.startswith("Your task is to")), "")
        return "\n\n".join([
            "You are an agent in a household. Each turn you send one command and the house answers.",
            task or "Solve the task given below.",
            "Commands:\n" + GLOSSARY,
            ACTION_FORMAT,
        ])

    def _next_command(self) -> str:
        """The planner's next command; a plan is kept while the episode follows it (the domain is
        deterministic), and made again from the current state once the episode strays."""
        n = len(self.history)
        if self._plan is not None and self._plan[0] == self._episode:
            _, start, plan = self._plan
            done = self.history[start:]
            if done == plan[:len(done)] and len(done) < len(plan):
                return plan[len(done)]
        engine = self._engine
        plan = [str(c) for c in engine._pddl_state.replan(engine._entity_infos)] if engine is not None else []
        if not plan:
            return self._handcoded_next()
        self._plan = (self._episode, n, plan)
        return plan[0]

    def _handcoded_next(self) -> str:
        """alfworld's handcoded expert, when the planner has no plan: it reads ``traj_data.json`` beside the
        game and the facts of every state, so the episode is replayed in a second engine that reports
        them. (Called directly: alfworld's ``AlfredExpert`` wrapper is built with ``expert_type`` passed
        positionally as ``env``, so asking it for the planner silently gives the handcoded expert.)"""
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from alfworld.agents.expert import HandCodedTWAgent
        from textworld.envs.pddl import PddlEnv

        path = self.game_path(self.game_index)
        if not (path.parent / "traj_data.json").is_file():
            raise NoOracleError(f"the planner finds no plan for {self._ids[self.game_index]} from this state, and "
                                "the handcoded expert needs the game's traj_data.json")
        env = AlfredDemangler(PddlEnv(textworld.EnvInfos(feedback=True, won=True, admissible_commands=True, facts=True)))
        try:
            env.load(load_game_file(path))
            state = env.reset()
            expert = HandCodedTWAgent(max_steps=200)
            expert.reset(str(path))
            expert.observe(state["feedback"])
            command = "look"
            for sent in self.history:
                state, _, _ = env.step(sent)
                command = expert.act(state, 0, state["won"], sent)
            if not self.history:
                command = expert.act(state, 0, False, "")
            return str(command)
        except Exception as e:  # the heuristics gave up (alfworld raises its own timeouts and failures)
            raise NoOracleError(f"no plan for {self._ids[self.game_index]}: the planner has none and the handcoded "
                                f"expert failed ({type(e).__name__}: {e})") from e
        finally:
            env.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine, self._wrapped, self._loaded = None, None, None
        super().close()
