"""CaRR rubric rewards (exact and judge forms), citation parsing, BFS connectivity and C-GRPO."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.errors import ConfigError
from rlvr.rewards.carr import (
    CaRRJudge,
    CGRPOReward,
    Evidence,
    Rubric,
    cgrpo_group,
    cgrpo_reward,
    connected_rubrics,
    extract_citations,
    identify_entities_exact,
    parse_json_object,
    rubric_reward_exact,
    rubric_reward_judge,
    spans_cover,
)

# A 3-hop chain: Start -> E1 -> E2 -> E0, facts in docs d1, d2, d3 at [0, 20).
RUBRICS = (
    Rubric("Ada Vell founded <E1>.", (Evidence("d1", 0, 20),)),
    Rubric("<E1> is based in <E2>.", (Evidence("d2", 0, 20),)),
    Rubric("The mayor of <E2> is <E0>.", (Evidence("d3", 0, 20),)),
)
ENTITIES = {"E1": ("Orin Labs",), "E2": ("Tarrow",), "E0": ("Bel Quist",)}
SEEN_ALL = {"d1": [(0, 40)], "d2": [(0, 40)], "d3": [(0, 40)]}
GOOD = "Ada Vell founded Orin Labs [d1]. Orin Labs is based in Tarrow [d2]. The mayor of Tarrow is Bel Quist [d3].\nExact answer: Bel Quist"


def test_rubric_entities_and_fill():
    r = Rubric("<E2> was founded by <E1>; <E1> again")
    assert r.entities == ("E2", "E1")
    assert r.fill({"E1": "A", "E2": None}) == "<E2> was founded by A; A again"


def test_full_credit_when_identified_supported_connected():
    res = rubric_reward_exact(GOOD, RUBRICS, ENTITIES, SEEN_ALL)
    assert res.score == 1.0
    assert res.identified == res.supported == res.connected == [True, True, True]
    assert res.entities == {"E1": "Orin Labs", "E2": "Tarrow", "E0": "Bel Quist"}


def test_no_citation_gives_zero():
    res = rubric_reward_exact("Bel Quist, via Orin Labs and Tarrow.", RUBRICS, ENTITIES, SEEN_ALL)
    assert res.score == 0.0
    assert res.identified == [True, True, True] and res.supported == [False, False, False]


def test_citing_unseen_documents_gives_no_credit():
    seen = {"d3": [(0, 40)]}  # only d3 was shown to the agent
    res = rubric_reward_exact(GOOD, RUBRICS, ENTITIES, seen)
    assert res.supported == [False, False, True]
    assert res.score == pytest.approx(1 / 3)


def test_partially_seen_span_does_not_support():
    seen = {**SEEN_ALL, "d2": [(0, 10)]}
    assert rubric_reward_exact(GOOD, RUBRICS, ENTITIES, seen).supported == [True, False, True]
    seen = {**SEEN_ALL, "d2": [(0, 10), (8, 25)]}  # two pieces together cover it
    assert rubric_reward_exact(GOOD, RUBRICS, ENTITIES, seen).supported == [True, True, True]


def test_bfs_drops_rubrics_disconnected_from_answer():
    # the middle hop is unsupported: the first rubric (about E1) cannot reach E0
    seen = {"d1": [(0, 40)], "d3": [(0, 40)]}
    res = rubric_reward_exact(GOOD, RUBRICS, ENTITIES, seen)
    assert res.supported == [True, False, True]
    assert res.connected == [False, False, True]
    assert res.score == pytest.approx(1 / 3)


def test_unidentified_entity_blocks_its_rubrics():
    answer = "Orin Labs [d1] is in a city [d2] whose mayor is Bel Quist [d3]."  # Tarrow (E2) never named
    res = rubric_reward_exact(answer, RUBRICS, ENTITIES, SEEN_ALL)
    assert res.identified == [True, False, False]
    assert res.score == 0.0  # nothing connects to E0 without E2


def test_connected_rubrics_graph():
    rs = [Rubric("<E0> x <E1>"), Rubric("<E1> y <E2>"), Rubric("<E3> z <E4>")]
    assert connected_rubrics(rs, [True, True, True]) == [True, True, False]
    assert connected_rubrics(rs, [False, True, True]) == [False, False, False]
    with pytest.raises(ConfigError, match="flags for 3 rubrics"):
        connected_rubrics(rs, [True])


def test_identify_requires_whole_words():
    ents = {"E0": ("Tarrow",), "E1": ("Ann Lee",)}
    assert identify_entities_exact("Tarrowby and Ann Leeds", ents) == {"E0": None, "E1": None}
    assert identify_entities_exact("the town of TARROW; ann lee.", ents) == {"E0": "Tarrow", "E1": "Ann Lee"}


@pytest.mark.parametrize(
    "text, known, expected",
    [
        ("a [doc1] b [doc2, doc3] c [doc1]", None, ["doc1", "doc2", "doc3"]),
        ("see [doc1; doc2]", None, ["doc1", "doc2"]),
        ("[1](https://x.org/a) and [2](https://y.org)", None, ["https://x.org/a", "https://y.org"]),
        ("[some prose] and [doc9]", {"doc9"}, ["doc9"]),
        ("[doc_id: doc4]", None, ["doc4"]),
        ("no citations here", None, []),
    ],
)
def test_extract_citations(text, known, expected):
    assert extract_citations(text, known) == expected


ids_st = st.lists(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_:\-]{0,11}", fullmatch=True).filter(lambda s: not s.lower().startswith("doc_id:")),
    min_size=0, max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(ids_st, st.sampled_from(["[{}]", "[{}] ", "see [{}]. "]), st.text(alphabet="abc .,\n", max_size=20))
def test_citations_round_trip(ids, fmt, filler):
    text = filler.join(fmt.format(i) for i in ids)
    assert extract_citations(text) == list(dict.fromkeys(ids))
    grouped = "claim [" + ", ".join(ids) + "]" if ids else ""
    assert extract_citations(grouped) == list(dict.fromkeys(ids))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_citation_parser_total(text):
    out = extract_citations(text)
    assert all(isinstance(c, str) and c and c in text for c in out)
    assert extract_citations(text, known=set()) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=6), st.integers(0, 50), st.integers(1, 20))
def test_spans_cover_matches_brute_force(spans, start, length):
    spans = [(min(a, b), max(a, b)) for a, b in spans]
    end = start + length
    covered = {i for a, b in spans for i in range(a, b)}
    assert spans_cover(spans, start, end) == all(i in covered for i in range(start, end))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_json_object_total(text):
    obj = parse_json_object(text)
    assert obj is None or isinstance(obj, dict)


def test_parse_json_object_finds_fenced_object():
    assert parse_json_object('Sure:\n```json\n{"E0": "x", "E1": null}\n```') == {"E0": "x", "E1": None}
    assert parse_json_object("[1, 2] then {\"a\": 1}") == {"a": 1}


# ----------------------------------------------------------------------------- judge
class FakeJudge:
    """Answers identify / support prompts from fixed tables; records the prompts it got."""

    def __init__(self, entities, support, garbage_first=0):
        self.entities, self.support, self.garbage = entities, support, garbage_first
        self.prompts = []

    def act(self, messages):
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if self.garbage > 0:
            self.garbage -= 1
            return "I think it is fine."
        if "You extract entities" in prompt:
            return "```json\n" + json.dumps(self.entities) + "\n```"
        return json.dumps({f"S{i + 1}": v for i, v in enumerate(self.support)})


def test_judge_path_scores_and_uses_only_seen_context():
    judge = FakeJudge({"E0": "Bel Quist", "E1": "Orin Labs", "E2": "Tarrow"}, [True, True, True], garbage_first=1)
    context = {"d1": "Ada Vell founded Orin Labs.", "d2": "Orin Labs is based in Tarrow.", "d3": "The mayor of Tarrow is Bel Quist."}
    res = rubric_reward_judge(CaRRJudge(judge), "Who?", GOOD, RUBRICS, context)
    assert res.score == 1.0 and res.error is None
    support_prompt = judge.prompts[-1]
    assert "The mayor of Tarrow is Bel Quist." in support_prompt  # filled rubric
    assert "[d2]\nOrin Labs is based in Tarrow." in support_prompt


def test_judge_not_called_without_seen_citations():
    judge = FakeJudge({}, [])
    res = rubric_reward_judge(CaRRJudge(judge), "Who?", GOOD, RUBRICS, {"d9": "x"})
    assert res.score == 0.0 and res.error == "no cited document was seen this episode"
    assert judge.prompts == []


def test_judge_failure_is_recorded_not_silent():
    judge = FakeJudge({"E0": "x"}, [], garbage_first=0)  # wrong key set every time
    res = rubric_reward_judge(CaRRJudge(judge, retries=2), "Who?", GOOD, RUBRICS, {"d1": "text"})
    assert res.score is None and not res.applicable  # not applicable (it used to be scored 0.0)
    assert "no usable reply after 2 attempts" in res.error and "expected keys" in res.error


class RaisingJudge:
    def act(self, messages):
        raise ConnectionError("judge server at 127.0.0.1:9 refused the connection")


def test_judge_that_raises_is_not_applicable_with_its_cause():
    res = rubric_reward_judge(CaRRJudge(RaisingJudge()), "Who?", GOOD, RUBRICS, {"d1": "text"})
    assert res.score is None and res.to_dict()["score"] is None
    assert res.error == "the judge failed: ConnectionError: judge server at 127.0.0.1:9 refused the connection"


def test_judge_returning_garbage_is_not_applicable():
    judge = FakeJudge({}, [], garbage_first=99)  # never a JSON object
    res = rubric_reward_judge(CaRRJudge(judge, retries=3), "Who?", GOOD, RUBRICS, {"d1": "text"})
    assert res.score is None and "no usable reply after 3 attempts" in res.error and "no JSON object" in res.error
    assert len(judge.prompts) == 3


def test_not_applicable_rubric_falls_back_to_the_outcome():
    assert cgrpo_reward(1.0, None) == 1.0 and cgrpo_reward(0.0, None) == 0.0
    assert cgrpo_group([1.0, 1.0], [None, 0.5], form="code") == pytest.approx([1.0, 0.7 + 0.3 * 0.5])
    # paper form: a missing rubric is out of the group maximum and gives R_o
    assert cgrpo_group([1.0, 1.0, 1.0], [None, 0.25, 0.5], form="paper") == pytest.approx([1.0, 0.7 + 0.3 * 0.5, 1.0])


def test_judge_partial_support_then_bfs():
    judge = FakeJudge({"E0": "Bel Quist", "E1": "Orin Labs", "E2": "Tarrow"}, [True, False, True])
    res = rubric_reward_judge(CaRRJudge(judge), "Who?", GOOD, RUBRICS, {"d1": "a", "d2": "b", "d3": "c"})
    assert res.connected == [False, False, True]


def test_judge_needs_agent():
    with pytest.raises(ConfigError, match="act\\(messages\\)"):
        CaRRJudge(object())


# ----------------------------------------------------------------------------- C-GRPO
def test_cgrpo_code_form():
    assert cgrpo_reward(0.0, 1.0) == 0.0  # a wrong answer gets nothing from the rubric
    assert cgrpo_reward(1.0, 0.0) == pytest.approx(0.7)
    assert cgrpo_reward(1.0, 1.0) == pytest.approx(1.0)
    assert cgrpo_reward(1.0, 0.5, alpha=0.5) == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="alpha"):
        cgrpo_reward(1.0, 1.0, alpha=1.5)


def test_cgrpo_paper_form_normalises_by_group_max():
    out = cgrpo_group([1.0, 1.0, 0.0], [0.25, 0.5, 1.0], alpha=0.3, form="paper")
    # max rubric is 1.0 (from the wrong rollout) -> scaled = raw; wrong rollout gets 0
    assert out == pytest.approx([0.7 + 0.3 * 0.25, 0.7 + 0.3 * 0.5, 0.0])
    out = cgrpo_group([1.0, 1.0], [0.25, 0.5], form="paper")
    assert out == pytest.approx([0.7 + 0.3 * 0.5, 1.0])
    assert cgrpo_group([1.0], [0.0], form="paper") == pytest.approx([0.7])
    with pytest.raises(ConfigError, match="'code' \\(default\\) or 'paper'"):
        cgrpo_group([1.0], [1.0], form="nope")
    with pytest.raises(ConfigError, match="one of each per rollout"):
        cgrpo_group([1.0], [1.0, 0.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.floats(0, 1)), min_size=1, max_size=8), st.floats(0, 1))
def test_cgrpo_properties(pairs, alpha):
    outs, rubs = [p[0] for p in pairs], [p[1] for p in pairs]
    for form in ("code", "paper"):
        rs = cgrpo_group(outs, rubs, alpha, form)
        for o, r in zip(outs, rs):
            assert (r == 0.0) if o == 0.0 else (1 - alpha - 1e-9 <= r <= 1.0 + 1e-9)


def test_cgrpo_reward_over_trajectories():
    def traj(em, rubric):
        return SimpleNamespace(turns=[SimpleNamespace(reward_components={"em": em, "rubric": rubric})])

    assert CGRPOReward()([traj(1.0, 1.0), traj(1.0, 0.0), traj(0.0, 1.0)]) == pytest.approx([1.0, 0.7, 0.0])
    # a trajectory without a rubric score (no rubric, or the judge failed) gets the outcome, not 0.7
    no_rubric = SimpleNamespace(turns=[SimpleNamespace(reward_components={"em": 1.0})])
    assert CGRPOReward()([no_rubric, traj(1.0, 0.0)]) == pytest.approx([1.0, 0.7])
    with pytest.raises(ConfigError):
        CGRPOReward(form="bogus")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80) | st.sampled_from(['{"E0": "Bel Quist", "E1": "Orin Labs", "E2": "Tarrow"}',
                                                         '{"S1": true, "S2": "no", "S3": 1}', "{", "[]", "null"]),
                min_size=1, max_size=6))
def test_judge_replies_never_crash_and_never_give_a_silent_zero(replies):
    class Scripted:
        def __init__(self):
            self.i = 0

        def act(self, messages):
            self.i += 1
            return replies[(self.i - 1) % len(replies)]

    res = rubric_reward_judge(CaRRJudge(Scripted(), retries=2), "Who?", GOOD, RUBRICS, {"d1": "a", "d2": "b", "d3": "c"})
    assert (res.score is None and res.error) or (0.0 <= res.score <= 1.0 and res.error is None)
