"""Every DAG file of this project parses, and every DAG carries what an Airflow user expects: an
owner, tags, retries set on purpose, documentation, and (for a DAG file) a dag_id equal to its name."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def test_every_dag_file_parses(bag):
    assert bag.import_errors == {}
    assert {Path(d.fileloc).stem for d in bag.dags.values()} == {p.stem for p in DAGS.rglob("*.py")}


def test_every_dag_has_an_owner_tags_retries_on_purpose_and_docs(bag):
    per_file: dict[str, list[str]] = {}
    for dag in bag.dags.values():
        per_file.setdefault(dag.fileloc, []).append(dag.dag_id)
        assert dag.owner and dag.owner != "airflow", dag.dag_id
        assert dag.tags, dag.dag_id
        assert (dag.doc_md or "").strip().startswith("### "), dag.dag_id
        assert "retries" in (dag.default_args or {}), dag.dag_id
    for fileloc, dag_ids in per_file.items():
        if len(dag_ids) == 1:  # a file of one DAG is named after it (a factory file may build several)
            assert dag_ids == [Path(fileloc).stem]


def test_the_doctor_dag_files_are_one_call_into_the_package():
    for name, factory in (("doctor", "doctor_dag"), ("doctor_sweeper", "doctor_sweeper_dag")):
        code = [
            line
            for line in (DAGS / f"{name}.py").read_text().splitlines()
            if line.strip() and not line.startswith(('"""', "#"))
        ]
        assert code == [f"from airflow_doctor.dags import {factory}", f"dag = {factory}()"]


def test_the_doctor_dags_are_opted_out_of_their_own_healing(bag):
    for dag_id in ("doctor", "doctor_sweeper"):
        assert "doctor:off" in bag.dags[dag_id].tags
