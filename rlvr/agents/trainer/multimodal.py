"""Multimodal training sequences: token-exact sequences whose contexts hold images.

A trajectory of a vision-language policy becomes one :class:`MultimodalSequence`: the token ids
:func:`~rlvr.agents.trainer.sequences.build_sequence` builds with a
:class:`~rlvr.agents.vlm.MultimodalRenderer` (each observation's images expanded into their image
tokens, exactly as the policy was prompted), plus the images themselves in order (the opening
messages', then each observation's but the last turn's, which the sequence does not include).

Masks: ``loss_mask`` is 1 on policy-generated tokens only, so image tokens and environment text are
never trained on (checked here: a sequence whose image tokens would carry loss is refused);
``attention_mask`` keeps every token visible. Forward inputs (pixel values, grid sizes, M-RoPE token
types or pixel masks) are built per micro-batch by :func:`multimodal_inputs`, the only thing the
training loop adds to a text model's forward.

:class:`VLMBackend` is the rollout backend for such a policy (sampling from the model being trained).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from rlvr.agents.trainer.sequences import TemplateRenderer, TokenSequence, build_sequence
from rlvr.errors import ConfigError

__all__ = ["MultimodalSequence", "VLMBackend", "build_multimodal_sequence", "demonstration_sequence", "image_token_mask",
           "multimodal_inputs", "renderer_for", "sequence_for"]


@dataclass
class MultimodalSequence(TokenSequence):
    """A :class:`~rlvr.agents.trainer.sequences.TokenSequence` with the images its context shows."""

    images: list[Any] = field(default_factory=list)
    """The images of the sequence, in the order their tokens appear."""
    codec: Any = None
    """The codec that expanded them (it builds the forward inputs)."""

    @property
    def num_image_tokens(self) -> int:
        return self.codec.count_images(self.input_ids) if self.codec is not None else 0


def image_token_mask(seq: MultimodalSequence) -> list[int]:
    """1 on the sequence's image tokens, 0 elsewhere."""
    tid = seq.codec.image_token_id
    return [int(t == tid) for t in seq.input_ids]


def build_multimodal_sequence(trajectory: Any, renderer: Any, *, require_logprobs: bool = True) -> MultimodalSequence:
    """The token-exact sequence of a trajectory rolled out by a :class:`~rlvr.agents.vlm.VLMAgent`.

    Raises :class:`ConfigError` when a generated turn holds image tokens (the policy sampled one; the
    agent suppresses them) or when the number of image placeholders does not match the images.
    """
    from rlvr.agents.vlm import images_of

    base = build_sequence(trajectory, renderer, require_logprobs=require_logprobs)
    codec = renderer.codec
    turns = list(trajectory.turns)
    images = images_of(trajectory.initial_messages)
    for turn in turns[:-1]:
        images.extend(images_of(turn.observation))
    for k, turn in enumerate(turns):
        if any(t == codec.image_token_id for t in turn.completion_ids or ()):
            raise ConfigError(f"task {trajectory.task_id!r}, turn {k}: the policy generated the image token "
                              f"{codec.image_token!r}; roll out with VLMAgent, which never samples it")
    seq = MultimodalSequence(base.input_ids, base.loss_mask, base.attention_mask, base.old_logprobs, base.turn_spans,
                             base.prompt_mismatches, images=images, codec=codec)
    if images and seq.num_image_tokens == 0 or not images and seq.num_image_tokens:
        raise ConfigError(f"task {trajectory.task_id!r}: {len(images)} image(s) but {seq.num_image_tokens} image "
                          "tokens in the sequence; the chat template must render image parts as the codec's placeholder")
    if any(m and t == codec.image_token_id for m, t in zip(seq.loss_mask, seq.input_ids)):
        raise ConfigError(f"task {trajectory.task_id!r}: image tokens inside the loss mask")
    return seq


def demonstration_sequence(trajectory: Any, codec: Any) -> MultimodalSequence:
    """The behaviour-cloning sequence of a text-only trajectory (an oracle episode) for a VLM policy: the
    opening prompt encoded with its images, each action tokenised plus the end-of-turn token, no log-probs."""
    from rlvr.agents.vlm import MultimodalRenderer, images_of

    prompt = codec.encode(codec.render(trajectory.initial_messages), images_of(trajectory.initial_messages))
    eos = codec.eos_token_id if isinstance(codec.eos_token_id, int) else list(codec.eos_token_id)[0]
    for turn in trajectory.turns:
        ids = list(codec.tokenizer(turn.action, add_special_tokens=False)["input_ids"]) + [eos]
        turn.prompt_ids, turn.completion_ids, turn.logprobs = list(prompt), ids, None
    return build_multimodal_sequence(trajectory, MultimodalRenderer(codec), require_logprobs=False)


def renderer_for(tokenizer: Any) -> TemplateRenderer:
    """The renderer of a policy: a :class:`~rlvr.agents.vlm.MultimodalRenderer` for a VLM codec, else the
    text :class:`~rlvr.agents.trainer.sequences.TemplateRenderer`."""
    from rlvr.agents.vlm import MultimodalRenderer, is_codec

    return MultimodalRenderer(tokenizer) if is_codec(tokenizer) else TemplateRenderer(tokenizer)


def sequence_for(trajectory: Any, renderer: TemplateRenderer) -> TokenSequence:
    """:func:`build_multimodal_sequence` under a multimodal renderer, else
    :func:`~rlvr.agents.trainer.sequences.build_sequence`."""
    if hasattr(renderer, "codec"):
        return build_multimodal_sequence(trajectory, renderer)
    return build_sequence(trajectory, renderer)


def multimodal_inputs(seqs: Sequence[TokenSequence], input_ids: Any, device: Any = None) -> dict[str, Any]:
    """The extra forward inputs of a collated micro-batch (``input_ids`` ``[B, L]``): pixel values and
    the codec's per-image inputs for every row's images, in row order; ``{}`` for text sequences."""
    mm = [s for s in seqs if isinstance(s, MultimodalSequence) and s.images]
    if not mm:
        return {}
    codec = mm[0].codec
    rows = [s.images if isinstance(s, MultimodalSequence) else [] for s in seqs]
    out = codec.model_inputs(rows, input_ids.cpu())
    return {k: v.to(device) for k, v in out.items()} if device is not None else out


class VLMBackend:
    """Rollouts with a :class:`~rlvr.agents.vlm.VLMAgent` on the model being trained (CPU or GPU)."""

    name = "vlm"

    def __init__(self, model: Any, codec: Any, *, max_new_tokens: int, temperature: float, top_p: float,
                 batch_size: int, max_context: int, seed: int) -> None:
        from rlvr.agents.vlm import VLMAgent

        self.agent = VLMAgent(model, codec, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                              batch_size=batch_size, max_context=max_context, seed=seed)

    def reseed(self, seed: int) -> None:
        self.agent.reseed(seed)

    def before_update(self) -> None:
        return None

    def after_update(self, model: Any) -> None:
        return None
