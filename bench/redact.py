"""Redaction and excerpt extraction on huge and hostile logs: seconds per log through `extract_excerpt`.

Generated logs (nothing read from disk), each passed to `airflow_doctor.logs.excerpt.extract_excerpt` as the
doctor gets it, timed `--repeat` times in this process (after one warm-up call that imports
Airflow's masker), the median reported:
- `1mb_single_line`: a 1 MB line of word characters with the failing traceback after it (a runaway
  `print`; before the patterns were bounded, a 37 KB line took 20 s).
- `1mb_line_<run>`: 1 MB lines of `=`, `:`, `/`, `%41` and `password=` (runs that made regexes backtrack).
- `100mb_text`: a 100 MB Airflow 2 text log (1.6 M lines of noise with a few secrets, the traceback
  at the end), as str and as bytes; the cap on bytes read keeps its 10 MB tail.
- `100mb_records`: Airflow 3 structured records totalling 100 MB, the failure record last.
- `10mb_random_bytes`: 10 MB of seeded random bytes (as a binary file cat'ed into a log), then the
  traceback; random bytes hold short needles (`pw`, `key`, `-p`, `%41`) everywhere.
- `10mb_random_text`: 10 MB of seeded random Unicode text (code points up to U+2FFF, with characters
  whose case mapping changes length: U+0130, sharp s, ligatures, final sigma), then the traceback.
Each row also says whether the excerpt kept the failing exception and that the planted secrets are gone.

Usage: python -m bench.redact [--repeat N] [--date YYYY-MM-DD] ; prints a table, writes
bench/results/redact.json
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from bench.common import header, machine, write_result

SECRET = "B3nchS3cretPw"  # a fake, planted in every log: it must not reach the excerpt
TARGET_SECONDS = 2.0  # issue "Hostile input": each log gives its excerpt in under 2 s on this machine

_TRACEBACK = (
    "[2024-06-17T19:33:12.430+0000] {taskinstance.py:2905} ERROR - Task failed with exception\n"
    "Traceback (most recent call last):\n"
    '  File "/opt/airflow/dags/warehouse_load.py", line 42, in load\n'
    "    cursor.execute(sql)\n"
    f'psycopg2.OperationalError: connection to server at "db" failed: password={SECRET} rejected\n'
)


def _noise_line(i: int) -> str:
    if i % 50_000 == 0:  # a secret now and then, as logs have them
        return f"[2024-06-17T19:30:00.000+0000] {{subprocess.py:93}} INFO - export PGPASSWORD={SECRET}\n"
    return f"[2024-06-17T19:30:{i % 60:02d}.000+0000] {{loader.py:88}} INFO - loaded batch {i} of rows\n"


def text_log(total_bytes: int) -> str:
    """An Airflow 2 text log of about `total_bytes` characters, the failing traceback at its end."""
    lines, size, i = [], 0, 0
    while size < total_bytes:
        line = _noise_line(i)
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines) + _TRACEBACK


def record_log(total_bytes: int) -> list[dict]:
    """Airflow 3 structured records of about `total_bytes` characters of events, the failure last."""
    records, size, i = [], 0, 0
    while size < total_bytes:
        event = _noise_line(i).split(" - ", 1)[1].rstrip("\n")
        records.append(
            {"timestamp": "2024-06-17T19:30:00Z", "level": "info", "logger": "task", "event": event}
        )
        size += len(event) + 60
        i += 1
    records.append(
        {
            "timestamp": "2024-06-17T19:33:12Z",
            "level": "error",
            "logger": "task",
            "event": "Task failed with exception",
            "error_detail": [
                {
                    "exc_type": "psycopg2.OperationalError",
                    "exc_value": f'connection to server at "db" failed: password={SECRET} rejected',
                    "frames": [
                        {"filename": "/opt/airflow/dags/warehouse_load.py", "lineno": 42, "name": "load"}
                    ],
                }
            ],
        }
    )
    return records


# Characters whose case mappings change length (U+0130 lower-cases to two code points; sharp s and
# the fi ligature upper-case to two; final sigma), weighted up in the random text.
_CASE_CHANGING = ["\u0130", "\u00df", "\ufb01", "\u03c2", "\u0307"]


def random_bytes_log(total_bytes: int, seed: int = 7) -> bytes:
    """`total_bytes` random bytes (seeded), then the failing traceback."""
    rng = random.Random(seed)  # noqa: S311 - bench data
    return rng.randbytes(total_bytes) + b"\n" + _TRACEBACK.encode()


def random_text_log(total_chars: int, seed: int = 7) -> str:
    """`total_chars` random code points (seeded; U+0020..U+2FFF without surrogates, case-changing
    characters and newlines weighted up), then the failing traceback."""
    rng = random.Random(seed)  # noqa: S311 - bench data
    alphabet = [chr(c) for c in range(0x20, 0x3000)] + _CASE_CHANGING * 40 + ["\n"] * 60
    return "".join(rng.choices(alphabet, k=total_chars)) + "\n" + _TRACEBACK


def cases() -> dict[str, object]:
    """Name -> log, as extract_excerpt takes it."""
    big = text_log(100 * 1024 * 1024)
    out: dict[str, object] = {"1mb_single_line": "a" * 1_000_000 + "\n" + _TRACEBACK}
    for name, run in {
        "eq": "=",
        "colon": ":",
        "slash": "/",
        "pct41": "%41",
        "password_eq": "password=",
    }.items():
        out[f"1mb_line_{name}"] = run * (1_000_000 // len(run)) + "\n" + _TRACEBACK
    out["100mb_text"] = big
    out["100mb_text_bytes"] = big.encode()
    out["100mb_records"] = record_log(100 * 1024 * 1024)
    out["10mb_random_bytes"] = random_bytes_log(10 * 1024 * 1024)
    out["10mb_random_text"] = random_text_log(10 * 1024 * 1024)
    return out


def measure(log: object, repeat: int) -> dict:
    """Median and max seconds of `extract_excerpt(log)` over `repeat` calls, and what it kept."""
    from airflow_doctor.logs.excerpt import extract_excerpt

    times, excerpt = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        excerpt = extract_excerpt(log)
        times.append(time.perf_counter() - start)
    fields = [excerpt.text, excerpt.message, *excerpt.causes, *excerpt.context]
    return {
        "seconds_median": round(statistics.median(times), 3),
        "seconds_max": round(max(times), 3),
        "exception_type": excerpt.exception_type,
        "secret_leaked": any(SECRET in f for f in fields),
        "under_target": max(times) < TARGET_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--date", help="date to record (default: today)")
    args = parser.parse_args()
    repeat = args.repeat

    from airflow_doctor.logs.excerpt import extract_excerpt

    extract_excerpt(_TRACEBACK)  # warm-up: imports Airflow's secrets masker once
    rows = {}
    for name, log in cases().items():
        size = len(log) if isinstance(log, str | bytes) else sum(len(r["event"]) + 60 for r in log)
        rows[name] = {"input_mb": round(size / 1024 / 1024, 1), **measure(log, repeat)}
    print(f"{'log':<20} {'MB':>6} {'median s':>9} {'max s':>7} {'< 2 s':>6} {'leak':>5}  exception")
    for name, row in rows.items():
        print(
            f"{name:<20} {row['input_mb']:>6} {row['seconds_median']:>9} {row['seconds_max']:>7} "
            f"{'yes' if row['under_target'] else 'NO':>6} {'YES' if row['secret_leaked'] else 'no':>5}  "
            f"{row['exception_type']}"
        )
    result = {
        **header("python -m bench.redact", Path("generated")),
        **({"date": args.date} if args.date else {}),
        "machine": machine(),
        "repeat": repeat,
        "target_seconds": TARGET_SECONDS,
        "results": rows,
    }
    write_result("redact", result)


if __name__ == "__main__":
    main()
