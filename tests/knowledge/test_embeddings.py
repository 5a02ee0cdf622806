"""Embeddings: the real local model, and reuse of a stored vector for a known fingerprint."""

from __future__ import annotations

import math

import pytest

from airflow_doctor.knowledge import embeddings
from airflow_doctor.knowledge.runbooks import ensure_seeded
from airflow_doctor.logs.fingerprint import fingerprint, signature


def excerpt_for(exc_type: str, message: str) -> dict:
    return {
        "exception_type": exc_type,
        "message": message,
        "text": f"{exc_type}: {message}",
        "signature": signature(exc_type, message),
        "fingerprint": fingerprint(exc_type, message),
    }


def test_vectors_are_384_long_and_normalised():
    [vector] = embeddings.embed(["ConnectionRefusedError: [Errno 111] Connection refused"])
    assert len(vector) == 384
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-4)


def test_a_known_fingerprint_reuses_the_stored_vector(kb, monkeypatch):
    ensure_seeded(kb, embeddings.embed, embeddings.model_name())
    known = excerpt_for("ConnectionRefusedError", "[Errno 111] Connection refused")  # a runbook example
    computed = embeddings.embed([embeddings.embedding_text(known["signature"])])[0]
    monkeypatch.setattr(embeddings, "embed", lambda *a, **k: pytest.fail("the model must not run"))
    out = embeddings.embed_excerpt(known, kb=kb)
    assert out["reused"] is True
    assert out["embedding"] == pytest.approx(computed, abs=1e-5)


def test_a_new_fingerprint_is_embedded(kb):
    ensure_seeded(kb, embeddings.embed, embeddings.model_name())
    out = embeddings.embed_excerpt(excerpt_for("acme.UpstreamBusy", "export queue is full"), kb=kb)
    assert "reused" not in out and len(out["embedding"]) == 384


def test_seeding_refreshes_an_entry_whose_class_changed_and_is_a_no_op_otherwise(kb, monkeypatch):
    """An upgrade that renames a runbook entry's class (text unchanged) must reach an existing
    knowledge base: the gate reads the stored class."""
    import airflow_doctor.knowledge.runbooks as knowledge

    model = embeddings.model_name()
    rows = knowledge.load_runbooks()
    assert ensure_seeded(kb, embeddings.embed, model) == len(rows)
    assert ensure_seeded(kb, embeddings.embed, model) == 0
    renamed = [
        dict(r, error_class="renamed_class") if r["runbook_id"] == rows[0]["runbook_id"] else r for r in rows
    ]
    monkeypatch.setattr(knowledge, "load_runbooks", lambda: renamed)
    assert ensure_seeded(kb, embeddings.embed, model) == 1
    assert kb.runbook_entries()[rows[0]["runbook_id"]]["error_class"] == "renamed_class"
