"""A few GRPO steps of SmolLM2-135M with TRL's GRPOTrainer on rlvr environments, on CPU.

TRL runs the loop (generation, tool calls, rewards, the GRPO update); rlvr supplies the environment
class (one method per tool), the reward functions (one per component, logged, plus the weighted
total that drives the update) and the dataset of tasks.

Run: python examples/trl_grpo.py                       # GuessNumber, then DeepSearch, 2 steps each
     python examples/trl_grpo.py --env rlvr/DeepSearch-v0 --steps 4
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental in TRL

from trl import GRPOConfig, GRPOTrainer

from rlvr.agents.models import load_model
from rlvr.integrations.trl import dataset, environment_factory, prepare_tokenizer, reward_funcs


def train(env_id: str, steps: int, out: str, env_kwargs: dict | None = None) -> dict:
    """Run ``steps`` GRPO steps on ``env_id``; return the last logged metrics."""
    model, tokenizer = load_model("smollm2", device="cpu")
    tokenizer = prepare_tokenizer(tokenizer)  # SmolLM2's own template cannot render tool calls
    Env = environment_factory(env_id, **(env_kwargs or {}))
    rewards = reward_funcs(Env)  # one per component (weight 0, logged) + "total" (weight 1)
    args = GRPOConfig(
        output_dir=out, max_steps=steps, per_device_train_batch_size=4, num_generations=4,
        max_completion_length=96, max_tool_calling_iterations=2, learning_rate=1e-5,
        reward_weights=rewards.weights, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, bf16=False, gradient_checkpointing=False, temperature=1.0, seed=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=list(rewards), args=args, processing_class=tokenizer,
                          train_dataset=dataset(Env, n=4 * steps), environment_factory=Env)
    trainer.train()
    return trainer.state.log_history[-2] if len(trainer.state.log_history) > 1 else trainer.state.log_history[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", action="append", help="environment id (repeatable; default GuessNumber and DeepSearch)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    a = p.parse_args()
    envs = a.env or ["rlvr/GuessNumber-v0", "rlvr/DeepSearch-v0"]
    for env_id in envs:
        out = a.out or tempfile.mkdtemp(prefix="rlvr-trl-")
        kwargs = {"n_tasks": 16} if env_id == "rlvr/DeepSearch-v0" else {}
        logs = train(env_id, a.steps, os.path.join(out, env_id.split("/")[-1]), kwargs)
        shown = {k: round(v, 4) for k, v in logs.items() if isinstance(v, float) and (
            k.startswith("rewards/") or k.startswith("tools/") or k in ("reward", "loss"))}
        print(f"{env_id}: {shown}")


if __name__ == "__main__":
    main()
