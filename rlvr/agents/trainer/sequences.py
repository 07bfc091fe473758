"""Token-exact multi-turn training sequences.

A trajectory becomes ONE token sequence: the opening prompt's ids, then for every turn the exact
ids the policy generated, then the ids of the environment's messages for that turn rendered
through the chat template (the end-of-message tokens the template puts after an assistant
message, the observation messages, and the next generation prompt). The whole chat is never
re-tokenised: re-tokenising decoded text can split it into different tokens than the policy
sampled (and templates may rewrite past messages), so the training log-probs would not be those
of the sampled tokens.

Two masks are kept apart: ``loss_mask`` is 1 exactly on policy-generated tokens (all turns);
``attention_mask`` is 1 on every real token, environment output included, so the model in
training sees what the policy saw. ``turn_spans`` give each turn's ``[start, end)`` explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlvr.errors import ConfigError

__all__ = ["TemplateRenderer", "TokenSequence", "broadcast_turn_values", "build_sequence", "collate",
           "first_prediction"]

_SENTINEL = "\u2063rlvr-sentinel\u2063"


class TemplateRenderer:
    """Renders environment messages as the token ids that follow an assistant message.

    The template is applied to a fixed short conversation ``[system, user, assistant]`` with and
    without the new messages appended; the text between them is exactly what the template adds
    for those messages, whatever the real history is. Raises :class:`ConfigError` for templates
    that rewrite earlier messages when new ones are appended (not prefix-stable).

    This is not :func:`~rlvr.agents.hf.chat_prompt_ids` (the ids of a whole conversation, used for
    every opening prompt): a continuation is the *difference* between two renderings, taken on the
    template's text (``tokenize=False``) and tokenised on its own, because ids of the whole chat would
    re-tokenise the generated turns.
    """

    def __init__(self, tokenizer: Any) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(f"{type(tokenizer).__name__} has no chat template; token-exact sequences need one")
        self.tokenizer = tokenizer
        self._base = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": _SENTINEL},
        ]
        base_text = self._render(self._base, add_generation_prompt=False)
        cut = base_text.rfind(_SENTINEL)
        if cut < 0:
            raise ConfigError("the chat template dropped the assistant message content; cannot locate turn ends")
        self._base_text = base_text
        self.closing_text = base_text[cut + len(_SENTINEL):]
        """Text the template appends after an assistant message's content (e.g. ``<|im_end|>\\n``)."""
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def closing_remainder(self, completion_ids: Sequence[int]) -> str:
        """What still has to follow ``completion_ids`` to close the assistant message.

        A completion that ended on the end-of-turn token already holds the start of the closing
        text; a truncated one (no end token) needs all of it.
        """
        if completion_ids and completion_ids[-1] in self.eos_ids:
            eos_text = self.tokenizer.decode([completion_ids[-1]], skip_special_tokens=False)
            if self.closing_text.startswith(eos_text):
                return self.closing_text[len(eos_text):]
        return self.closing_text

    def observation_text(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """Template text for ``messages`` appended after an assistant message (plus the generation prompt)."""
        text = self._render(self._base + list(messages), add_generation_prompt=add_generation_prompt)
        if not text.startswith(self._base_text):
            raise ConfigError("the chat template is not prefix-stable: appending messages changed the rendering "
                              "of earlier ones, so turns cannot be tokenised incrementally; use a template "
                              "that renders each message independently")
        return text[len(self._base_text):]

    def continuation_ids(self, completion_ids: Sequence[int], messages: Sequence[dict[str, Any]],
                         add_generation_prompt: bool = True) -> list[int]:
        """Ids that follow a completion: the closing of the assistant message, the environment's
        ``messages`` and (by default) the next generation prompt."""
        text = self.closing_remainder(completion_ids) + self.observation_text(messages, add_generation_prompt)
        return self._ids(text)


@dataclass
class TokenSequence:
    """One trajectory as a training sequence (no padding; see :func:`collate`)."""

    input_ids: list[int]
    loss_mask: list[int]
    """1 on policy-generated tokens (every turn), 0 on prompt and environment tokens."""
    attention_mask: list[int]
    """1 on every token, environment output included (padding is added by :func:`collate`)."""
    old_logprobs: list[float]
    """Rollout-policy log-probs on policy tokens, 0 elsewhere (NaN on policy tokens of turns without
    log-probs, which only ``build_sequence(..., require_logprobs=False)`` accepts)."""
    turn_spans: list[tuple[int, int]]
    """``[start, end)`` of each turn's generated tokens."""
    prompt_mismatches: list[int] = field(default_factory=list)
    """Turns whose recorded ``prompt_ids`` differ from this sequence's prefix (the policy was given a
    re-rendered context there, so its recorded log-probs are not conditioned on this sequence)."""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_policy_tokens(self) -> int:
        return int(sum(self.loss_mask))

    @property
    def boundaries(self) -> list[int]:
        """The starts of turns ``0..T-1``: the context "after the opening prompt" and "after turn ``t``'s
        observation and the next generation prompt" for every turn followed by another; the points
        information gain is scored at (``T`` boundaries give ``T - 1`` gains)."""
        return [s for s, _ in self.turn_spans]


def _describe(trajectory: Any) -> str:
    """``task 'x' (episode 3, seed 12, agent 'm')`` for error messages."""
    info = getattr(trajectory, "reset_info", None) or {}
    repro = getattr(trajectory, "repro", None)
    return (f"task {getattr(trajectory, 'task_id', '?')!r} (episode {info.get('episode', '?')}, "
            f"seed {getattr(trajectory, 'seed', None)}, agent {getattr(repro, 'model_id', None)!r})")


def build_sequence(trajectory: Any, renderer: TemplateRenderer, *, require_logprobs: bool = True) -> TokenSequence:
    """Build the token-exact sequence of a trajectory whose turns carry token ids.

    Turn 0 starts from its recorded ``prompt_ids``. After each turn but the last, the closing of
    the assistant message, the turn's observation messages and the next generation prompt are
    appended as environment tokens. A later turn's recorded ``prompt_ids`` that differ from the
    sequence built so far are reported in ``prompt_mismatches``.

    Every turn that generated tokens must carry their rollout log-probs (the PPO ratio is taken
    against them): a turn without them raises :class:`ConfigError` naming the trajectory, the turn
    and the agent. ``require_logprobs=False`` is for uses that take no ratio (behaviour cloning): the
    missing log-probs are then NaN in ``old_logprobs``, never a number that looks real. A turn that
    generated no tokens (a context overflow) needs none.
    """
    turns = list(trajectory.turns)
    if not turns:
        raise ConfigError(f"trajectory {getattr(trajectory, 'task_id', '?')!r} has no turns; nothing to train on")
    for t in turns:
        if t.prompt_ids is None or t.completion_ids is None:
            raise ConfigError("trajectory turns carry no token ids; roll out with a token-level agent "
                              "(HFAgent or the trainer's backends), not a text-only agent")
        if t.logprobs is not None and len(t.logprobs) != len(t.completion_ids):
            raise ConfigError(f"turn {t.index}: {len(t.logprobs)} log-probs for {len(t.completion_ids)} tokens")
        if require_logprobs and t.logprobs is None and t.completion_ids:
            raise ConfigError(
                f"{_describe(trajectory)}, turn {t.index}: {len(t.completion_ids)} generated tokens but no "
                "rollout log-probs; the PPO ratio needs the sampling policy's log-prob of every generated token. "
                "Roll out with an agent that returns them: the trainer's token-exact backends (HFBackend, "
                "VLLMBackend), HFAgent or VLLMAgent")
    ids = list(turns[0].prompt_ids)
    loss = [0] * len(ids)
    logps = [0.0] * len(ids)
    spans: list[tuple[int, int]] = []
    mismatches: list[int] = []
    for k, turn in enumerate(turns):
        if k > 0 and list(turn.prompt_ids) != ids:
            mismatches.append(k)
        start = len(ids)
        ids.extend(turn.completion_ids)
        loss.extend([1] * len(turn.completion_ids))
        logps.extend(turn.logprobs if turn.logprobs is not None else [math.nan] * len(turn.completion_ids))
        spans.append((start, len(ids)))
        if k + 1 < len(turns):
            cont = renderer.continuation_ids(turn.completion_ids, turn.observation)
            ids.extend(cont)
            loss.extend([0] * len(cont))
            logps.extend([0.0] * len(cont))
    return TokenSequence(ids, loss, [1] * len(ids), [float(x) for x in logps], spans, mismatches)


def broadcast_turn_values(seq: TokenSequence, per_turn: Sequence[float]) -> list[float]:
    """Per-token values: ``per_turn[t]`` on turn ``t``'s generated tokens, 0 elsewhere."""
    if len(per_turn) < len(seq.turn_spans):
        raise ConfigError(f"{len(per_turn)} per-turn values for {len(seq.turn_spans)} turns")
    out = [0.0] * len(seq)
    for (s, e), v in zip(seq.turn_spans, per_turn):
        out[s:e] = [float(v)] * (e - s)
    return out


def collate(
    seqs: Sequence[TokenSequence],
    pad_token_id: int,
    token_advantages: Sequence[Sequence[float]] | None = None,
    *,
    device: Any = None,
) -> dict[str, Any]:
    """Right-pad sequences into tensors ``input_ids, attention_mask, loss_mask, old_logprobs``
    (and ``advantages`` when given), each ``[B, L]``."""
    import torch

    if not seqs:
        raise ConfigError("collate needs at least one sequence")
    width = max(len(s) for s in seqs)
    b = len(seqs)
    out = {
        "input_ids": torch.full((b, width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((b, width), dtype=torch.long),
        "loss_mask": torch.zeros((b, width), dtype=torch.float32),
        "old_logprobs": torch.zeros((b, width), dtype=torch.float32),
    }
    if token_advantages is not None:
        out["advantages"] = torch.zeros((b, width), dtype=torch.float32)
    for i, s in enumerate(seqs):
        n = len(s)
        out["input_ids"][i, :n] = torch.tensor(s.input_ids, dtype=torch.long)
        out["attention_mask"][i, :n] = torch.tensor(s.attention_mask, dtype=torch.long)
        out["loss_mask"][i, :n] = torch.tensor(s.loss_mask, dtype=torch.float32)
        out["old_logprobs"][i, :n] = torch.tensor(s.old_logprobs, dtype=torch.float32)
        if token_advantages is not None:
            out["advantages"][i, :n] = torch.tensor(list(token_advantages[i]), dtype=torch.float32)
    if device is not None:
        out = {k: v.to(device) for k, v in out.items()}
    return out


def first_prediction(seqs: Sequence[TokenSequence]) -> int:
    """The first position whose logits predict a policy token of any of ``seqs`` (0 when none has one);
    read from the host-side masks, so finding it costs no device sync."""
    firsts = [s.loss_mask.index(1) for s in seqs if 1 in s.loss_mask]
    return max(min(firsts) - 1, 0) if firsts else 0
