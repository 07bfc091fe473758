"""``python -m rlvr.envs.swe``: maintenance commands of the SWE environment.

* ``reap``: remove rlvr containers (and their volumes) left behind by processes that died;
* ``build-catalog [--projects ...] [--workers N]``: validate every candidate bug of the shipped
  projects and rewrite the catalog;
* ``show SEED``: print the generated task of a seed (problem statement and gold patch).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlvr.envs.swe", description="SWE environment maintenance")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("reap", help="remove rlvr containers of dead processes")
    b = sub.add_parser("build-catalog", help="validate every candidate bug and write the catalog")
    b.add_argument("--projects", nargs="*")
    b.add_argument("--workers", type=int, default=2)
    s = sub.add_parser("show", help="print the generated task of a seed")
    s.add_argument("seed", type=int)
    args = ap.parse_args(argv)
    if args.cmd == "reap":
        from rlvr.envs.swe.sandbox import reap_leaked

        removed = reap_leaked()
        print(f"removed {len(removed)} leaked container(s)" + "".join(f"\n  {c[:12]}" for c in removed))
    elif args.cmd == "build-catalog":
        from rlvr.envs.swe.generator import build_catalog

        print(build_catalog(args.projects, workers=args.workers))
    else:
        from rlvr.envs.swe.generator import SWESmithGenerator

        t = SWESmithGenerator().task(args.seed)
        print(f"{t.instance_id}\n\n{t.problem_statement}\n\n{t.patch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
