"""Token-exact sequences and masks on a hand-built two-turn trajectory (SmolLM2's chat template)."""

import pytest

from _trainer_helpers import smollm2_tokenizer, tiny_llama
from rlvr.agents.trainer.sequences import TemplateRenderer, broadcast_turn_values, build_sequence, collate
from rlvr.agents.trajectory import Trajectory, Turn
from rlvr.errors import ConfigError

SYSTEM = {"role": "system", "content": "Find the number. Use the guess tool."}
USER = {"role": "user", "content": "Between 1 and 9."}
ACTION0 = '<tool_call>{"name": "guess", "arguments": {"number": 5}}</tool_call>'
ACTION1 = "<answer>7</answer>"
OBS0 = [{"role": "tool", "content": "higher"}]
OBS1 = [{"role": "user", "content": "Correct!"}]


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _two_turn(tok, truncated_first=False):
    """Turn 0 is sampled as a NON-canonical split of its text ('gu' + 'ess' instead of 'guess'),
    as a sampling policy may do; turn 1 is canonical. Both end with <|im_end|> unless truncated."""
    eos = tok.eos_token_id
    head, tail = ACTION0.split("guess", 1)
    c0 = _ids(tok, head + "gu") + _ids(tok, "ess" + tail) + ([] if truncated_first else [eos])
    c1 = _ids(tok, ACTION1) + [eos]
    assert tok.decode(c0, skip_special_tokens=True) == ACTION0
    p0 = tok.apply_chat_template([SYSTEM, USER], add_generation_prompt=True, tokenize=False)
    p0_ids = _ids(tok, p0)
    closing = "" if truncated_first else "\n"
    closing = "<|im_end|>\n" if truncated_first else closing
    p1_ids = p0_ids + c0 + _ids(tok, closing + "<|im_start|>tool\nhigher<|im_end|>\n<|im_start|>assistant\n")
    turns = [
        Turn(0, ACTION0, OBS0, 0.1, {"progress": 0.1}, prompt_ids=p0_ids, completion_ids=c0,
             logprobs=[-0.5] * len(c0)),
        Turn(1, ACTION1, OBS1, 1.0, {"outcome": 1.0}, terminated=True, prompt_ids=p1_ids, completion_ids=c1,
             logprobs=[-0.25] * len(c1)),
    ]
    return Trajectory("rlvr/GuessNumber-v0", "t", 0, [SYSTEM, USER], turns), p0_ids, c0, c1


def test_two_turn_sequence_masks_and_spans(tok):
    traj, p0, c0, c1 = _two_turn(tok)
    seq = build_sequence(traj, TemplateRenderer(tok))
    env_ids = _ids(tok, "\n<|im_start|>tool\nhigher<|im_end|>\n<|im_start|>assistant\n")
    assert seq.input_ids == p0 + c0 + env_ids + c1
    a0, a1 = len(p0), len(p0) + len(c0) + len(env_ids)
    assert seq.turn_spans == [(a0, a0 + len(c0)), (a1, a1 + len(c1))]
    assert seq.loss_mask == [0] * len(p0) + [1] * len(c0) + [0] * len(env_ids) + [1] * len(c1)
    assert seq.attention_mask == [1] * len(seq)  # tool output is attended to, only not trained on
    higher = _ids(tok, "higher")
    pos = next(i for i in range(a0, a1) if seq.input_ids[i : i + len(higher)] == higher)
    assert seq.loss_mask[pos] == 0 and seq.attention_mask[pos] == 1
    assert seq.old_logprobs[a0 : a0 + len(c0)] == [-0.5] * len(c0)
    assert seq.old_logprobs[a1:] == [-0.25] * len(c1) and sum(seq.old_logprobs[:a0]) == 0.0
    assert seq.num_policy_tokens == len(c0) + len(c1)
    assert seq.boundaries == [a0, a1]
    assert seq.prompt_mismatches == []
    # a turn-1 prompt re-rendered from the chat text (not extended token-exactly) is reported
    traj.turns[1].prompt_ids = _ids(tok, tok.apply_chat_template(traj.messages[:3] + OBS0, tokenize=False,
                                                                 add_generation_prompt=True))
    assert build_sequence(traj, TemplateRenderer(tok)).prompt_mismatches == [1]


def test_retokenising_the_final_chat_differs(tok):
    """The decoded text is the same, but re-tokenising the whole chat changes turn 0's tokens."""
    traj, p0, c0, c1 = _two_turn(tok)
    seq = build_sequence(traj, TemplateRenderer(tok))
    chat = tok.apply_chat_template(traj.messages[:-1], tokenize=False)  # through the final answer
    retok = _ids(tok, chat)
    ours = seq.input_ids + _ids(tok, "\n")  # the template's newline after the last <|im_end|>
    assert tok.decode(ours) == tok.decode(retok) == chat
    assert retok != ours
    first = next(i for i, (a, b) in enumerate(zip(retok, ours)) if a != b)
    s0, e0 = seq.turn_spans[0]
    assert s0 <= first < e0  # the drift sits inside the policy's own tokens of turn 0
    assert ours[s0:e0] == c0 and retok[s0:e0] != c0  # training on retok would score tokens never sampled


def test_truncated_completion_gets_the_closing_tokens(tok):
    traj, p0, c0, c1 = _two_turn(tok, truncated_first=True)
    seq = build_sequence(traj, TemplateRenderer(tok))
    env_ids = _ids(tok, "<|im_end|>\n<|im_start|>tool\nhigher<|im_end|>\n<|im_start|>assistant\n")
    assert seq.input_ids == p0 + c0 + env_ids + c1
    assert seq.loss_mask[len(p0) + len(c0)] == 0  # the closing <|im_end|> was not generated: not trained


def test_broadcast_and_collate(tok):
    traj, p0, c0, c1 = _two_turn(tok)
    seq = build_sequence(traj, TemplateRenderer(tok))
    adv = broadcast_turn_values(seq, [2.0, -1.0])
    (s0, e0), (s1, e1) = seq.turn_spans
    assert set(adv[s0:e0]) == {2.0} and set(adv[s1:e1]) == {-1.0}
    assert all(a == 0.0 for i, a in enumerate(adv) if seq.loss_mask[i] == 0)
    short = build_sequence(Trajectory("e", "t", 0, [SYSTEM, USER], [traj.turns[1]]), TemplateRenderer(tok))
    batch = collate([seq, short], tok.pad_token_id, [adv, broadcast_turn_values(short, [3.0])])
    assert batch["input_ids"].shape == (2, len(seq))
    assert batch["attention_mask"][1].sum().item() == len(short)
    assert batch["loss_mask"][1, len(short):].sum().item() == 0
    assert batch["advantages"][0].tolist() == pytest.approx(adv)
    with pytest.raises(ConfigError, match="per-turn values"):
        broadcast_turn_values(seq, [1.0])


def test_errors_for_untokenised_or_empty_trajectories(tok):
    r = TemplateRenderer(tok)
    with pytest.raises(ConfigError, match="no turns"):
        build_sequence(Trajectory("e", "t", 0, [USER], []), r)
    text_only = Trajectory("e", "t", 0, [USER], [Turn(0, "hi", [], 0.0, {})])
    with pytest.raises(ConfigError, match="token-level agent"):
        build_sequence(text_only, r)


def test_renderer_rejects_templates_that_rewrite_history(tok):
    import copy

    bad = copy.deepcopy(tok)
    bad.chat_template = ("{{ messages|length }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>"
                         "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    with pytest.raises(ConfigError, match="prefix-stable"):
        TemplateRenderer(bad).observation_text(OBS0)


def test_next_prompt_ids_extends_the_turns_own_ids(tok):
    """The next prompt is the previous prompt + the sampled ids (even a non-canonical split) + the observation."""
    from rlvr.agents.hf import chat_prompt_ids
    from rlvr.agents.trainer.backends import next_prompt_ids

    traj, p0, c0, c1 = _two_turn(tok)
    renderer = TemplateRenderer(tok)
    assert next_prompt_ids(traj.turns[0], renderer) == traj.turns[1].prompt_ids
    re_rendered = chat_prompt_ids(tok, [SYSTEM, USER, {"role": "assistant", "content": ACTION0}, *OBS0])
    assert traj.turns[1].prompt_ids != re_rendered  # what a text re-rendering would have given instead
    traj.turns[0].completion_ids = None
    assert next_prompt_ids(traj.turns[0], renderer) is None  # a text-only turn: nothing to continue from


def test_token_exact_agent_continues_each_group_member_from_its_turns(tok):
    """G rollouts share their opening prompt; each later prompt extends that rollout's own turn ids."""
    from rlvr.agents.trainer.backends import TokenExactHFAgent

    agent = TokenExactHFAgent(tiny_llama(tok), tok, max_new_tokens=6, temperature=1.0, seed=3)
    convs = [[SYSTEM, USER] for _ in range(3)]
    first = agent.act_batch(convs)
    assert len({tuple(g.completion_ids) for g in first}) == 3
    assert all(g.prompt_ids == agent.encode([SYSTEM, USER]) for g in first)  # no history: the chat template
    turns = [Turn(0, g.text, OBS0, 0.0, {}, prompt_ids=g.prompt_ids, completion_ids=g.completion_ids,
                  logprobs=g.logprobs) for g in first]
    nxt = [c + [{"role": "assistant", "content": g.text}] + OBS0 for c, g in zip(convs, first)]
    second = agent.act_batch(nxt, seeds=[1, 2, 3], histories=[[t] for t in turns])
    renderer = TemplateRenderer(tok)
    for g, s in zip(first, second):
        assert s.prompt_ids == g.prompt_ids + g.completion_ids + renderer.continuation_ids(g.completion_ids, OBS0)
    for t, s in zip(turns, second):  # the training sequence of the two turns has exactly the sampled prefix
        t2 = Turn(1, s.text, OBS1, 0.0, {}, prompt_ids=s.prompt_ids, completion_ids=s.completion_ids,
                  logprobs=s.logprobs)
        seq = build_sequence(Trajectory("rlvr/GuessNumber-v0", "t", 0, [SYSTEM, USER], [t, t2]), renderer)
        assert seq.prompt_mismatches == []
    assert agent.act_batch(nxt[:1])[0].prompt_ids == agent.encode(nxt[0])  # no histories: the chat template
    with pytest.raises(ConfigError, match="got 1 histories for 2 conversations"):
        agent.act_batch(nxt[:2], histories=[[turns[0]]])


def test_turn_without_rollout_logprobs_raises_naming_trajectory_turn_and_agent(tok):
    """No silent 0.0 old log-prob: the PPO ratio would be exp(logp - 0) on those tokens."""
    from rlvr.agents.trajectory import ReproRecord

    traj, p0, c0, c1 = _two_turn(tok)
    traj.turns[1].logprobs = None
    traj.task_id, traj.seed, traj.reset_info = "guess-1-9-7", 12, {"episode": 3}
    traj.repro = ReproRecord("rlvr/GuessNumber-v0", 0, 12, "0.1.0", model_id="my-text-agent")
    with pytest.raises(ConfigError) as e:
        build_sequence(traj, TemplateRenderer(tok))
    msg = str(e.value)
    assert msg.startswith(f"task 'guess-1-9-7' (episode 3, seed 12, agent 'my-text-agent'), turn 1: {len(c1)} "
                          "generated tokens but no rollout log-probs")
    assert "the trainer's token-exact backends (HFBackend, VLLMBackend)" in msg


def test_missing_logprobs_are_nan_only_when_explicitly_allowed(tok):
    """Behaviour cloning takes no ratio and opts out; the gap is NaN, never a plausible 0.0."""
    import math

    traj, p0, c0, c1 = _two_turn(tok)
    traj.turns[0].logprobs = None
    seq = build_sequence(traj, TemplateRenderer(tok), require_logprobs=False)
    (s0, e0), (s1, e1) = seq.turn_spans
    assert all(math.isnan(x) for x in seq.old_logprobs[s0:e0])
    assert seq.old_logprobs[s1:e1] == [-0.25] * len(c1)
    assert not any(math.isnan(x) for i, x in enumerate(seq.old_logprobs) if not seq.loss_mask[i])


def test_a_turn_that_generated_nothing_needs_no_logprobs(tok):
    """A context overflow generates no tokens: there is nothing to take a ratio on."""
    traj, p0, c0, c1 = _two_turn(tok)
    traj.turns[1].completion_ids, traj.turns[1].logprobs = [], None
    seq = build_sequence(traj, TemplateRenderer(tok))
    assert seq.turn_spans[1][0] == seq.turn_spans[1][1] == len(seq)
