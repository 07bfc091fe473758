"""The decoding engine: same tokens and log-probs as the uncached path, prefix reuse, continuous batching,
cache release and the context guard, on tiny random Llamas (and SmolLM2 once)."""

from __future__ import annotations

import copy
import threading

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _trainer_helpers import one_thread, reference_decode, smollm2_tokenizer, tiny_llama  # noqa: E402,F401

from rlvr.agents.decoding import DecodeEngine, choose_tokens, supports  # noqa: E402
from rlvr.agents.hf import HFAgent  # noqa: E402
from rlvr.agents.rollout import rollout  # noqa: E402
from rlvr.agents.trainer.backends import TokenExactHFAgent  # noqa: E402
from rlvr.envs import AgentEnv  # noqa: E402
from rlvr.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok)


@pytest.fixture(scope="module")
def small():
    """A 2-layer Llama over a 300-token vocabulary (token 1 ends a generation): fast engine-level checks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=1, pad_token_id=0, bos_token_id=None)
    return LlamaForCausalLM(cfg).eval()


def _ids(seed, n):
    return torch.randint(2, 300, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


class _Chat(AgentEnv):
    """A short conversation that never ends early: every reply gets a 'go on' (a no-call error observation)."""

    def __init__(self, max_turns: int = 3):
        super().__init__(max_turns=max_turns)

    def _reset_task(self, options):
        n = int(self.np_random.integers(1, 6))
        return [{"role": "user", "content": "Say something. " * n}], {"task_id": f"chat-{n}"}


def _reference(model, prompt, n, generator, temperature, top_p, eos):
    return reference_decode(model, prompt, n, generator, temperature, top_p, eos)


def test_choose_tokens_draws_as_multinomial():
    logits = torch.randn(3, 500) * 3
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    ref_gens = [torch.Generator().manual_seed(s) for s in range(3)]
    for _ in range(5):
        tokens, logp = choose_tokens(logits, gens, 0.7, 1.0)
        probs = torch.softmax(logits / 0.7, -1)
        assert tokens.tolist() == [int(torch.multinomial(probs[i], 1, generator=ref_gens[i])) for i in range(3)]
        assert torch.allclose(logp, torch.log_softmax(logits / 0.7, -1).gather(-1, tokens[:, None])[:, 0])
    greedy, _ = choose_tokens(logits, [None] * 3, 0.0, 1.0)
    assert greedy.tolist() == logits.argmax(-1).tolist()
    # the nucleus: with top_p tiny only the most likely token can be drawn
    nucleus, _ = choose_tokens(logits, gens, 1.0, 1e-6)
    assert nucleus.tolist() == greedy.tolist()


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (1.0, 0.9)])
def test_engine_matches_uncached_decoding_with_mixed_lengths(small, temperature, top_p):
    model = small
    prompts = [_ids(k, n) for k, n in enumerate((2, 13, 40, 7, 21))]
    eos = 1
    engine = DecodeEngine(model, eos_ids=[eos], temperature=temperature, top_p=top_p, max_batch=2)
    for i, p in enumerate(prompts):  # 5 requests through 2 slots: rows join as others leave
        engine.add(i, p, 10, torch.Generator().manual_seed(100 + i))
    got = {f.key: f for f in engine.run()}
    assert sorted(got) == list(range(5)) and not engine.rows and engine.width == 0
    for i, p in enumerate(prompts):
        comp, lps = _reference(model, p, 10, torch.Generator().manual_seed(100 + i), temperature, top_p, eos)
        assert got[i].completion_ids == comp
        assert got[i].logprobs == pytest.approx(lps, abs=1e-5)
        assert got[i].finish_reason == ("stop" if comp[-1] == eos else "length")


def test_engine_path_samples_what_generate_samples(model, tok):
    """HFAgent's engine and its left-padded model.generate path: same tokens under the same seeds."""
    prompts = [tok("count with me " * k)["input_ids"] for k in (2, 7, 4)]
    seeds = [11, 12, 13]
    out = {}
    for decoding in ("generate", "continuous"):
        agent = HFAgent(model, tok, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=1, batch_size=2,
                        decoding=decoding)
        out[decoding] = agent.act_ids(prompts, seeds=seeds)
    for a, b in zip(out["generate"], out["continuous"]):
        assert a.completion_ids == b.completion_ids and a.text == b.text
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_no_path_copies_vocabulary_sized_logits_to_the_host(model, tok, monkeypatch):
    """Only chosen ids and their log-probs leave the device (``.cpu()`` is a no-op on CPU, so the calls are counted)."""
    moved = []
    real = torch.Tensor.cpu

    def spy(self, *args, **kwargs):
        moved.append(tuple(self.shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    prompts = [tok("a b c")["input_ids"], tok("d e f g h")["input_ids"]]
    for decoding in ("generate", "continuous"):
        HFAgent(model, tok, temperature=1.0, top_p=0.9, max_new_tokens=3, seed=0, decoding=decoding).act_ids(
            prompts, seeds=[1, 2])
    assert moved  # the generate path brings its [B, T] ids and log-probs back
    assert all(model.config.vocab_size not in shape for shape in moved)


def test_prefix_reuse_prefills_only_the_new_tokens(small):
    model, eos = small, 1
    runs = {}
    for reuse in (False, True):
        engine = DecodeEngine(model, eos_ids=[eos], temperature=1.0, top_p=1.0, max_batch=4, prefix_reuse=reuse)
        prompt, turns = _ids(0, 9), []
        for k in range(3):
            engine.add("conv", prompt, 6, torch.Generator().manual_seed(k))
            (f,) = engine.run()
            turns.append((list(prompt), f.completion_ids, f.logprobs, dict(engine.stats)))
            prompt = prompt + f.completion_ids + _ids(10 + k, 5)
        runs[reuse] = turns
    for (p0, c0, l0, _), (p1, c1, l1, _) in zip(runs[False], runs[True]):
        assert p0 == p1 and c0 == c1 and l0 == pytest.approx(l1, abs=1e-5)
    stats = [s for *_, s in runs[True]]
    for k in (1, 2):  # turn k reuses turn k-1's prompt and completion, less the last sampled token
        prev_prompt, prev_comp = runs[True][k - 1][0], runs[True][k - 1][1]
        reused = stats[k]["reused_tokens"] - stats[k - 1]["reused_tokens"]
        assert reused == len(prev_prompt) + len(prev_comp) - 1
        assert stats[k]["prefill_tokens"] - stats[k - 1]["prefill_tokens"] == len(runs[True][k][0]) - reused
    assert runs[False][-1][3]["reused_tokens"] == 0
    assert runs[False][-1][3]["prefill_tokens"] == sum(len(p) for p, *_ in runs[False])


def test_a_prompt_that_leaves_the_cached_ids_is_prefilled_from_where_they_differ(small):
    model = small
    engine = DecodeEngine(model, eos_ids=[1], temperature=0.0, top_p=1.0, max_batch=2)
    first = _ids(3, 8)
    engine.add("c", first, 3)
    engine.run()
    edited = first[:3] + [(first[3] + 1) % 298 + 2] + _ids(4, 4)
    engine.add("c", edited, 3)
    (f,) = engine.run()
    assert engine.stats["reused_tokens"] == 3 and engine.stats["prefill_tokens"] == len(first) + len(edited) - 3
    comp, lps = _reference(model, edited, 3, None, 0.0, 1.0, 1)
    assert f.completion_ids == comp and f.logprobs == pytest.approx(lps, abs=1e-5)
    engine.release("c")
    assert engine.store == {} and engine.cached_tokens() == 0


def test_a_short_row_leaves_and_a_new_one_joins_while_a_long_row_decodes(small):
    engine = DecodeEngine(small, eos_ids=[-1], temperature=0.0, top_p=1.0, max_batch=2)
    long_p, short_p = _ids(5, 30), _ids(6, 3)
    engine.add("long", long_p, 12)
    engine.add("short", short_p, 2)
    first = engine.step()  # admits both (first token each), decodes the second
    assert [f.key for f in first] == ["short"] and [r.key for r in engine.rows] == ["long"]
    engine.add("late", _ids(7, 4), 3)
    order = [f.key for f in engine.run()]
    assert order == ["late", "long"]
    assert engine.store.keys() == {"long", "short", "late"}  # kept for their next turns until released


def test_an_env_step_runs_while_other_rows_keep_decoding(model, tok):
    """Episode 0's first env step blocks until episode 1 has played all its turns: only a rollout that
    steps each env as soon as its row finishes (and keeps decoding the others) gets there."""
    other_done = threading.Event()
    waited = []

    class Gate(gym.Wrapper):
        def step(self, action):
            out = self.env.step(action)
            ep, turn = self.env.unwrapped._seed_seen, self.env.unwrapped.turn
            if ep == 0 and turn == 1:
                waited.append(other_done.wait(timeout=60))
            if ep == 1 and (out[2] or out[3]):
                other_done.set()
            return out

    def make():
        env = _Chat(max_turns=3)
        orig = env.reset

        def reset(seed=None, options=None):
            env._seed_seen = seed
            return orig(seed=seed, options=options)

        env.reset = reset
        return Gate(env)

    agent = TokenExactHFAgent(model, tok, temperature=1.0, max_new_tokens=4, seed=0, batch_size=2)
    trajs = rollout(make, agent, episodes=2, seed=0, concurrency=2)
    assert waited == [True]
    assert [t.num_turns for t in trajs] == [3, 3]


def test_streamed_rollout_equals_lock_step_and_reuses_prefixes(model, tok):
    runs, stats = {}, {}
    for decoding in ("generate", "continuous"):
        agent = TokenExactHFAgent(model, tok, temperature=1.0, top_p=0.9, max_new_tokens=5, seed=2, batch_size=2,
                                  decoding=decoding)
        runs[decoding] = rollout(lambda: _Chat(max_turns=3), agent, episodes=4, seed=0, concurrency=3)
        stats[decoding] = agent.decode_stats
    for a, b in zip(runs["generate"], runs["continuous"]):
        assert [u.prompt_ids for u in a.turns] == [u.prompt_ids for u in b.turns]
        assert [u.completion_ids for u in a.turns] == [u.completion_ids for u in b.turns]
        for u, v in zip(a.turns, b.turns):
            assert u.logprobs == pytest.approx(v.logprobs, abs=1e-5)
    assert stats["generate"]["reused_tokens"] == 0
    assert stats["continuous"]["reused_tokens"] > stats["continuous"]["prefill_tokens"]
    assert stats["continuous"]["generated_tokens"] == stats["generate"]["generated_tokens"]


def test_caches_are_freed_when_episodes_end_and_context_overflow_truncates(model, tok):
    streams = []

    class Spy(HFAgent):
        def open_stream(self):
            streams.append(super().open_stream())
            return streams[-1]

    seen = []
    agent = Spy(model, tok, temperature=1.0, max_new_tokens=4, seed=0, batch_size=2, max_context=60)
    trajs = rollout(lambda: _Chat(max_turns=6), agent, episodes=3, seed=0, concurrency=1,
                    on_episode=lambda t: seen.append(dict(streams[0].engine.store)))
    assert seen == [{}, {}, {}]  # the one slot's cache was released at every episode end
    assert streams[0].engine.store == {} and streams[0].engine.cache.layers[0].keys is None  # closed
    for t in trajs:
        assert t.truncated and t.turns[-1].info["truncated_by"] == "context_overflow"
        assert t.turns[-1].completion_ids == [] and len(t.turns[-1].prompt_ids) + 1 > 60
        assert all(len(u.prompt_ids) + len(u.completion_ids) <= 60 for u in t.turns[:-1])


def test_engine_refuses_what_it_cannot_run(model, small, tok):
    assert supports(model)
    sliding = copy.deepcopy(small)
    sliding.config.layer_types = ["sliding_attention"] * sliding.config.num_hidden_layers
    assert not supports(sliding)
    with pytest.raises(ConfigError, match="full attention"):
        DecodeEngine(sliding, eos_ids=[0], temperature=0.0, top_p=1.0, max_batch=1)
    with pytest.raises(ConfigError, match="decoding='generate'"):
        HFAgent(sliding, tok, decoding="continuous")
    assert HFAgent(sliding, tok).decoding == "generate"
    with pytest.raises(ConfigError, match="decoding must be"):
        HFAgent(model, tok, decoding="fast")  # type: ignore[arg-type]
    engine = DecodeEngine(small, eos_ids=[0], temperature=0.0, top_p=1.0, max_batch=1)
    with pytest.raises(ConfigError, match="empty prompt"):
        engine.add("k", [], 3)
    engine.add("k", [1, 2], 3)
    with pytest.raises(ConfigError, match="already has a request in flight"):
        engine.add("k", [1, 2, 3], 3)


def test_smollm2_cached_turns_equal_the_uncached_path():
    """SmolLM2 on GuessNumber, token-exact turns: the engine with prefix reuse samples the same tokens as
    the lock-step ``generate`` path, with log-probs equal to a relative 1e-5, and prefills only the new tokens."""
    from rlvr.agents.models import load_model

    model, tokenizer = load_model("smollm2", device="cpu")
    runs, stats = {}, {}
    for decoding in ("generate", "continuous"):
        agent = TokenExactHFAgent(model, tokenizer, temperature=1.0, max_new_tokens=6, seed=4, batch_size=2,
                                  decoding=decoding)
        runs[decoding] = rollout("rlvr/GuessNumber-v0", agent, episodes=2, seed=0, concurrency=2,
                                 env_kwargs={"high": 10**6, "max_turns": 3})
        stats[decoding] = agent.decode_stats
    for a, b in zip(runs["generate"], runs["continuous"]):
        assert a.num_turns == b.num_turns == 3
        assert [u.completion_ids for u in a.turns] == [u.completion_ids for u in b.turns]
        for u, v in zip(a.turns, b.turns):  # 30 float32 layers, other shapes: up to ~1e-5 apart at |logp| ~ 5
            assert u.logprobs == pytest.approx(v.logprobs, rel=1e-5, abs=1e-5)
    fresh = sum(len(t.turns[0].prompt_ids) + sum(len(u.prompt_ids) - len(p.prompt_ids) - len(p.completion_ids) + 1
                                                 for p, u in zip(t.turns, t.turns[1:])) for t in runs["continuous"])
    # the new tokens plus each turn's last sampled token, less what the second episode copies of the first's prompt
    assert stats["continuous"]["prefill_tokens"] + stats["continuous"]["shared_tokens"] == fresh
    assert stats["continuous"]["shared_tokens"] > 0
    assert stats["generate"]["prefill_tokens"] == sum(len(u.prompt_ids) for t in runs["generate"] for u in t.turns)
