"""Task pools for TRL environment classes over environments whose tools change from task to task.

TRL builds one tool schema per environment class, from its public methods. An environment whose tools
are set by the task (``rlvr/ToolCall-v0``) therefore gets a class over a *pool* of tasks: its methods
are the union of the tools those tasks offer at reset, each tool name with one schema. The pool is
checked here: every id must be a task of the environment, two tasks must not give the same tool name
different schemas (a :class:`ConfigError` names the tool and the tasks), and the union must stay
within ``max_tools`` (TRL's chat template lists every method in every prompt).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rlvr.envs.core import AgentEnv
from rlvr.envs.tools import Tool
from rlvr.errors import ConfigError

__all__ = ["DEFAULT_MAX_TOOLS", "check_row_task", "pool_task_ids", "pool_tools"]

DEFAULT_MAX_TOOLS = 32
"""Default bound on the tools of one TRL environment class (all listed in every prompt)."""

_SPLIT_HINT = ("TRL gives a class one schema per tool name: split the tasks into pools without such clashes, one "
               "environment_factory(..., task_ids=POOL) class each, and mix them with TRL's dict "
               "environment_factory={name: class} and dataset(class, environment=name)")


def _all_task_ids(env: AgentEnv, env_id: str) -> list[str]:
    """Every task id of ``env`` (its ``tasks`` list), or a ConfigError saying to pass ``task_ids``."""
    try:
        tasks = env.tasks  # type: ignore[attr-defined]
        ids = [str(t.task_id) for t in tasks]
    except (AttributeError, ConfigError, TypeError) as e:
        _, info = env.reset(seed=0)
        raise ConfigError(f"{env_id}: its tools change per task and it has no task list to take them from ({e}); "
                          f"pass environment_factory({env_id!r}, task_ids=[...]) with the tasks to train on, e.g. "
                          f"task_ids=[{str(info.get('task_id'))!r}, ...]") from e
    if not ids:
        raise ConfigError(f"{env_id}: no tasks to build a TRL tool schema from; pass task_ids=[...]")
    return ids


def _schema_key(tool: Tool) -> str:
    return json.dumps([tool.description, tool.parameters], sort_keys=True, default=str)


def pool_tools(env: AgentEnv, env_id: str, task_ids: Sequence[str] | None,
               max_tools: int = DEFAULT_MAX_TOOLS) -> tuple[tuple[str, ...], list[Tool]]:
    """The task pool and the union of its tools, in first-seen order.

    ``task_ids=None`` takes every task of the environment (when it has a task list). Each task is reset
    once on ``env`` to read the tools it offers. Raises :class:`ConfigError` for an empty or malformed
    pool, an unknown task id (the environment's own error), a tool name with two schemas, or a union
    over ``max_tools``.
    """
    if not isinstance(max_tools, int) or isinstance(max_tools, bool) or max_tools < 1:
        raise ConfigError(f"max_tools must be a positive integer, got {max_tools!r}")
    if task_ids is None:
        ids, given = _all_task_ids(env, env_id), False
    else:
        if isinstance(task_ids, str) or not isinstance(task_ids, Sequence):
            raise ConfigError(f"task_ids must be a list of task id strings, got {type(task_ids).__name__}")
        bad = [t for t in task_ids if not isinstance(t, str)]
        if bad:
            raise ConfigError(f"task_ids must be task id strings, got {bad[:3]!r}")
        ids, given = list(dict.fromkeys(task_ids)), True
        if not ids:
            raise ConfigError("task_ids is empty; name at least one task of the environment")
    tools: dict[str, Tool] = {}
    seen: dict[str, tuple[str, str]] = {}  # tool name -> (its schema key, the first task offering it)
    clashes: dict[str, tuple[str, str]] = {}
    for k, tid in enumerate(ids):
        env.reset(options={"task_id": tid})
        for tool in env.tools:
            key = _schema_key(tool)
            if tool.name not in seen:
                seen[tool.name] = (key, tid)
                tools[tool.name] = tool
            elif seen[tool.name][0] != key and tool.name not in clashes:
                clashes[tool.name] = (seen[tool.name][1], tid)
        if len(tools) > max_tools:
            where = f"the first {k + 1} of the {len(ids)} tasks" + ("" if given else " (every task of the environment)")
            raise ConfigError(f"{env_id}: {where} offer {len(tools)} different tools, over max_tools={max_tools} (TRL "
                              "lists every tool of the class in every prompt); pass task_ids=[...] naming a smaller "
                              "pool of tasks that share their tools, or raise max_tools")
    if clashes:
        named = "; ".join(f"{n!r} in tasks {a!r} and {b!r}" for n, (a, b) in list(clashes.items())[:3])
        more = f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else ""
        raise ConfigError(f"{env_id}: tools with the same name but different schemas: {named}{more}. {_SPLIT_HINT}")
    if not tools:
        raise ConfigError(f"{env_id}: the tasks {ids[:3]!r} offer no tools, so TRL has nothing to call")
    return tuple(ids), list(tools.values())


def pool_task_ids(pool: tuple[str, ...], env_id: str, n: int, task_ids: Sequence[str] | None) -> list[str]:
    """The task ids of ``n`` dataset rows of a pooled class: ``task_ids`` (each in the pool), else the pool
    cycled. Raises :class:`ConfigError` for ids outside the pool."""
    if task_ids is None:
        return [pool[i % len(pool)] for i in range(n)]
    members = set(pool)
    outside = [t for t in task_ids if t not in members]
    if outside:
        raise ConfigError(f"{env_id}: task ids {outside[:5]!r} are not in this class's task pool ({len(pool)} tasks, "
                          f"e.g. {list(pool[:3])!r}), so the class has no methods for their tools; build the class with "
                          "environment_factory(..., task_ids=...) including them")
    return list(task_ids)


def check_row_task(pool: tuple[str, ...] | None, members: Any, env_id: str, task_id: Any) -> None:
    """Refuse a ``reset`` row whose task is not in the class's pool (its tools may not be methods)."""
    if pool is None:
        return
    if task_id is None:
        raise ConfigError(f"{env_id}: this class serves a pool of {len(pool)} tasks and needs each row's task_id; "
                          "build the dataset with rlvr.integrations.trl.dataset(cls)")
    if str(task_id) not in members:
        raise ConfigError(f"{env_id}: task {task_id!r} is not in this class's task pool (e.g. {list(pool[:3])!r}); "
                          "build the dataset with rlvr.integrations.trl.dataset(cls), or the class with "
                          "environment_factory(..., task_ids=...) including it")
