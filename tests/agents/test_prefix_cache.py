"""The decoding engine's shared prefix cache: rows copy the longest cached prefix of their prompt from other
conversations, running rows and the LRU of released first prompts, with the same tokens and log-probs as
the uncached path; every weight update drops the kept caches (tiny random Llamas, SmolLM2 once)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from _trainer_helpers import one_thread, reference_decode, smollm2_tokenizer, tiny_llama  # noqa: E402,F401

from rlvr.agents.decoding import DecodeEngine, common_prefix  # noqa: E402
from rlvr.agents.rollout import rollout  # noqa: E402
from rlvr.agents.trainer.backends import HFBackend, TokenExactHFAgent  # noqa: E402
from rlvr.agents.trainer.optim import make_optimizer  # noqa: E402
from rlvr.envs import AgentEnv  # noqa: E402
from rlvr.errors import ConfigError  # noqa: E402

EOS = 1


def _small(seed: int = 0):
    """A 2-layer Llama over a 300-token vocabulary (token 1 ends a generation)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=EOS, pad_token_id=0, bos_token_id=None)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def small():
    return _small()


def _ids(seed, n):
    return torch.randint(2, 300, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _reference(model, prompt, n, generator, temperature=1.0, top_p=1.0):
    return reference_decode(model, prompt, n, generator, temperature, top_p, EOS)


def _engine(model, **kw):
    kw.setdefault("max_batch", 4)
    return DecodeEngine(model, eos_ids=[EOS], temperature=kw.pop("temperature", 1.0), top_p=kw.pop("top_p", 1.0),
                        **kw)


def _check(model, finished, requests):
    """Every finished request equals the uncached path under its seed."""
    got = {f.key: f for f in finished}
    assert sorted(got, key=str) == sorted((k for k, *_ in requests), key=str)
    for key, prompt, budget, seed in requests:
        comp, lps = _reference(model, prompt, budget, _gen(seed))
        assert got[key].completion_ids == comp
        assert got[key].logprobs == pytest.approx(lps, abs=1e-5)


def test_rows_admitted_in_one_step_prefill_a_shared_prompt_once(small):
    system = _ids(0, 40)
    requests = [(f"same{i}", system + _ids(1, 6), 8, 10 + i) for i in range(3)]  # a group: one prompt
    requests.append(("other", system + _ids(2, 9), 8, 20))  # another task, the same system prompt
    engine = _engine(small)
    for key, prompt, budget, seed in requests:
        engine.add(key, prompt, budget, _gen(seed))
    first = engine.step()  # admits all four, then decodes
    assert engine.stats["prefill_tokens"] == 46 + 1 + 1 + 9  # the group's prompt once, its last token per copy
    assert engine.stats["shared_tokens"] == 45 + 45 + 40 and engine.stats["reused_tokens"] == 0
    _check(small, first + engine.run(), requests)
    off = _engine(small, prefix_cache_tokens=0)
    for key, prompt, budget, seed in requests:
        off.add(key, prompt, budget, _gen(seed))
    off.run()
    assert off.stats["shared_tokens"] == 0 and off.stats["prefill_tokens"] == sum(len(p) for _, p, *_ in requests)


def test_a_row_copies_a_running_rows_prompt_and_generated_tokens(small):
    engine = _engine(small, max_batch=3, temperature=0.0)
    long_p = _ids(3, 20)
    engine.add("long", long_p, 30)
    engine.add("pad", _ids(4, 33), 30)  # a longer row: "long" then has padding columns in its window
    for _ in range(5):
        engine.step()
    (row,) = [r for r in engine.rows if r.key == "long"]
    seen = long_p + row.completion[:-1]  # the tokens with keys and values in its slot
    prompt = seen + _ids(5, 3)
    engine.add("follow", prompt, 6)
    engine.step()
    assert engine.stats["shared_tokens"] == len(seen)
    assert engine.stats["prefill_tokens"] == 20 + 33 + 3
    done = {f.key: f for f in engine.run()}
    comp, lps = _reference(small, prompt, 6, None, temperature=0.0)
    assert done["follow"].completion_ids == comp and done["follow"].logprobs == pytest.approx(lps, abs=1e-5)


def test_released_first_prompts_serve_later_episodes_within_the_lru_bound(small):
    a, b, c = _ids(6, 30), _ids(7, 30), _ids(8, 30)
    engine = _engine(small, max_batch=1, prefix_cache_tokens=64)
    engine.add("slot", a, 4, _gen(1))
    (f,) = engine.run()
    turn2 = a + f.completion_ids + _ids(9, 4)  # the same conversation's next turn extends its own cache
    engine.add("slot", turn2, 4, _gen(2))
    engine.run()
    assert engine.stats["reused_tokens"] == len(a) + len(f.completion_ids) - 1
    engine.release("slot")  # the episode ends: its first prompt (only) goes to the LRU
    assert engine.store == {} and engine.lru_tokens() == 30 and engine.lru[0].ids == a
    longer = a + _ids(10, 5)
    engine.add("slot", longer, 4, _gen(3))  # a new episode that starts with the same tokens
    engine.run()
    assert engine.stats["shared_tokens"] == 30
    engine.release("slot")  # its first prompt extends the entry: the longer one replaces it
    assert [e.ids for e in engine.lru] == [longer]
    engine.add("slot", longer, 4, _gen(3))
    engine.run()
    engine.release("slot")  # the same first prompt again: held once
    assert [e.ids for e in engine.lru] == [longer] and engine.stats["shared_tokens"] == 30 + 34
    for key, p in (("b", b), ("c", c)):
        engine.add(key, p, 3, _gen(4))
        engine.run()
        engine.release(key)
    assert [e.ids for e in engine.lru] == [b, c] and engine.lru_tokens() <= 64  # a, least recently used, left
    before = dict(engine.stats)
    requests = [("again", a + [7, 8], 5, 5), ("c2", c + [9], 5, 6)]
    for key, p, n, s in requests:
        engine.add(key, p, n, _gen(s))
    _check(small, engine.run(), requests)
    assert engine.stats["shared_tokens"] - before["shared_tokens"] == 30  # c from the LRU; a was evicted
    engine.clear()
    assert engine.lru == [] and engine.lru_tokens() == 0


def test_a_prefix_is_never_the_whole_prompt_and_the_knob_is_checked(small):
    p = _ids(11, 12)
    engine = _engine(small)
    engine.add("x", p, 3, _gen(0))
    engine.add("y", p, 3, _gen(0))
    out = {f.key: f for f in engine.run()}
    assert engine.stats["shared_tokens"] == 11 and engine.stats["prefill_tokens"] == 13
    assert out["x"].completion_ids == out["y"].completion_ids  # same seed, same prompt, same tokens
    engine.add("z", [5], 2)  # one token: nothing to copy, it is prefilled
    engine.run()
    assert engine.stats["prefill_tokens"] == 14
    with pytest.raises(ConfigError, match="prefix_cache_tokens must be >= 0"):
        _engine(small, prefix_cache_tokens=-1)
    plain = _engine(small, prefix_reuse=False)  # the reference path shares nothing either
    plain.add("x", p, 3, _gen(0))
    plain.add("y", p, 3, _gen(0))
    plain.run()
    assert plain.stats["shared_tokens"] == plain.stats["reused_tokens"] == 0 and plain.store == {}


@pytest.mark.parametrize("update", ["in_place", "optimizer", "bf16_adamw", "through_data", "load_state_dict"])
def test_a_weight_update_drops_every_kept_cache(update):
    model = _small(1)
    fresh_model = _small(1)
    prompt = _ids(12, 25)
    engine = _engine(model)
    engine.add("conv", prompt, 4, _gen(0))
    (f,) = engine.run()
    engine.add("done", prompt[:20], 3, _gen(1))
    engine.run()
    engine.release("done")
    assert engine.store and engine.lru
    if update == "in_place":
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    elif update == "optimizer":
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        model(torch.tensor([prompt])).logits.logsumexp(-1).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    elif update == "bf16_adamw":  # the trainer's optimiser: it writes through p.data (no version bump)
        opt = make_optimizer("adamw_bf16", model.parameters(), lr=1e-2)
        model(torch.tensor([prompt])).logits.logsumexp(-1).mean().backward()
        opt.step()
    elif update == "through_data":
        for p in model.parameters():
            p.data.mul_(0.9)
    else:
        model.load_state_dict(_small(2).state_dict())
    fresh_model.load_state_dict(model.state_dict())
    requests = [("conv", prompt + f.completion_ids + [3, 4], 5, 2), ("new", prompt[:22] + [9], 5, 3)]
    stats = dict(engine.stats)
    for key, p, n, s in requests:
        engine.add(key, p, n, _gen(s))
    got = engine.run()
    assert engine.stats["invalidations"] == 1
    fresh = _engine(fresh_model)
    for key, p, n, s in requests:
        fresh.add(key, p, n, _gen(s))
    want = {x.key: x for x in fresh.run()}
    for x in got:
        assert x.completion_ids == want[x.key].completion_ids
        assert x.logprobs == pytest.approx(want[x.key].logprobs, abs=1e-5)
    # nothing came from the old caches: only the second request copied, from the first one's new prefill
    assert engine.stats["reused_tokens"] == stats["reused_tokens"]
    assert engine.stats["shared_tokens"] - stats["shared_tokens"] == fresh.stats["shared_tokens"] == 22


class _Chat(AgentEnv):
    """A short conversation that never ends early (every reply gets a 'no call' error observation)."""

    def __init__(self, max_turns: int = 3):
        super().__init__(max_turns=max_turns)

    def _reset_task(self, options):
        n = int(self.np_random.integers(1, 4))
        return [{"role": "system", "content": "You are a helpful agent. " * 6},
                {"role": "user", "content": "Say something. " * n}], {"task_id": f"chat-{n}"}


def test_trainer_backend_rollouts_after_an_update_equal_a_fresh_agents():
    """The HF backend keeps one agent across steps; its engine (and caches) live for one rollout, and a
    weight update between rollouts gives what a fresh agent on the new weights gives."""
    tok = smollm2_tokenizer()
    model, fresh_model = tiny_llama(tok, seed=3), tiny_llama(tok, seed=3)
    backend = HFBackend(model, tok, max_new_tokens=4, temperature=1.0, top_p=1.0, batch_size=4, max_context=512,
                        seed=0)

    def play(agent):
        return rollout(lambda: _Chat(max_turns=2), agent, episodes=6, seeds=[0, 0, 0, 1, 1, 2], concurrency=4)

    play(backend.agent)
    backend.before_update()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    ids = torch.tensor([tok("a step of training")["input_ids"]])
    model(ids).logits.logsumexp(-1).mean().backward()
    opt.step()
    backend.after_update(model)
    shared_before = backend.agent.decode_stats["shared_tokens"]
    backend.reseed(7)
    after = play(backend.agent)
    assert backend.agent.decode_stats["shared_tokens"] > shared_before  # the groups share their prompts
    fresh_model.load_state_dict(model.state_dict())
    fresh = TokenExactHFAgent(fresh_model, tok, max_new_tokens=4, temperature=1.0, top_p=1.0, batch_size=4,
                              max_context=512, seed=7, prefix_cache_tokens=0)
    want = play(fresh)
    for a, b in zip(after, want):
        assert [u.completion_ids for u in a.turns] == [u.completion_ids for u in b.turns]
        for u, v in zip(a.turns, b.turns):
            assert u.logprobs == pytest.approx(v.logprobs, abs=1e-5)


@given(a=st.lists(st.integers(0, 3), max_size=80), b=st.lists(st.integers(0, 3), max_size=80),
       limit=st.integers(0, 100))
def test_common_prefix_is_the_longest_shared_prefix(a, b, limit):
    n = 0
    while n < min(limit, len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert common_prefix(a, b, limit) == n


_shared = _small(4)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mix_of_overlapping_prompts_decodes_as_without_the_shared_cache(data):
    """Prompts that branch off common stems at random points, random budgets, batch sizes and cache bounds:
    the same tokens and log-probs as with the shared cache off, and every prompt token is prefilled or copied
    exactly once."""
    stems = [_ids(100 + i, 30) for i in range(2)]
    n = data.draw(st.integers(2, 6), label="requests")
    requests = []
    for i in range(n):
        stem = stems[data.draw(st.integers(0, 1))]
        cut = data.draw(st.integers(0, 30))
        tail = data.draw(st.lists(st.integers(2, 299), min_size=1 if cut == 0 else 0, max_size=6))
        requests.append((i, stem[:cut] + tail, data.draw(st.integers(1, 5)), 50 + i))
    batch = data.draw(st.integers(1, 4), label="max_batch")
    bound = data.draw(st.sampled_from([8, 64, 2048]), label="prefix_cache_tokens")
    release = data.draw(st.booleans(), label="release each")
    out = {}
    for cache in (0, bound):
        engine = _engine(_shared, max_batch=batch, prefix_cache_tokens=cache)
        for key, prompt, budget, seed in requests:
            engine.add(key, prompt, budget, _gen(seed))
        got = []
        while engine.busy:
            for f in engine.step():
                got.append(f)
                if release:
                    engine.release(f.key)
        out[cache] = {f.key: f for f in got}
        assert engine.lru_tokens() <= cache
        st_ = engine.stats
        assert st_["prefill_tokens"] + st_["reused_tokens"] + st_["shared_tokens"] == sum(
            len(p) for _, p, *_ in requests)
    for key in out[0]:
        assert out[bound][key].completion_ids == out[0][key].completion_ids
        assert out[bound][key].logprobs == pytest.approx(out[0][key].logprobs, abs=1e-5)


def test_smollm2_group_shares_its_first_prompt_with_the_same_tokens():
    """SmolLM2 on GuessNumber, a GRPO-like group (one task seed for all episodes): the shared cache copies the
    common first prompt, and samples what the engine without it samples (log-probs to 1e-5)."""
    from rlvr.agents.models import load_model

    model, tokenizer = load_model("smollm2", device="cpu")
    runs, stats = {}, {}
    for cache in (0, 2048):
        agent = TokenExactHFAgent(model, tokenizer, temperature=1.0, max_new_tokens=6, seed=4, batch_size=3,
                                  prefix_cache_tokens=cache)
        runs[cache] = rollout("rlvr/GuessNumber-v0", agent, episodes=3, seeds=[5, 5, 5], concurrency=3,
                              env_kwargs={"high": 10**6, "max_turns": 2})
        stats[cache] = agent.decode_stats
    for a, b in zip(runs[0], runs[2048]):
        assert [u.completion_ids for u in a.turns] == [u.completion_ids for u in b.turns]
        for u, v in zip(a.turns, b.turns):
            assert u.logprobs == pytest.approx(v.logprobs, rel=1e-5, abs=1e-5)
    first = len(runs[0][0].turns[0].prompt_ids)
    assert stats[2048]["shared_tokens"] >= 2 * (first - 1)  # episodes 2 and 3 copy episode 1's first prompt
    s0, s1 = stats[0], stats[2048]
    seen = s1["prefill_tokens"] + s1["shared_tokens"] + s1["reused_tokens"]
    assert seen == s0["prefill_tokens"] + s0["reused_tokens"]
    assert s1["prefill_tokens"] < s0["prefill_tokens"]
