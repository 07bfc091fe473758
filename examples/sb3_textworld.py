"""MaskablePPO on an easy TextWorld game: a floor for language-model agents, not a headline.

Trains sb3-contrib's MaskablePPO on coin-collector games (the coin is a room or two away) through
``SB3TextGameEnv`` (a hashed bag of words of the feedback and of each admissible command, and a mask
over the admissible commands), then plays held-out games, generated with other seeds, against a
random agent that picks among the same admissible commands. Writes a learning curve PNG.

    python examples/sb3_textworld.py --steps 8192 --plot runs/sb3_textworld.png
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from rlvr.envs.textgames.sb3 import SB3TextGameEnv

GAME = {"challenge": "coin_collector", "settings": {"level": 2}, "max_turns": 6}
FEATURES = {"max_actions": 16, "n_features": 64}


def evaluate(choose, games: int, episodes: int) -> float:
    """Success rate of ``choose(obs, mask, rng) -> index`` on ``games`` held-out games (seeds 1000+)."""
    env = SB3TextGameEnv(**GAME, **FEATURES, pool_size=games, pool_seed=1000)
    rng = np.random.default_rng(0)
    wins = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(choose(obs, env.action_masks(), rng))
            done = terminated or truncated
        wins.append(bool(info.get("success")))
    env.close()
    return float(np.mean(wins))


def run(steps: int = 8192, train_games: int = 8, eval_games: int = 8, episodes: int = 40,
        plot: str | None = "runs/sb3_textworld.png") -> dict[str, Any]:
    """Train, evaluate against random, and plot; returns the success rates and the curve."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []
            self._ret = 0.0

        def _on_step(self) -> bool:
            self._ret += float(self.locals["rewards"][0])
            if self.locals["dones"][0]:
                self.points.append((self.num_timesteps, self._ret))
                self._ret = 0.0
            return True

    env = SB3TextGameEnv(**GAME, **FEATURES, pool_size=train_games, pool_seed=0)
    model = MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=64, gamma=0.95, seed=0, verbose=0)
    curve = Curve()
    model.learn(steps, callback=curve)
    env.close()
    ppo = evaluate(lambda o, m, rng: int(model.predict(o, action_masks=m, deterministic=True)[0]), eval_games, episodes)
    rand = evaluate(lambda o, m, rng: int(rng.choice(np.flatnonzero(m))), eval_games, episodes)
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from pathlib import Path

        x, y = zip(*curve.points) if curve.points else ((0,), (0.0,))
        k = max(1, len(y) // 20)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(x, y, alpha=0.3, label="episode return")
        ax.plot(x[k - 1:], smooth, label=f"mean of {k}")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return (progress + win)")
        ax.set_title(f"MaskablePPO, {GAME['challenge']} level {GAME['settings']['level']}: "
                     f"held-out success {ppo:.0%} vs random {rand:.0%}", fontsize=9)
        ax.legend()
        Path(plot).parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
    return {"ppo_success": ppo, "random_success": rand, "curve": curve.points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8192)
    parser.add_argument("--train-games", type=int, default=8)
    parser.add_argument("--eval-games", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--plot", default="runs/sb3_textworld.png")
    args = parser.parse_args()
    result = run(args.steps, args.train_games, args.eval_games, args.episodes, args.plot)
    print(f"held-out success: MaskablePPO {result['ppo_success']:.0%}, random {result['random_success']:.0%} "
          f"({args.eval_games} games, {args.episodes} episodes); curve: {args.plot}")


if __name__ == "__main__":
    main()
