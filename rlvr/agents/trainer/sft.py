"""Behaviour-cloning warm start: a few supervised steps on the environment's oracle demonstrations.

A small model that never produces a scorable action gives GRPO nothing to compare (every group's
rewards tie, every advantage is 0). Cloning the oracle for a few steps first teaches the action
format, so the reinforcement-learning steps that follow see mixed rewards. Demonstrations are
oracle episodes on their own seeds (disjoint from training and evaluation tasks), turned into
token-exact sequences; the loss is the mean negative log-likelihood of the oracle's tokens.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch

from rlvr.agents.base import OracleAgent
from rlvr.agents.hf import chat_prompt_ids
from rlvr.agents.rollout import rollout
from rlvr.agents.trainer.multimodal import demonstration_sequence, multimodal_inputs
from rlvr.agents.trainer.sequences import TemplateRenderer, TokenSequence, build_sequence, collate, first_prediction
from rlvr.agents.trajectory import Trajectory
from rlvr.agents.vlm import is_codec
from rlvr.errors import ConfigError

__all__ = ["SFT_SEED_OFFSET", "demonstration_sequences", "sft_warmup", "text_sequence"]

SFT_SEED_OFFSET = 2_000_000  # demonstration tasks use seeds far from training and evaluation ones


def _tokenise(traj: Trajectory, tokenizer: Any) -> Trajectory:
    """Give a text-only trajectory token ids: the chat-template prompt, each action plus end token.

    The oracle sampled nothing, so its turns have no log-probs (``logprobs`` stays ``None``)."""
    prompt = chat_prompt_ids(tokenizer, traj.initial_messages)
    for turn in traj.turns:
        ids = list(tokenizer(turn.action, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
        turn.prompt_ids, turn.completion_ids, turn.logprobs = list(prompt), ids, None
    return traj


def text_sequence(traj: Trajectory, tokenizer: Any, renderer: TemplateRenderer | None = None) -> TokenSequence:
    """The token sequence of a text-only trajectory (a scripted agent's, or one read back from disk), as a
    policy with ``tokenizer`` would have seen it; its turns gain token ids and no log-probs."""
    return build_sequence(_tokenise(traj, tokenizer), renderer or TemplateRenderer(tokenizer), require_logprobs=False)


def demonstration_sequences(env: str, env_kwargs: dict[str, Any], tokenizer: Any, episodes: int,
                            seed: int) -> list[TokenSequence]:
    """Token-exact sequences of ``episodes`` oracle episodes of ``env`` (seeds ``seed, seed+1, ...``)."""
    trajs = rollout(env, OracleAgent(), episodes=episodes, seed=seed, env_kwargs=env_kwargs)
    if not trajs:
        raise ConfigError("the behaviour-cloning warm start needs at least one demonstration episode")
    if is_codec(tokenizer):  # a vision-language policy: the prompts carry the episodes' images
        return [demonstration_sequence(t, tokenizer) for t in trajs]
    renderer = TemplateRenderer(tokenizer)
    # behaviour cloning takes no PPO ratio: the demonstrations need no rollout log-probs
    return [text_sequence(t, tokenizer, renderer) for t in trajs]


def sft_warmup(model: Any, seqs: list[TokenSequence], *, steps: int, lr: float, pad_id: int,
               device: torch.device, micro_batch_size: int = 4, max_grad_norm: float = 1.0,
               autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               optimizer: str = "adamw", logit_chunk_tokens: int = 0, prefix_sharing: bool = True) -> list[float]:
    """``steps`` full-batch steps of ``optimizer`` (see :func:`~rlvr.agents.trainer.optim.make_optimizer`)
    minimising the token-mean NLL of the demonstrations' policy tokens; returns the loss before each step.
    Log-probs as in the policy update (:func:`~rlvr.agents.trainer.update.policy_logprobs`, chunked over
    the vocabulary with ``logit_chunk_tokens``); micro-batches hold sequences of similar length, or with
    ``prefix_sharing`` sequences of the same prompt, forwarded as one packed row
    (:mod:`~rlvr.agents.trainer.packing`)."""
    from rlvr.agents.trainer.memory import trim_heap
    from rlvr.agents.trainer.optim import make_optimizer
    from rlvr.agents.trainer.update import packed_row, plan_micro_batches, policy_logprobs

    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr=lr)
    n_tokens = float(sum(s.num_policy_tokens for s in seqs))
    if n_tokens == 0:
        raise ConfigError("the demonstrations hold no policy tokens to imitate")
    groups = plan_micro_batches(model, seqs, range(len(seqs)), micro_batch_size, prefix_sharing=prefix_sharing)
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for idx, plan in groups:
            micro = [seqs[i] for i in idx]
            batch = collate(micro, pad_id, device=device)
            batch["model_inputs"] = multimodal_inputs(micro, batch["input_ids"], device)  # a VLM's images, else {}
            logp, _, _ = policy_logprobs(model, batch, first_prediction(micro), temperature=1.0, autocast=autocast,
                                         entropy=False, chunk=logit_chunk_tokens,
                                         packed=packed_row(model, micro, plan, device))
            loss = -(logp * batch["loss_mask"]).sum() / n_tokens
            loss.backward()
            total += loss.detach()
            del logp, loss, batch
            trim_heap(device)
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
        opt.step()
        trim_heap(device)
        losses.append(float(total))
    opt.zero_grad(set_to_none=True)
    model.eval()
    return losses
