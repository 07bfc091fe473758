"""TextWorld games generated offline with textworld's own challenge generators, cached by recipe.

Challenges and their difficulty settings (defaults in :data:`DEFAULT_SETTINGS`):

* ``simple``: ``rewards`` (``dense`` | ``balanced`` | ``sparse``), ``goal`` (``detailed`` | ``brief`` |
  ``none``), ``test`` (bool: draw from the test distribution);
* ``coin_collector``: ``level`` 1-300 (quest length ``(level - 1) % 100 + 1``, distractor rooms above 100;
  at most 100 rooms in all);
* ``treasure_hunter``: ``level`` 1-30 (5, 10 or 20 rooms; doors, containers and keys from level 11);
* ``cooking``: ``recipe`` (ingredients, 1-5), ``take`` (0-``recipe``: ingredients to find), ``go``
  (1, 6, 9 or 12 rooms), ``open``, ``cook``, ``cut``, ``drop`` (bools), ``recipe_seed`` (int >= 0),
  ``split`` (``None`` | ``train`` | ``valid`` | ``test``).

:func:`generate` builds the game of ``(challenge, settings, seed)`` once (``game.z8`` and its
``game.json``, which carries the walkthrough and the state tracker's data) into the content-addressed
store of :mod:`rlvr.envs.textgames.cache`; the same recipe gives byte-identical games in every process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rlvr.envs.textgames.base import ENGINE_LOCK
from rlvr.envs.textgames.cache import build_once
from rlvr.errors import ConfigError, did_you_mean

__all__ = ["CHALLENGES", "DEFAULT_SETTINGS", "check_settings", "generate"]

CHALLENGES = ("simple", "coin_collector", "treasure_hunter", "cooking")

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "simple": {"rewards": "dense", "goal": "detailed", "test": False},
    "coin_collector": {"level": 1},
    "treasure_hunter": {"level": 1},
    "cooking": {"recipe": 1, "take": 1, "go": 1, "open": False, "cook": False, "cut": False, "drop": False,
                "recipe_seed": 0, "split": None},
}

_CHOICES: dict[str, dict[str, tuple[Any, ...]]] = {
    "simple": {"rewards": ("dense", "balanced", "sparse"), "goal": ("detailed", "brief", "none")},
    "cooking": {"go": (1, 6, 9, 12), "split": (None, "train", "valid", "test")},
}
_RANGES = {("coin_collector", "level"): (1, 300), ("treasure_hunter", "level"): (1, 30),
           ("cooking", "recipe"): (1, 5), ("cooking", "recipe_seed"): (0, 2**31 - 1)}
_BOOLS = {"test", "open", "cook", "cut", "drop"}
GENERATOR_VERSION = 1


def check_settings(challenge: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The full settings of ``challenge`` (defaults filled in), or a :class:`ConfigError` that names the
    wrong key or value and what is accepted."""
    if challenge not in CHALLENGES:
        raise ConfigError(f"unknown TextWorld challenge {challenge!r}{did_you_mean(str(challenge), CHALLENGES)}; "
                          f"choose one of {', '.join(CHALLENGES)}")
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError(f"settings must be a mapping such as {DEFAULT_SETTINGS[challenge]}, got {settings!r}")
    out = dict(DEFAULT_SETTINGS[challenge])
    for key, value in (settings or {}).items():
        if key not in out:
            raise ConfigError(f"unknown {challenge} setting {key!r}{did_you_mean(str(key), out)}; "
                              f"accepted: {', '.join(out)}")
        out[key] = value
    for key, value in out.items():
        where = f"{challenge} setting {key!r}"
        if key in _BOOLS:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, got {value!r}")
        elif key in _CHOICES.get(challenge, {}):
            if value not in _CHOICES[challenge][key]:
                raise ConfigError(f"{where} must be one of {_CHOICES[challenge][key]}, got {value!r}")
        elif (challenge, key) in _RANGES:
            lo, hi = _RANGES[challenge, key]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")
    if challenge == "coin_collector":
        rooms = ((out["level"] - 1) // 100 + 1) * ((out["level"] - 1) % 100 + 1)
        if rooms > 100:
            raise ConfigError(f"coin_collector level {out['level']} needs {rooms} rooms; textworld 1.7 games hold at "
                              "most 100 (levels 1-100, 101-150 and 201-233 fit)")
    if challenge == "cooking" and not (isinstance(out["take"], int) and 0 <= out["take"] <= out["recipe"]):
        raise ConfigError(f"cooking setting 'take' must be an integer in [0, recipe={out['recipe']}], got {out['take']!r}")
    return out


def recipe(challenge: str, settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What a generated game is made from (its cache key)."""
    import textworld

    return {"generator": "textworld", "textworld": textworld.__version__, "rlvr": GENERATOR_VERSION,
            "challenge": challenge, "settings": dict(settings), "seed": int(seed)}


def generate(challenge: str, settings: Mapping[str, Any], seed: int) -> Path:
    """The ``game.z8`` of ``(challenge, settings, seed)``, generated and compiled on first use (a few
    seconds), then read from the cache. ``settings`` must come from :func:`check_settings`."""
    import textworld.challenges
    from textworld import GameOptions
    from textworld.generator import compile_game

    def build(out: Path) -> None:
        opts = GameOptions()
        opts.seeds = int(seed)
        opts.path = str(out / "game.z8")
        opts.force_recompile = True
        make = textworld.challenges.CHALLENGES[f"tw-{challenge}"][1]
        with ENGINE_LOCK:  # textworld's parsers and generators are not thread-safe
            game = make(dict(settings), opts)
            compile_game(game, opts)
        for extra in out.glob("game.*"):
            if extra.suffix not in (".z8", ".json"):
                extra.unlink()

    return build_once("textworld", recipe(challenge, settings, seed), build) / "game.z8"
