"""Reward schemes: credit assignment on synthetic tasks, exploit agents on the environments, the papers' claims.

A thin wrapper over ``rlvr bench rewards`` (see the README's "Benchmarking reward schemes"): it runs the
benchmark into a temporary folder, prints its tables and claims, and writes
``benchmarks/results/rewards.json`` (the command's ``results.json``). ``--quick`` (under a minute) runs the
command's quick configuration; the default runs three seeds with 100 policy updates per microbenchmark run
(several minutes on two cores; SWE only when a Docker engine answers).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the command's --quick configuration (under a minute)")
    args = p.parse_args(argv)
    from rlvr.cli import main as rlvr_main

    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--quick"] if args.quick else ["--seeds", "0", "1", "2", "--steps", "100"]
        code = rlvr_main(["bench", "rewards", *extra, "--quiet", "--out", tmp])
        if code == 0:
            dest = Path(__file__).parent / "results" / "rewards.json"
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(Path(tmp) / "results.json", dest)
            print(f"wrote {dest}")
    return code


if __name__ == "__main__":
    sys.exit(main())
