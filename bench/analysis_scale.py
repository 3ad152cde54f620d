"""Scale benchmark of `thoughttrace analyze` and of the Embedder.

1. `analyze` without LLM steps (and without embeddings) over N generated conversations (default 100,000),
   run as its own process so its wall time and peak memory (max RSS) are its own.
2. Embeddings of T texts (default 2,000, distinct) through our `Embedder` (fresh vector cache) vs
   sentence-transformers' `encode` called directly on the same texts, in this process, same model,
   same batch size, both warmed up, alternating order over `--repeats` rounds; ratio = throughput of
   ours / throughput of direct (target >= 0.9).
3. A second Embedder run on the same texts, served from the vector cache (no model call).

Usage: python bench/analysis_scale.py [--n 100000] [--texts 2000] [--repeats 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _generate(path: Path, n: int, seed: int) -> float:
    from thoughttrace.data.synthetic import write_synthetic

    t = time.perf_counter()
    write_synthetic(path, n, seed)
    return time.perf_counter() - t


def _analyze_subprocess(data: Path, out: Path) -> dict[str, float]:
    """Run the CLI in a child process; its peak RSS comes from RUSAGE_CHILDREN (kB on Linux)."""
    code = (
        "import resource, sys, time\n"
        "from thoughttrace.cli.main import cli\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    cli(['analyze', {str(data)!r}, '--out', {str(out)!r}, '--no-embeddings'], standalone_mode=False)\n"
        "finally:\n"
        "    print('ELAPSED', time.perf_counter() - t)\n"
        "    print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"analyze failed:\n{proc.stderr[-3000:]}")
    vals = dict(line.split() for line in proc.stdout.splitlines() if line.startswith(("ELAPSED", "MAXRSS_KB")))
    return {"process_wall_s": wall, "analyze_s": float(vals["ELAPSED"]), "peak_rss_mb": int(vals["MAXRSS_KB"]) / 1024}


def _texts(data: Path, k: int) -> list[str]:
    """k distinct texts (messages and thoughts) from the generated file; synthetic templates repeat, so
    each text gets its conversation id appended to keep them distinct (deduplication would flatter ours)."""
    from thoughttrace.data import iter_conversations

    out: list[str] = []
    seen: set[str] = set()
    for conv in iter_conversations(data):
        for m in conv.messages:
            for text in [m.content, *(t.content for t in m.thoughts)]:
                t = f"{text} ({conv.id})"
                if t not in seen:
                    seen.add(t)
                    out.append(t)
                if len(out) >= k:
                    return out
    return out


def _embedding_bench(texts: list[str], repeats: int, cache_dir: Path, batch_size: int = 64) -> dict[str, object]:
    import numpy as np

    from thoughttrace.llm.embeddings import Embedder, VectorCache

    ours_model = Embedder("minilm", cache=None)
    st_model = ours_model._load()  # the same SentenceTransformer object for both: same weights, same threads
    warm = texts[:64]
    st_model.encode(warm, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    direct_times, ours_times = [], []
    direct_vecs = ours_vecs = None
    for r in range(repeats):
        for which in (("direct", "ours") if r % 2 == 0 else ("ours", "direct")):
            if which == "direct":
                t = time.perf_counter()
                direct_vecs = st_model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                              convert_to_numpy=True)
                direct_times.append(time.perf_counter() - t)
            else:
                cache = VectorCache(cache_dir / f"round{r}.sqlite")  # fresh cache: every text is encoded
                emb = Embedder("minilm", cache=cache)
                emb._model = st_model
                t = time.perf_counter()
                ours_vecs = emb.embed(texts, batch_size=batch_size)
                ours_times.append(time.perf_counter() - t)
                assert emb.stats["encoded"] == len(texts)
    assert direct_vecs is not None and ours_vecs is not None
    max_diff = float(np.abs(np.asarray(direct_vecs) - ours_vecs).max())

    # second run from the cache of the last round: a new Embedder, as a new process would build it
    cached = Embedder("minilm", cache=VectorCache(cache_dir / f"round{repeats - 1}.sqlite"))
    t = time.perf_counter()
    again = cached.embed(texts, batch_size=batch_size)
    cached_s = time.perf_counter() - t
    assert cached.stats["encoded"] == 0 and cached._model is None
    assert np.array_equal(again, ours_vecs)

    d, o = min(direct_times), min(ours_times)
    return {
        "texts": len(texts), "batch_size": batch_size, "repeats": repeats,
        "direct_s": direct_times, "ours_s": ours_times,
        "direct_texts_per_s": len(texts) / d, "ours_texts_per_s": len(texts) / o,
        "ratio_ours_vs_direct": d / o, "max_abs_vector_difference": max_diff,
        "cached_second_run_s": cached_s, "cached_speedup_vs_ours": o / cached_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="generated conversations for analyze")
    ap.add_argument("--texts", type=int, default=2000, help="texts for the embedding comparison")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    results: dict[str, object] = {"format_version": 1, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="tt-bench-") as tmp:
        tmpdir = Path(tmp)
        data = tmpdir / "synthetic.jsonl"
        gen_s = _generate(data, args.n, args.seed)
        size_mb = data.stat().st_size / 1e6
        print(f"generated {args.n:,} conversations ({size_mb:.0f} MB) in {gen_s:.1f} s")

        a = _analyze_subprocess(data, tmpdir / "out")
        stats = json.loads((tmpdir / "out" / "stats.json").read_text())
        t1 = stats["overview"]["table1"]
        results["analyze"] = {"conversations": t1["conversations"], "messages": t1["messages"],
                              "thoughts": t1["thoughts"], "file_mb": size_mb, "figures": len(stats["figures"]), **a,
                              "conversations_per_s": t1["conversations"] / a["analyze_s"]}
        print(f"analyze (no LLM, no embeddings): {t1['conversations']:,} conversations, {t1['messages']:,} messages "
              f"in {a['analyze_s']:.1f} s ({t1['conversations'] / a['analyze_s']:,.0f} conv/s), "
              f"peak RSS {a['peak_rss_mb']:.0f} MB, {len(stats['figures'])} figures")

        texts = _texts(data, args.texts)
        e = _embedding_bench(texts, args.repeats, tmpdir)
        results["embeddings"] = e
        print(f"embeddings, {e['texts']} texts: direct sentence-transformers {e['direct_texts_per_s']:.0f} texts/s, "
              f"ours {e['ours_texts_per_s']:.0f} texts/s -> ratio {e['ratio_ours_vs_direct']:.3f} (target >= 0.9); "
              f"max |difference| {e['max_abs_vector_difference']:.2e}")
        print(f"second run from the vector cache: {e['cached_second_run_s']:.3f} s "
              f"({e['cached_speedup_vs_ours']:.0f}x faster than encoding)")
    results["peak_rss_bench_process_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
