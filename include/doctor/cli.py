"""Command line of the doctor: `python -m include.doctor COMMAND`.

Commands:
    migrate   apply the knowledge base's SQL migrations (idempotent)
    seed      embed and load the curated runbook entries (include/knowledge/)
Both use `--dsn` or, without it, the Airflow connection `doctor_db`.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.doctor", description="airflow-doctor")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("migrate", "apply SQL migrations"), ("seed", "load runbook entries")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dsn", help="libpq connection string (default: Airflow connection doctor_db)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from include.doctor.store import KnowledgeBase

    kb = KnowledgeBase(dsn=args.dsn)
    if args.command == "migrate":
        applied = kb.migrate()
        print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
    elif args.command == "seed":
        from include.doctor import embeddings
        from include.doctor.knowledge import ensure_seeded

        kb.migrate()
        written = ensure_seeded(kb, embeddings.embed, embeddings.model_name())
        print(f"runbook cases written: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
