"""Decision quality: `eval` on a labelled corpus, cold and replay, with both baselines and per class.

Usage: python -m bench.decisions [--corpus FILE] ; prints the tables, writes bench/results/decisions.json
"""

from __future__ import annotations

from bench.common import corpus_cases, header, write_result


def main() -> int:
    from include.doctor.cli import embedded_database
    from include.doctor.evaluate import format_report, run_eval
    from include.doctor.store import KnowledgeBase

    corpus, cases = corpus_cases(__doc__.splitlines()[0])
    results = {**header("python -m bench.decisions", corpus), "modes": {}}
    with embedded_database() as dsn:
        kb = KnowledgeBase(dsn=dsn)
        kb.migrate()
        for replay in (False, True):
            report = run_eval(cases, kb, replay=replay, diagnoser="offline")
            print(format_report(report), end="\n\n")
            results["modes"][report["mode"]] = {k: v for k, v in report.items() if k != "cases"}
    write_result("decisions", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
