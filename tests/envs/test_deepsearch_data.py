"""DeepSearch data: the synthetic world generator, the Wikipedia corpus and the corpus / QA loaders."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rlvr.envs.deepsearch import Corpus, DeepSearchEnv, Document, WorldConfig, generate_world, load_corpus_jsonl, load_qa, wikipedia_corpus
from rlvr.envs.deepsearch.world import REL_BY_NAME
from rlvr.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLVR_CACHE", str(tmp_path_factory.mktemp("rlvr-cache")))
        yield


# ----------------------------------------------------------------------------- synthetic world
def test_world_is_deterministic_from_seed():
    a, b = generate_world(seed=7, n_tasks=20), generate_world(seed=7, n_tasks=20)
    assert a.corpus.hash == b.corpus.hash
    assert [(t.id, t.question, t.answers) for t in a.tasks] == [(t.id, t.question, t.answers) for t in b.tasks]
    assert generate_world(seed=8, n_tasks=20).corpus.hash != a.corpus.hash


def test_world_knobs():
    w = generate_world(n_entities=100, distractors=30, n_tasks=30, hops=(2, 3))
    assert len(w.entities) == 100 and len(w.corpus) == 130
    assert Counter(t.meta["hops"] for t in w.tasks) == {2: 15, 3: 15}
    assert all(len(t.hops) == len(t.rubrics) == t.meta["hops"] for t in w.tasks)
    assert len(generate_world(n_entities=100, n_tasks=2).corpus) == 150  # distractors default to half
    assert len({d.id for d in w.corpus}) == len(w.corpus)


def test_paraphrase_one_uses_a_single_wording():
    w1 = generate_world(paraphrase=1, n_tasks=60)
    text = " ".join(d.text for d in w1.corpus)
    assert " is a native of " not in text and " was born in " in text
    prefixes = {t.question.split()[0] for t in w1.tasks}
    assert prefixes <= {"Who", "What"}
    w3 = generate_world(paraphrase=3, n_tasks=60)
    assert len({t.question.split()[0] for t in w3.tasks}) > 2


def test_gold_evidence_spans_state_the_fact():
    w = generate_world(n_tasks=60, seed=3)
    docs = {d.id: d for d in w.corpus}
    for t in w.tasks:
        names = {ph: n[0] for ph, n in t.entities.items()}
        for hop, rubric in zip(t.hops, t.rubrics):
            assert hop.evidence and all(ev.doc_id == hop.doc_id for ev in hop.evidence)
            for ev in rubric.evidence:
                sentence = docs[ev.doc_id].text[ev.start:ev.end]
                assert sentence.endswith(".") and sentence[0].isupper()
                for ph in rubric.entities:  # the sentence names every hidden entity of the rubric
                    assert names[ph] in sentence or names[ph].removeprefix("the ") in sentence, (sentence, names[ph])
            # the gold query finds the gold document by name
            assert docs[hop.doc_id].title == hop.query


def test_answer_is_not_named_in_question_and_chain_is_acyclic():
    w = generate_world(n_tasks=100, seed=1)
    for t in w.tasks:
        if not t.answers[0].isdigit():
            assert t.answers[0] not in t.question
        assert len(set(h.doc_id for h in t.hops)) == len(t.hops)
        assert set(t.entities) == {f"E{i}" for i in range(len(t.hops))}


def test_world_facts_are_functional_and_consistent():
    w = generate_world(seed=2)
    founders = [o for (s, r), o in w.facts.items() if r == "founded_by"]
    assert len(founders) == len(set(founders))  # the inverse (company founded by X) is a function
    for (s, r), o in w.facts.items():
        rel = REL_BY_NAME[r]
        assert w.entities[s].kind in rel.subj
        if rel.obj != "year":
            assert w.entities[o].kind == rel.obj
        if r == "spouse":
            assert w.facts[(o, "spouse")] == s


def test_world_config_validation():
    with pytest.raises(ConfigError, match="n_entities"):
        WorldConfig(n_entities=10)
    with pytest.raises(ConfigError, match="hops"):
        WorldConfig(hops=(0, 2))
    with pytest.raises(ConfigError, match="paraphrase"):
        WorldConfig(paraphrase=0)
    assert WorldConfig(hops=[2, 2]).hops == (2, 2)


def test_large_world_generation_is_fast_enough():
    import time

    t0 = time.perf_counter()
    w = generate_world(n_entities=5000, n_tasks=50, hops=(4, 4))
    assert len(w.corpus) == 7500 and time.perf_counter() - t0 < 10


# ----------------------------------------------------------------------------- Wikipedia
def test_wikipedia_corpus():
    c = wikipedia_corpus()
    assert 9_000 < len(c) <= 10_033
    assert c.docs[0].id == "wiki0" and all(d.text for d in c.docs[:50])
    titles = {d.title for d in c}
    assert "Stanley Kubrick" in titles
    with pytest.raises(ConfigError, match="available"):
        wikipedia_corpus(lang="xx-yy")


def test_wikipedia_as_search_corpus_for_user_tasks(tmp_path):
    from rlvr.envs.deepsearch import Hop, Task

    c = wikipedia_corpus()
    kubrick = next(d for d in c if d.title == "Stanley Kubrick")
    task = Task("k1", "Who directed 2001: A Space Odyssey?", ("Stanley Kubrick", "Kubrick"), hops=(Hop("Stanley Kubrick", kubrick.id),))
    env = DeepSearchEnv(tasks=[task], corpus="wikipedia")
    env.reset(seed=0)
    obs, *_ = env.step('<tool_call>{"name": "search", "arguments": {"query": "Kubrick filmmaker"}}</tool_call>')
    assert "[" + kubrick.id + "] Stanley Kubrick" in obs[0]["content"]
    _, _, _, _, info = env.step(f"<answer>Kubrick [{kubrick.id}]</answer>")
    assert info["reward_components"]["em"] == 1.0


# ----------------------------------------------------------------------------- corpus JSONL
def test_load_corpus_jsonl(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(
        json.dumps({"id": "x1", "title": "A", "text": "alpha"}) + "\n\n"
        + json.dumps({"id": 7, "contents": '"Bee"\nbuzz text'}) + "\n"
    )
    c = load_corpus_jsonl(p)
    assert [d.to_dict() for d in c] == [{"id": "x1", "title": "A", "text": "alpha"}, {"id": "7", "title": "Bee", "text": "buzz text"}]
    out = c.to_jsonl(tmp_path / "out.jsonl")
    assert load_corpus_jsonl(out).hash == c.hash


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"id": "a", "text": "x"}\n{oops\n', "bad.jsonl:2: not valid JSON"),
        ('{"title": "no id"}\n', 'bad.jsonl:1: expected an object with "id"'),
        ('{"id": "a"}\n', 'has no "text"'),
        ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "duplicate document id 'a'"),
        ("\n", "bad.jsonl holds no documents"),
    ],
)
def test_load_corpus_jsonl_errors(tmp_path, content, match):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_corpus_jsonl(p)


def test_corpus_lookup_errors():
    c = Corpus([Document("doc1", "t", "x")])
    with pytest.raises(KeyError, match="did you mean 'doc1'"):
        c["doc2"]
    with pytest.raises(ConfigError, match="empty id"):
        Corpus([Document("", "t", "x")])


# ----------------------------------------------------------------------------- QA loaders
HOTPOT = [{
    "_id": "5a8b57f25542995d1e6f1371", "question": "Which city is the company founded by Ada Vell based in?",
    "answer": "Tarrow", "type": "bridge", "level": "medium",
    "supporting_facts": [["Orin Labs", 0], ["Tarrow", 1]],
    "context": [["Orin Labs", ["Orin Labs is a company ", "founded by Ada Vell."]],
                ["Tarrow", ["Tarrow is a city.", " Orin Labs is based in Tarrow."]],
                ["Lighthouse", ["A lighthouse guides ships."]]],
}]
TWOWIKI = [{
    "_id": "a1b2", "type": "compositional", "question": "Who is the mother of the director of film Quiet Harbour?",
    "answer": "Mira Vell", "supporting_facts": [["Quiet Harbour", 0], ["Ada Vell", 0]],
    "context": [["Quiet Harbour", ["Quiet Harbour is a film directed by Ada Vell."]],
                ["Ada Vell", ["Ada Vell is the daughter of Mira Vell."]]],
    "evidences": [["Quiet Harbour", "director", "Ada Vell"], ["Ada Vell", "mother", "Mira Vell"]],
}]
MUSIQUE = [{
    "id": "2hop__1_2", "question": "Where is the company founded by Ada Vell based?", "answer": "Tarrow",
    "answer_aliases": ["Tarrow City"], "answerable": True,
    "paragraphs": [
        {"idx": 0, "title": "Lighthouse", "paragraph_text": "A lighthouse guides ships.", "is_supporting": False},
        {"idx": 1, "title": "Tarrow", "paragraph_text": "Orin Labs is based in Tarrow.", "is_supporting": True},
        {"idx": 2, "title": "Orin Labs", "paragraph_text": "Ada Vell founded Orin Labs.", "is_supporting": True},
    ],
    "question_decomposition": [{"id": 1, "question": "company founded by Ada Vell", "answer": "Orin Labs", "paragraph_support_idx": 2},
                               {"id": 2, "question": "where is #1 based", "answer": "Tarrow", "paragraph_support_idx": 1}],
}, {"id": "x", "question": "unanswerable?", "answer": "", "answerable": False, "paragraphs": []}]


def _oracle_em(path, **kw):
    env = DeepSearchEnv(tasks=str(path), **kw)
    env.reset(options={"task_index": 0})
    for _ in range(env.max_turns):
        _, _, term, _, info = env.step(env.oracle_action())
        if term:
            return env, info
    raise AssertionError("oracle did not finish")


def test_hotpotqa_loader_and_env(tmp_path):
    p = tmp_path / "hotpot_dev_distractor.json"
    p.write_text(json.dumps(HOTPOT))
    tasks, corpus = load_qa(p)
    (t,) = tasks
    assert t.source == "hotpotqa" and t.answers == ("Tarrow",) and t.meta["type"] == "bridge"
    assert [corpus[h.doc_id].title for h in t.hops] == ["Orin Labs", "Tarrow"]
    assert corpus[t.hops[0].doc_id].text == "Orin Labs is a company founded by Ada Vell."
    env, info = _oracle_em(p)
    # supporting facts now give rubrics (issue 9): the oracle's cited answer meets all of them
    assert info["reward_components"]["em"] == 1.0 and info["reward_components"]["rubric"] == 1.0
    assert info["answer_eval"]["rubric_skipped"] is None
    assert set(info["answer_eval"]["cited"]) == set(t.gold_doc_ids)


def test_2wiki_loader(tmp_path):
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(TWOWIKI))
    (t,), corpus = load_qa(p)
    assert t.source == "2wiki" and t.meta["evidences"][1] == ["Ada Vell", "mother", "Mira Vell"]
    assert len(corpus) == 2 and len(t.hops) == 2


def test_musique_loader(tmp_path):
    p = tmp_path / "musique_ans_v1.0_dev.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in MUSIQUE))
    tasks, corpus = load_qa(p)
    assert len(tasks) == 1  # the unanswerable one is skipped
    (t,) = tasks
    assert t.answers == ("Tarrow", "Tarrow City")
    assert [h.query for h in t.hops] == ["Orin Labs", "Tarrow"]  # decomposition order
    env, info = _oracle_em(p)
    assert info["reward_components"]["em"] == 1.0


def test_searchr1_parquet_loader(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [
        {"data_source": "nq", "question": "who founded orin labs?", "golden_answers": ["Ada Vell", "A. Vell"],
         "prompt": [{"role": "user", "content": "ignored"}], "extra_info": {"index": 3, "split": "test"},
         "reward_model": {"ground_truth": {"target": ["Ada Vell", "A. Vell"]}, "style": "rule"}},
        {"data_source": "hotpotqa", "question": None, "golden_answers": None,
         "prompt": [{"role": "user", "content": "Answer the question... Question: where is Orin Labs based?"}],
         "extra_info": {"index": 4, "split": "test"},
         "reward_model": {"ground_truth": {"target": None}, "style": "rule"}},
    ]
    rows[1]["reward_model"]["ground_truth"]["target"] = ["Tarrow"]
    p = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    tasks, corpus = load_qa(p)
    assert corpus is None
    assert tasks[0].answers == ("Ada Vell", "A. Vell") and tasks[0].id == "nq-3"
    assert tasks[1].question == "where is Orin Labs based?" and tasks[1].answers == ("Tarrow",)
    # IGPO-style ground truth string with <|answer_split|>
    p2 = tmp_path / "igpo.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": [{"role": "user", "content": "Who? "}],
                                          "reward_model": {"ground_truth": "Ada<|answer_split|>Ada Vell", "style": "rule"}}]), p2)
    (t,), _ = load_qa(p2)
    assert t.answers == ("Ada", "Ada Vell")
    with pytest.raises(ConfigError, match="carry no documents"):
        DeepSearchEnv(tasks=str(p))
    env = DeepSearchEnv(tasks=str(p), corpus=Corpus([Document("z", "Orin Labs", "Orin Labs was founded by Ada Vell.")]))
    env.reset(options={"task_index": 0})
    _, _, _, _, info = env.step("<answer>A. Vell</answer>")
    assert info["reward_components"]["em"] == 1.0


def test_qa_loader_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(ConfigError, match="cannot tell the QA format"):
        load_qa(p)
    with pytest.raises(ConfigError, match="missing field"):
        load_qa(p, "hotpotqa")
    with pytest.raises(ConfigError, match="does not exist"):
        load_qa(tmp_path / "nope.json")
