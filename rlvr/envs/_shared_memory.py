"""Shared memory for :class:`~rlvr.envs.core.ChatMessages` observations, so ``gym.make_vec(id, n,
vectorization_mode="async")`` works with gymnasium's default ``shared_memory=True``.

Gymnasium's ``AsyncVectorEnv`` passes observations through a fixed buffer per worker when
``shared_memory`` is on, and only knows how to lay out fixed-shape spaces. A chat observation has no
fixed shape, so each worker gets a slot of :data:`SLOT_BYTES` bytes holding the observation pickled,
behind an 8-byte length. The vector env's observations are then a :class:`SharedObservations` view
over the slots; gymnasium copies it on every ``reset`` / ``step`` (its default ``copy=True``), which
gives the same tuple of message lists a ``SyncVectorEnv`` returns.

An observation larger than a slot (only possible with ``max_obs_chars=None`` or very large
content) fails that step with a :class:`~rlvr.errors.ConfigError` saying how to fix it:
``vector_kwargs={"shared_memory": False}`` sends observations through pipes with no size limit.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import pickle
from collections.abc import Sequence
from typing import Any

from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

from rlvr.envs.core import ChatMessages
from rlvr.errors import ConfigError

__all__ = ["SLOT_BYTES", "SharedObservations"]

SLOT_BYTES = 4 * 1024 * 1024
"""Bytes per environment: 64 messages cut at the default ``max_obs_chars=8000`` fit with room to spare."""

_HEADER = 8


class SharedObservations(Sequence):
    """The latest observation of each worker, decoded from shared memory on access (a fresh copy each time).

    ``copy.deepcopy`` of it (what ``AsyncVectorEnv`` returns by default) is a plain tuple of message lists.
    """

    def __init__(self, buffer: Any, n: int, slot: int) -> None:
        self._buffer, self._n, self._slot = buffer, n, slot

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError(f"observation index {index} out of range for {self._n} environments")
        start = (index % self._n) * self._slot
        view = memoryview(self._buffer.get_obj()).cast("B")
        size = int.from_bytes(view[start:start + _HEADER], "little")
        if size == 0:
            return []
        return pickle.loads(view[start + _HEADER:start + _HEADER + size])

    def __deepcopy__(self, memo: dict) -> tuple:
        return tuple(self[i] for i in range(self._n))

    def __repr__(self) -> str:
        return f"SharedObservations({list(self)!r})"


@create_shared_memory.register(ChatMessages)
def _create(space: ChatMessages, n: int = 1, ctx: Any = mp) -> Any:
    return ctx.Array(ctypes.c_uint8, n * SLOT_BYTES)


@read_from_shared_memory.register(ChatMessages)
def _read(space: ChatMessages, shared_memory: Any, n: int = 1) -> SharedObservations:
    return SharedObservations(shared_memory, n, SLOT_BYTES)


@write_to_shared_memory.register(ChatMessages)
def _write(space: ChatMessages, index: int, value: Any, shared_memory: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > SLOT_BYTES - _HEADER:
        raise ConfigError(
            f"an observation of {len(data)} bytes does not fit the {SLOT_BYTES - _HEADER}-byte shared-memory slot "
            "of an async vector env; pass vector_kwargs={'shared_memory': False} to gym.make_vec (observations "
            "then go through pipes, with no size limit), or keep max_obs_chars set so observations stay bounded"
        )
    view = memoryview(shared_memory.get_obj()).cast("B")
    start = index * SLOT_BYTES
    view[start + _HEADER:start + _HEADER + len(data)] = data
    view[start:start + _HEADER] = len(data).to_bytes(_HEADER, "little")
