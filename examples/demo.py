"""`make demo`: evaluate SmolLM2-135M on rlvr/GuessNumber-v0, train it a few steps on CPU, evaluate again.

    python examples/demo.py [--output-dir runs/demo] [--steps 3]

Writes runs/demo/summary.md (before/after table), trajectories.jsonl, eval_before/, eval_after/,
metrics.jsonl and plots/training.png.
"""

import sys

from rlvr.agents.trainer.demo import demo_main

if __name__ == "__main__":
    sys.exit(demo_main(sys.argv[1:]))
