"""``VLMAgent``: a transformers vision-language model as an agent, with exact token ids and log-probs.

Images travel as content parts of the conversation (``{"type": "image", "image": <PIL image>}``, what
``rlvr/Grounding-v0`` sends). A *codec* turns template text and its images into token ids and model
inputs, expanding each image placeholder into the number of image tokens the vision tower produces:

* :class:`QwenVLCodec` (Qwen2-VL, Qwen2.5-VL, Qwen3-VL-style models): a tokenizer plus an image
  processor. The placeholder ``<|image_pad|>`` of the chat template is expanded here to
  ``prod(grid_thw) / merge_size**2`` copies, and ``mm_token_type_ids`` (1 on image tokens) is passed, as
  M-RoPE needs it. (The Qwen processors need torchvision for their video processor; this codec does not.)
* :class:`ProcessorCodec` (Idefics3 / SmolVLM and any processor that expands its own image tokens): the
  model's ``processor``.

Prompts are token-exact across turns: the first turn renders the chat template; later turns extend
the previous prompt with the generated ids and only the new messages (closing text, observation
text with its images, generation prompt), as :mod:`rlvr.agents.trainer.backends` does for text, so the
training sequence is the very context the policy sampled from. Image tokens are never sampled (they
are suppressed in generation): a generated image token would not match any image.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

from rlvr.agents.base import Generation, Messages, check_row_seeds, turn_seed
from rlvr.agents.trainer.sequences import TemplateRenderer
from rlvr.agents.trajectory import Turn, text_hash
from rlvr.errors import ConfigError

__all__ = ["MultimodalRenderer", "ProcessorCodec", "QwenVLCodec", "VLMAgent", "images_of", "is_codec",
           "is_vision_checkpoint", "load_vlm"]


def images_of(messages: Sequence[dict[str, Any]]) -> list[Any]:
    """The images of ``messages``' content parts, in order."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for p in content:
                if isinstance(p, dict) and p.get("type") == "image":
                    img = p.get("image")
                    if img is None:
                        raise ConfigError("an image content part without an 'image' object (a PIL image); "
                                          "load url/path images before handing them to a VLM")
                    out.append(img)
    return out


def is_codec(obj: Any) -> bool:
    """Whether ``obj`` is a VLM codec (what :class:`VLMAgent` and the trainer take in place of a tokenizer)."""
    return isinstance(obj, (QwenVLCodec, ProcessorCodec))


class _Codec:
    """Shared parts: the tokenizer (with a chat template and a pad token) and the image token ids."""

    tokenizer: Any
    image_token: str
    image_token_id: int
    suppress_ids: list[int]

    def _setup_tokenizer(self, chat_template: str | None) -> None:
        tok = self.tokenizer
        if chat_template is not None:
            tok.chat_template = chat_template
        if getattr(tok, "chat_template", None) is None:
            raise ConfigError(f"{type(tok).__name__} has no chat template; pass chat_template=")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.chat_template = tok.chat_template

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def eos_token_id(self) -> Any:
        return self.tokenizer.eos_token_id

    def decode(self, ids: Sequence[int], **kw: Any) -> str:
        return self.tokenizer.decode(list(ids), **kw)

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)

    def count_images(self, ids: Sequence[int]) -> int:
        """Image tokens in ``ids``."""
        return sum(1 for t in ids if t == self.image_token_id)


class QwenVLCodec(_Codec):
    """Qwen-VL token expansion without the Qwen processor class.

    Args:
        tokenizer: the model's tokenizer (its chat template renders image parts as
            ``<|vision_start|><|image_pad|><|vision_end|>``), or pass ``chat_template``.
        image_processor: a Qwen2-VL image processor (``Qwen2VLImageProcessorPil`` works without torchvision).
        merge_size: the vision tower's spatial merge (default: the processor's, else 2).
    """

    def __init__(self, tokenizer: Any, image_processor: Any, *, merge_size: int | None = None,
                 chat_template: str | None = None, image_token: str = "<|image_pad|>") -> None:
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.merge = int(merge_size or getattr(image_processor, "merge_size", 2))
        self.image_token = image_token
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(image_token))
        self.suppress_ids = sorted({int(tokenizer.convert_tokens_to_ids(t)) for t in
                                    (image_token, "<|vision_start|>", "<|vision_end|>", "<|video_pad|>")
                                    if tokenizer.convert_tokens_to_ids(t) not in (None, tokenizer.unk_token_id)})
        self._setup_tokenizer(chat_template)

    def process(self, images: Sequence[Any]) -> dict[str, Any]:
        """``pixel_values`` and ``image_grid_thw`` of ``images`` (empty dict for none)."""
        if not images:
            return {}
        out = self.image_processor(images=list(images), return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}

    def encode(self, text: str, images: Sequence[Any]) -> list[int]:
        """Token ids of template ``text`` whose placeholders stand for ``images``, expanded."""
        n = text.count(self.image_token)
        if n != len(images):
            raise ConfigError(f"the text has {n} {self.image_token} placeholder(s) for {len(images)} image(s)")
        if images:
            grids = self.process(images)["image_grid_thw"]
            pieces = text.split(self.image_token)  # one more piece than images
            expanded = [pieces[0]]
            for grid, piece in zip(grids, pieces[1:]):
                expanded += [self.image_token * (int(grid.prod()) // self.merge ** 2), piece]
            text = "".join(expanded)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def model_inputs(self, images_per_row: Sequence[Sequence[Any]], input_ids: Any) -> dict[str, Any]:
        """Extra forward inputs of a batch: pixel values and grids of every row's images in order, and the
        token types M-RoPE needs (1 on image tokens)."""
        flat = [im for row in images_per_row for im in row]
        if not flat:
            return {}
        out = self.process(flat)
        out["mm_token_type_ids"] = (input_ids == self.image_token_id).long()
        return out


class ProcessorCodec(_Codec):
    """A processor that expands its own image tokens (Idefics3 / SmolVLM).

    Args:
        processor: e.g. ``Idefics3Processor`` (its tokenizer, image processor and ``image_token``).
        chat_template: overrides the processor's (image parts must render as its image token).
    """

    def __init__(self, processor: Any, *, chat_template: str | None = None) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token = getattr(processor, "image_token", "<image>")
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(self.image_token))
        special = [self.image_token, getattr(processor, "fake_image_token", None), getattr(processor, "global_image_tag", None)]
        self.suppress_ids = sorted({int(self.tokenizer.convert_tokens_to_ids(t)) for t in special if t})
        template = chat_template or getattr(processor, "chat_template", None)
        self._setup_tokenizer(template)

    def encode(self, text: str, images: Sequence[Any]) -> list[int]:
        n = text.count(self.image_token)
        if n != len(images):
            raise ConfigError(f"the text has {n} {self.image_token} placeholder(s) for {len(images)} image(s)")
        if not images:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        out = self.processor(text=[text], images=[list(images)], add_special_tokens=False)
        return [int(t) for t in out["input_ids"][0]]

    def model_inputs(self, images_per_row: Sequence[Sequence[Any]], input_ids: Any) -> dict[str, Any]:
        """``pixel_values`` ``[B, N, C, H, W]`` (rows padded with all-zero images, which the model skips) and
        ``pixel_attention_mask``."""
        import torch

        if not any(images_per_row):
            return {}
        rows = [self.processor.image_processor(images=[list(r)], return_tensors="pt") if r else None
                for r in images_per_row]
        shape = next(r["pixel_values"].shape for r in rows if r is not None)
        n = max(r["pixel_values"].shape[1] for r in rows if r is not None)
        pv = torch.zeros((len(rows), n, *shape[2:]), dtype=torch.float32)
        pm = torch.zeros((len(rows), n, *shape[3:]), dtype=torch.bool)
        for i, r in enumerate(rows):
            if r is not None:
                k = r["pixel_values"].shape[1]
                pv[i, :k] = r["pixel_values"][0]
                if "pixel_attention_mask" in r:
                    pm[i, :k] = r["pixel_attention_mask"][0].bool()
                else:
                    pm[i, :k] = True
        return {"pixel_values": pv, "pixel_attention_mask": pm}


class MultimodalRenderer(TemplateRenderer):
    """A :class:`~rlvr.agents.trainer.sequences.TemplateRenderer` whose continuations carry images: the
    observation text is rendered by the chat template (image parts become placeholders) and encoded by
    the codec, which expands each placeholder for its image."""

    def __init__(self, codec: Any) -> None:
        super().__init__(codec.tokenizer)
        self.codec = codec

    def continuation_ids(self, completion_ids: Sequence[int], messages: Sequence[dict[str, Any]],
                         add_generation_prompt: bool = True) -> list[int]:
        text = self.closing_remainder(completion_ids) + self.observation_text(messages, add_generation_prompt)
        return self.codec.encode(text, images_of(messages))


class VLMAgent:
    """A transformers vision-language model as a batched, token-exact agent.

    Args:
        model: a loaded ``*ForConditionalGeneration`` model, or a checkpoint folder / hub id to load
            with :func:`load_vlm` (then no ``codec``).
        codec: :class:`QwenVLCodec` or :class:`ProcessorCodec` for that model.
        max_new_tokens, temperature, top_p, batch_size, max_context, seed: as for
            :class:`~rlvr.agents.hf.HFAgent` (per-row seeds make each sample independent of its batch).
    """

    def __init__(self, model: Any, codec: Any = None, *, max_new_tokens: int = 128, temperature: float = 0.7,
                 top_p: float = 1.0, batch_size: int = 8, max_context: int | None = None, seed: int | None = None,
                 device: str | None = None) -> None:
        if isinstance(model, str):
            model, codec = load_vlm(model, device=device)
        if not is_codec(codec):
            raise ConfigError(f"VLMAgent needs a QwenVLCodec or ProcessorCodec, got {type(codec).__name__}")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ConfigError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        self.model, self.codec = model, codec
        self.tokenizer = codec.tokenizer
        self.renderer = MultimodalRenderer(codec)
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.batch_size, self.seed, self._calls = batch_size, seed, 0
        text_cfg = getattr(getattr(model, "config", None), "text_config", None)
        self.max_context = max_context or getattr(text_cfg, "max_position_embeddings", None) or 8192
        self.model_id = getattr(model, "name_or_path", None) or type(model).__name__
        self.chat_template_hash = text_hash(codec.chat_template)
        eos = codec.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])

    def encode(self, messages: Messages) -> list[int]:
        """Prompt ids of a whole conversation (chat template with the generation prompt, images expanded)."""
        return self.codec.encode(self.codec.render(messages), images_of(messages))

    def act(self, messages: Messages) -> str:
        return self.act_batch([messages])[0].text

    def reseed(self, seed: int) -> None:
        self.seed, self._calls = seed, 0

    def act_batch(self, batch: Sequence[Messages], seeds: Sequence[int] | None = None,
                  histories: Sequence[Sequence[Turn]] | None = None) -> list[Generation]:
        """One generation per conversation; later turns extend ``histories[i][-1]``'s exact ids."""
        check_row_seeds(seeds, len(batch), "act_batch", "conversations")
        histories = histories if histories is not None else [[] for _ in batch]
        if len(histories) != len(batch):
            raise ConfigError(f"act_batch got {len(histories)} histories for {len(batch)} conversations")
        prompts, images = [], []
        for messages, turns in zip(batch, histories):
            last = turns[-1] if turns else None
            if last is not None and last.prompt_ids is not None and last.completion_ids is not None:
                ids = [*last.prompt_ids, *last.completion_ids,
                       *self.renderer.continuation_ids(last.completion_ids, last.observation)]
            else:
                ids = self.encode(messages)
            prompts.append(ids)
            images.append(images_of(messages))
        results: list[Generation | None] = [None] * len(batch)
        todo = [i for i, p in enumerate(prompts) if len(p) + 1 <= self.max_context]
        for i in set(range(len(batch))) - set(todo):
            results[i] = Generation("", prompts[i], [], [], "context_overflow")
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start:start + self.batch_size]
            gens = self._generate([prompts[i] for i in idx], [images[i] for i in idx],
                                  [seeds[i] for i in idx] if seeds is not None else None)
            for i, g in zip(idx, gens):
                results[i] = g
        return results  # type: ignore[return-value]

    def _generate(self, prompts: list[list[int]], images: list[list[Any]], row_seeds: Sequence[int] | None) -> list[Generation]:
        import torch

        from rlvr.agents.hf import _row_sampler, generations_from

        device = next(self.model.parameters()).device
        width, pad = max(len(p) for p in prompts), self.codec.pad_token_id
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p):] = 1
        extra = {k: v.to(device) for k, v in self.codec.model_inputs(images, input_ids).items()}
        sample = self.temperature > 0
        kwargs: dict[str, Any] = dict(max_new_tokens=max(1, min(self.max_new_tokens, self.max_context - width)),
                                      do_sample=sample, pad_token_id=pad, eos_token_id=sorted(self.eos_ids) or None,
                                      return_dict_in_generate=True, output_logits=True,
                                      suppress_tokens=self.codec.suppress_ids or None)
        per_row = sample and row_seeds is not None and self.seed is not None
        if per_row:
            from transformers import LogitsProcessorList

            gens = [torch.Generator().manual_seed(turn_seed(self.seed, r)) for r in row_seeds]  # type: ignore[arg-type]
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None,
                          logits_processor=LogitsProcessorList([_row_sampler(gens, self.temperature, self.top_p)]))
        elif sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        self._calls += 1
        rng = torch.random.fork_rng(devices=[]) if self.seed is not None and sample and not per_row else contextlib.nullcontext()
        with rng, torch.no_grad():
            if self.seed is not None and sample and not per_row:
                torch.manual_seed(self.seed * 1_000_003 + self._calls)
            out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attn.to(device), **extra, **kwargs)
        return generations_from(prompts, out.sequences[:, width:], out.logits, self.temperature if sample else 1.0,
                                self.eos_ids, lambda ids: self.codec.decode(ids, skip_special_tokens=True))


def is_vision_checkpoint(path: str) -> bool:
    """Whether ``path`` (a folder or a cached hub id) holds a vision-language model (its config has a
    ``vision_config``); ``False`` when it cannot be read."""
    import json
    from pathlib import Path

    cfg = Path(path) / "config.json"
    if cfg.is_file():
        try:
            return "vision_config" in json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
    try:
        from transformers import AutoConfig

        return hasattr(AutoConfig.from_pretrained(path, local_files_only=True), "vision_config")
    except (OSError, ValueError, ImportError):
        return False


def load_vlm(path: str, *, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """Load a vision-language checkpoint (hub id or folder) and its codec: Qwen-VL models get a
    :class:`QwenVLCodec` (no torchvision needed), others their processor in a :class:`ProcessorCodec`."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ConfigError(f"could not load the vision-language model {path!r}: {e}") from e
    if device:
        model.to(device)
    if config.model_type.startswith("qwen"):
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        codec: Any = QwenVLCodec(AutoTokenizer.from_pretrained(path), Qwen2VLImageProcessorPil.from_pretrained(path))
    else:
        codec = ProcessorCodec(AutoProcessor.from_pretrained(path))
    return model.eval(), codec
