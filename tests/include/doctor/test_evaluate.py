"""The eval command end to end: real pipeline, embedded Postgres + pgvector, real embeddings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from include.doctor.evaluate import load_corpus, run_eval, score

ROOT = Path(__file__).resolve().parents[3]
DEV_CORPUS = ROOT.parent / "shared" / "corpus" / "dev.jsonl"


def log(exc_line: str) -> str:
    return (
        "[2025-01-01T00:00:00.000+0000] {taskinstance.py:2905} ERROR - Task failed with exception\n"
        'Traceback (most recent call last):\n  File "/opt/airflow/dags/etl.py", line 10, in load\n'
        f"{exc_line}\n"
    )


# My own small corpus: a novel transient failure twice (memory only helps the second time in
# replay), a known transient class, and permanent ones.
NOVEL = "acme.errors.UpstreamBusy: the export service is busy, try again later (queue position 7)"
CORPUS = [
    {
        "id": "novel-1",
        "log": log(NOVEL),
        "transient": True,
        "action": "retry_with_backoff",
        "error_class": "busy",
    },
    {
        "id": "refused",
        "log": log(
            'psycopg2.OperationalError: connection to server at "10.1.2.3", port 5432 failed: '
            "Connection refused"
        ),
        "transient": True,
        "action": "retry",
        "error_class": "db_connection_refused",
    },
    {
        "id": "keyerror",
        "log": log("KeyError: 'customer_id'"),
        "transient": False,
        "action": "notify",
        "error_class": "key_error",
    },
    {
        "id": "auth",
        "log": log(
            'psycopg2.OperationalError: connection to server at "db" failed: FATAL:  password '
            'authentication failed for user "etl"'
        ),
        "transient": False,
        "action": "notify",
        "error_class": "invalid_credentials",
    },
    {
        "id": "novel-2",
        "log": log(NOVEL.replace("7", "12")),
        "transient": True,
        "action": "retry_with_backoff",
        "error_class": "busy",
    },
]


def test_score_counts_precision_and_recall():
    assert score([True, True, False, False], [True, False, True, False]) == {
        "auto_retried": 2,
        "auto_retry_precision": 0.5,
        "transient_recall": 0.5,
    }
    assert score([False, False], [True, False])["auto_retry_precision"] is None


def test_cold_mode_knows_only_the_runbooks(kb):
    report = run_eval(CORPUS, kb, replay=False, diagnoser="offline")
    verdicts = {c["id"]: c["auto_retried"] for c in report["cases"]}
    assert verdicts == {"novel-1": False, "refused": True, "keyerror": False, "auth": False, "novel-2": False}
    assert report["auto_retry_precision"] == 1.0 and report["transient_recall"] == pytest.approx(
        1 / 3, abs=1e-3
    )
    assert report["baselines"]["retry_all"] == {
        "auto_retried": 5,
        "auto_retry_precision": 0.6,
        "transient_recall": 1.0,
    }
    assert report["per_class"]["busy"] == {"n": 2, "transient": 2, "auto_retried": 0, "correct": 0}


def test_replay_learns_from_a_persons_label(kb):
    report = run_eval(CORPUS, kb, replay=True, diagnoser="offline")
    verdicts = {c["id"]: c["auto_retried"] for c in report["cases"]}
    # novel-1 was escalated and labelled transient by a person (retried with success): the same
    # failure recurring is now recognised and retried.
    assert verdicts["novel-1"] is False and verdicts["novel-2"] is True
    assert report["transient_recall"] == pytest.approx(2 / 3, abs=1e-3)


def test_replay_does_not_trust_a_failed_retry(kb):
    corpus = [dict(CORPUS[0], transient=False, action="notify", id="p1"), dict(CORPUS[4], transient=True)]
    report = run_eval(corpus, kb, replay=True, diagnoser="offline")
    assert [c["auto_retried"] for c in report["cases"]] == [False, False]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("not json", "not JSON", id="not-json"),
        pytest.param(
            '{"id": 1, "log": "x", "transient": true, "action": "retry"}', "error_class", id="missing-field"
        ),
        pytest.param(
            '{"id": 1, "log": "x", "transient": true, "action": "reboot", "error_class": "x"}',
            "reboot",
            id="unknown-action",
        ),
        pytest.param(
            '{"id": 1, "log": "x", "transient": "yes", "action": "retry", "error_class": "x"}',
            "true or false",
            id="transient-not-bool",
        ),
    ],
)
def test_malformed_corpus_line_is_named(tmp_path, line, message):
    path = tmp_path / "c.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load_corpus(path)
    assert "c.jsonl:1" in str(err.value)


def test_cli_prints_one_json_object(tmp_path, kb_dsn):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in CORPUS))
    out = subprocess.run(
        [sys.executable, "-m", "include.doctor", "eval", "--corpus", str(path), "--json", "--dsn", kb_dsn],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for key in (
        "n",
        "auto_retry_precision",
        "transient_recall",
        "escalated",
        "llm_calls",
        "per_class",
        "baselines",
    ):
        assert key in report
    assert report["n"] == 5 and set(report["baselines"]) == {"retry_all", "rules_only"}


def test_cli_llm_without_connection_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(CORPUS[0]))
    env = {k: v for k, v in __import__("os").environ.items() if k != "AIRFLOW_CONN_DOCTOR_LLM"}
    out = subprocess.run(
        [sys.executable, "-m", "include.doctor", "eval", "--corpus", str(path), "--diagnoser", "llm"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
    )
    assert out.returncode == 2 and "doctor_llm" in out.stderr


@pytest.mark.skipif(not DEV_CORPUS.exists(), reason="../shared/corpus/dev.jsonl is not beside the project")
@pytest.mark.parametrize("replay", [False, True], ids=["cold", "replay"])
def test_dev_corpus_meets_the_decision_quality_bar(kb, replay):
    """Issue "Memory and judgement": precision >= 0.95 and recall >= 0.70 (offline). The dev corpus
    was used for error analysis, so this guards against regressions, not for generalisation."""
    report = run_eval(load_corpus(DEV_CORPUS), kb, replay=replay, diagnoser="offline")
    assert report["auto_retry_precision"] >= 0.95
    assert report["transient_recall"] >= 0.70
    assert report["baselines"]["retry_all"]["auto_retry_precision"] < 0.5
