"""Where the doctor's data files are: prompts, SQL migrations and queries, runbook entries.

They are edited in this repository's `include/prompts/`, `include/sql/` and `include/knowledge/`
and shipped in the wheel as package data under `airflow_doctor/data/` (pyproject.toml maps one onto
the other). Paths are resolved from this module's location, never from the working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
KINDS = ("prompts", "sql", "knowledge")


def data_dir(kind: str) -> Path:
    """The folder of one kind of data file.

    Args:
        kind: one of `KINDS`.

    Returns:
        `airflow_doctor/data/<kind>` in an installed wheel; `include/<kind>` of the source tree in a
        checkout (an editable install, or the repository on PYTHONPATH).

    Raises:
        ValueError: `kind` is not one of `KINDS`.
        FileNotFoundError: neither folder exists (a broken install).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")
    for candidate in (_PACKAGE / "data" / kind, _PACKAGE.parent / "include" / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"airflow-doctor's {kind} folder is missing from {_PACKAGE}")
