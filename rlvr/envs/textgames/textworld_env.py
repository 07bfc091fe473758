"""rlvr/TextWorld-v0: TextWorld games (``.z8``) played one command per turn, with score-based turn rewards.

Games come from textworld's own generators (``challenge=`` and ``settings=``, see
:mod:`rlvr.envs.textgames.twgen`), built offline on first use into the content-addressed game cache,
one per seed of the pool; or from ``games=``, your own ``.z8`` files (TextWorld-made games carry a
``.json`` beside them, which gives the walkthrough, the admissible commands and the score tracking).

Reward components per turn (besides ``win``, ``format`` and ``invalid`` of
:mod:`rlvr.envs.textgames.base`): ``progress``, the score gained over the game's maximum score, so the
turns of a won game sum to 1 (absent for a game without a maximum score).

Interpreter meta-commands (``restart``, ``quit``, ``save``, ``restore``, ``undo``, ``script``) are not
sent: they would change the game behind textworld's state tracker; the turn answers
``That command is not available in this game.`` and costs ``invalid``.

Oracle: the game's walkthrough while the episode follows it; once the episode has strayed, the plan
textworld replans from the current state (``policy_commands``), computed on demand by replaying the
episode's commands in a second copy of the game with quest tracking on (so its cost, about 20 ms a
step, is paid only by the oracle).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlvr.envs.textgames import twgen
from rlvr.envs.textgames.base import ACTION_FORMAT, GameState, TextGameEnv
from rlvr.envs.textgames.cache import file_sha256, recipe_key
from rlvr.errors import ConfigError, NoOracleError
from rlvr.registry import env_info

__all__ = ["TextWorldEnv", "check_story_file"]

_BANNER = re.compile(r"^[\s_|\\/$<>()=\-.,'`~]*$")
_META = frozenset({"restart", "quit", "q", "save", "restore", "script", "transcript", "unscript", "undo", "noscript"})
_META_REFUSAL = "That command is not available in this game."
_MENU = "Would you like to RESTART, RESTORE a saved game"
_SCALE = {1: 2, 2: 2, 3: 2, 4: 4, 5: 4, 6: 8, 7: 8, 8: 8}
_PLACEHOLDERS = {"o": "object", "c": "container", "s": "supporter", "d": "door", "k": "key", "f": "food",
                 "r": "room", "t": "thing", "oven": "oven", "stove": "stove", "toaster": "toaster", "meal": "meal"}


def check_story_file(path: Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` is a whole Z-machine story file (version byte, declared
    length and checksum of its header). The interpreter exits the process on a damaged story file, so
    files are checked before they are loaded."""
    if path.suffix == ".ulx":
        raise ConfigError(f"{path}: Glulx (.ulx) games are not supported by textworld 1.7 (its last Glulx release "
                          "was 1.6); regenerate the game as .z8 (the default of tw-make) or play it with textworld<1.7")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read game file {path}: {e}; pass paths of existing .z8 files") from e
    version = data[0] if data else 0
    if len(data) < 64 or version not in _SCALE:
        raise ConfigError(f"{path} is not a Z-machine story file (expected a .z8 game made by textworld or "
                          f"Inform; got {len(data)} bytes starting {data[:8]!r})")
    length = int.from_bytes(data[0x1A:0x1C], "big") * _SCALE[version]
    if length > len(data):
        raise ConfigError(f"{path} is truncated: its header declares {length} bytes, the file has {len(data)}; "
                          "copy or regenerate it")
    checksum = int.from_bytes(data[0x1C:0x1E], "big")
    if length and checksum and sum(data[0x40:length]) & 0xFFFF != checksum:
        raise ConfigError(f"{path} is corrupt: its checksum does not match its header; copy or regenerate it")


def _strip_banner(text: str) -> str:
    """TextWorld's opening feedback without the ASCII-art title above the first line of prose."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and _BANNER.match(lines[i]):
        i += 1
    return "\n".join(lines[i:])


def _tidy(text: str) -> str:
    """The interpreter's output without its prompt and status line (``>  -= Room =-0/1``), the end-of-game
    menu, and runs of blank lines."""
    kept = [line.rstrip() for line in text.split("\n")
            if not line.lstrip().startswith(">") and not line.startswith(_MENU)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _glossary(templates: Sequence[str]) -> str:
    def show(t: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: f"({_PLACEHOLDERS.get(m.group(1), m.group(1))})", t)

    return "\n".join(f"  {show(t)}" for t in sorted(set(templates)))


class TextWorldEnv(TextGameEnv):
    """TextWorld games with turn rewards (module docstring).

    Args:
        challenge: ``simple``, ``coin_collector`` (default), ``treasure_hunter`` or ``cooking``.
        settings: the challenge's difficulty settings (:mod:`~rlvr.envs.textgames.twgen`; defaults filled in).
        pool_size: games in the pool; game ``i`` is generated with seed ``pool_seed + i``.
        pool_seed: the first generation seed of the pool.
        games: paths of your own ``.z8`` files (instead of a generated pool).
        list_admissible: end each observation with ``Admissible commands: [...]`` (sorted).
        show_inventory: end each observation with the inventory.
        invalid_command_penalty: magnitude of the ``invalid`` component (a command the game did not understand).
        max_command_chars: longer commands are cut to this many UTF-8 bytes (with a ``format`` penalty).
        max_turns: turn budget; running out truncates the episode.
        **kwargs: budgets and options of :class:`~rlvr.envs.core.AgentEnv`.

    ``reset(options=...)`` accepts ``task_id`` (as reset info gives it) or ``game`` (an index into the
    pool); otherwise the game is drawn with the reset seed.
    """

    env_id = "rlvr/TextWorld-v0"
    family = env_info(env_id).family
    description = env_info(env_id).description
    reward_components = ("format", "tool_validity", "progress", "win", "invalid")
    optional_components = ("progress",)

    def __init__(self, challenge: str = "coin_collector", settings: Mapping[str, Any] | None = None,
                 pool_size: int = 8, pool_seed: int = 0, games: Sequence[str | os.PathLike] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            import textworld  # noqa: F401
        except ImportError as e:
            raise ConfigError("rlvr/TextWorld-v0 needs textworld: pip install 'rlvr-gym[textgames]' "
                              "(or textworld==1.7.0)") from e
        if games is not None:
            if isinstance(games, (str, os.PathLike)) or not games:
                raise ConfigError(f"games must be a non-empty list of .z8 paths, got {games!r}")
            self._paths: list[Path | None] = []
            for g in games:
                p = Path(g)
                check_story_file(p)
                self._open(p).close()  # its .json (walkthrough, tracking data) too: fail now, not mid-run
                self._paths.append(p)
            stems = [p.stem for p in self._paths if p is not None]
            self._ids = [f"game{i}-{s}" for i, s in enumerate(stems)]
            self.challenge, self.settings, self._seeds = None, None, []
        else:
            if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
                raise ConfigError(f"pool_size must be a positive integer, got {pool_size!r}")
            if not isinstance(pool_seed, int) or isinstance(pool_seed, bool) or pool_seed < 0:
                raise ConfigError(f"pool_seed must be a non-negative integer, got {pool_seed!r}")
            self.challenge = challenge
            self.settings = twgen.check_settings(challenge, settings)
            self._seeds = [pool_seed + i for i in range(pool_size)]
            self._paths = [None] * pool_size  # generated on first use
            tag = ",".join(f"{k}={v}" for k, v in self.settings.items() if v != twgen.DEFAULT_SETTINGS[challenge][k])
            self._ids = [f"tw-{challenge}{'[' + tag + ']' if tag else ''}-seed{s}" for s in self._seeds]
        self._env: Any = None
        self._loaded: Path | None = None
        self._shadow: Any = None
        self._walkthrough: list[str] = []
        self._plan: tuple[int, list[str]] | None = None  # (history length it was made at, commands)

    # ------------------------------------------------------------------ games
    def game_path(self, index: int) -> Path:
        """The ``.z8`` file of game ``index`` (generated into the cache on first use)."""
        path = self._paths[index]
        if path is None:
            assert self.challenge is not None and self.settings is not None
            path = twgen.generate(self.challenge, self.settings, self._seeds[index])
            self._paths[index] = path
        return path

    @property
    def dataset_hash(self) -> str | None:
        """The pool's recipes (generator, settings, seeds) or the SHA-256 of the given game files."""
        if self.challenge is not None:
            recipes = [twgen.recipe(self.challenge, self.settings or {}, s) for s in self._seeds]
            return "textworld:" + recipe_key({"pool": recipes})[:16]
        return "textworld:" + recipe_key({"files": [file_sha256(p) for p in self._paths if p is not None]})[:16]

    def _task_ids(self) -> Sequence[str]:
        return self._ids

    def _infos(self, tracking: bool = False) -> Any:
        import textworld

        return textworld.EnvInfos(feedback=True, won=True, lost=True, score=True, max_score=True, objective=True,
                                  command_templates=True, extras=["walkthrough"],
                                  admissible_commands=self.list_admissible or tracking,
                                  inventory=self.show_inventory, policy_commands=tracking)

    def _open(self, path: Path, tracking: bool = False) -> Any:
        import textworld

        try:
            with warnings.catch_warnings():  # jericho warns that it does not know TextWorld's games: textworld tracks them
                warnings.filterwarnings("ignore", message=".*is not fully supported")
                return textworld.start(str(path), request_infos=self._infos(tracking))
        except Exception as e:  # the game files are damaged or of a kind textworld cannot play
            raise ConfigError(f"textworld cannot load {path}: {type(e).__name__}: {e}") from e

    def _state(self, s: Any) -> GameState:
        adm = s.get("admissible_commands")
        max_score = s.get("max_score")
        return GameState(feedback=_tidy(str(s.get("feedback") or "")), won=bool(s.get("won")), lost=bool(s.get("lost")),
                         score=float(s["score"]) if s.get("score") is not None else None,
                         max_score=float(max_score) if max_score else None,
                         admissible=sorted(adm) if adm is not None else None, inventory=s.get("inventory"),
                         extra={"objective": s.get("objective"), "templates": s.get("command_templates") or [],
                                "walkthrough": s.get("extra.walkthrough")})

    def _start_game(self, index: int) -> GameState:
        path = self.game_path(index)
        if self._loaded != path:
            self.close()
            self._env = self._open(path)
            self._loaded = path
        state = self._state(self._env.reset())
        state.feedback = _tidy(_strip_banner(state.feedback))
        self._walkthrough = list(state.extra.get("walkthrough") or [])
        self._plan = None
        return state

    def _send(self, command: str) -> GameState:
        words = command.lower().split()
        if words and words[0] in _META:  # would restart, quit or file the game behind the state tracker's back
            assert self.game_state is not None
            return replace(self.game_state, feedback=_META_REFUSAL)
        s, _, _ = self._env.step(command)
        return self._state(s)

    def _turn_components(self, before: GameState, after: GameState) -> dict[str, float]:
        if not after.max_score or after.score is None:
            return {}
        return {"progress": (after.score - (before.score or 0.0)) / after.max_score}

    def _system_prompt(self, state: GameState) -> str:
        objective = state.extra.get("objective") or "Explore and win the game."
        parts = ["You are playing a text adventure game. Each turn you send one command and the game answers.",
                 f"Objective: {objective.strip()}"]
        if state.extra.get("templates"):
            parts.append("Commands the game understands:\n" + _glossary(state.extra["templates"]))
        parts.append(ACTION_FORMAT)
        return "\n\n".join(parts)

    # ------------------------------------------------------------------ oracle
    def _next_command(self) -> str:
        n = len(self.history)
        if self.history == self._walkthrough[:n] and n < len(self._walkthrough):
            return self._walkthrough[n]
        if self._plan is not None:
            start, plan = self._plan
            done = self.history[start:]
            if done == plan[:len(done)] and len(done) < len(plan):
                return plan[len(done)]
        plan = self._replan()
        if not plan:
            raise NoOracleError(f"no plan wins {self._ids[self.game_index]} from here (the game may be lost)")
        self._plan = (n, plan)
        return plan[0]

    def _replan(self) -> list[str]:
        """textworld's winning policy from the current state: replay this episode in a tracking copy."""
        path = self.game_path(self.game_index)
        if self._shadow is None or self._shadow[0] != path:
            if self._shadow is not None:
                self._shadow[1].close()
            self._shadow = (path, self._open(path, tracking=True))
        shadow = self._shadow[1]
        s = shadow.reset()
        for command in self.history:
            s, _, _ = shadow.step(command)
        if s.get("policy_commands") is None:
            raise NoOracleError(f"{path} has no quest data to plan with (a game not made by textworld)")
        return list(s["policy_commands"])

    def close(self) -> None:
        for env in (self._env, self._shadow[1] if self._shadow else None):
            if env is not None:
                env.close()
        self._env, self._loaded, self._shadow = None, None, None
        super().close()
