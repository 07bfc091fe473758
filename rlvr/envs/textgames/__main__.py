"""``python -m rlvr.envs.textgames prepare``: build the default game pools into the game cache.

``make install`` runs it once, so the first episodes and the test suite find their games ready
(TextWorld: the default coin-collector pool; ALFWorld: the default pool, two games of each task type).
Already cached games are only checked. ``--quick`` builds one game of each kind.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlvr.envs.textgames", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--quick", action="store_true", help="one game of each kind only")
    args = parser.parse_args(argv)
    from rlvr.envs.textgames.alfworld_env import ALFWorldEnv
    from rlvr.envs.textgames.textworld_env import TextWorldEnv

    for cls in (TextWorldEnv, ALFWorldEnv):
        env = cls()
        n = 1 if args.quick else len(env._task_ids())
        start = time.perf_counter()
        for i in range(n):
            env.game_path(i)
        print(f"{cls.env_id}: {n} games ready in {time.perf_counter() - start:.1f} s")
        env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
