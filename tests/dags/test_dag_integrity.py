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


#: The doctor DAG's flow, edge by edge: fetch_logs -> embed -> retrieve -> diagnose -> gate, three
#: branches (clear; approval: prepare -> request -> act; escalate -> notify), then record -> verify ->
#: report -> summarize_run. 16 edges; data passed through XCom draws none of its own (issue #24: 48).
DOCTOR_EDGES_MAX = 16


def _edges(dag) -> set[tuple[str, str]]:
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}


def test_the_doctor_graph_draws_edges_only_where_the_flow_goes(bag):
    doctor = bag.dags["doctor"]
    edges = _edges(doctor)
    assert len(doctor.tasks) == 15
    assert len(edges) <= DOCTOR_EDGES_MAX, sorted(edges)
    gate = "handle_failures.gate_on_confidence"
    assert {t for u, t in edges if u == gate} == {
        f"handle_failures.{s}" for s in ("clear_and_retry", "prepare_approval", "escalate")
    }
    assert {u for u, t in edges if t == "summarize_run"} == {"handle_failures.report_retry"}


def test_every_mapped_task_of_the_doctor_is_labelled_after_its_failure(bag):
    """The Graph and Grid views show a mapped instance's rendered map_index_template instead of its
    index: every task of the mapped group has one, the branches that may be skipped included."""
    mapped = [t for t in bag.dags["doctor"].tasks if t.task_id.startswith("handle_failures.")]
    assert len(mapped) == 13
    assert all(getattr(t, "map_index_template", None) for t in mapped), [
        t.task_id for t in mapped if not getattr(t, "map_index_template", None)
    ]


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({}, id="nothing"),
        pytest.param(
            {"dag_id": None, "run_id": None, "task_id": None, "map_index": None, "try_number": None},
            id="every-field-empty",
        ),
        pytest.param({"dag_id": "", "run_id": "", "task_id": ""}, id="empty-strings"),
        pytest.param({"dag_id": "etl", "task_id": "load"}, id="dag-and-task-only"),
    ],
)
def test_the_doctor_trigger_form_accepts_empty_fields(bag, conf):
    """Airflow validates a trigger's conf against the Params (the form's Trigger button is disabled
    while a required field is empty): every id may stay empty, as the README promises."""
    import copy

    params = copy.deepcopy(bag.dags["doctor"].params)
    params.update(conf)
    resolved = params.validate()
    assert resolved["dry_run"] is False


def test_diagnose_now_on_the_doctor_tab_sends_a_conf_the_form_accepts(bag, monkeypatch):
    """The Doctor tab's "Diagnose now" (knowledge.answers.trigger_doctor_as_user) triggers the doctor
    with the form's Params filled in; Airflow validates that conf against them."""
    import copy

    from airflow_doctor.knowledge import answers

    sent = {}

    class AsPerson:
        def trigger_dag_run(self, dag_id, conf, note=None):
            sent.update(dag_id=dag_id, conf=conf)
            return {"dag_run_id": "manual__1"}

    monkeypatch.setattr(answers, "_as_person", lambda url, token: AsPerson())
    ti = answers.TaskInstanceKey("etl", "scheduled__2026-12-07", "load", -1)
    assert answers.trigger_doctor_as_user("http://x", "token", ti, 1) == "manual__1"
    params = copy.deepcopy(bag.dags[sent["dag_id"]].params)
    params.update(sent["conf"])
    assert params.validate()["try_number"] == 1
