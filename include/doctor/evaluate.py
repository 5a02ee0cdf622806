"""`eval`: how good the doctor's decisions are on a labelled corpus of failure logs.

Runs the real pipeline on each log (excerpt → redact → fingerprint → embed → retrieve →
diagnose → gate) against a knowledge base seeded with the curated runbooks, and scores the gate's
verdicts against the labels. Cold mode: the knowledge base holds only the runbooks. Replay mode:
cases run in file order and each outcome is fed back as production would: an auto-retried
transient case becomes a verified success, an auto-retried permanent one a failed retry, an
escalated one is recorded with the label a person would give it (a transient one as retried by
that person with success).

Writes only to the knowledge base it is given (an embedded one by default).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.doctor.config import DoctorSettings
from include.doctor.models import RETRY_ACTIONS, Action, Decision, FailureRef

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("id", "log", "transient", "action", "error_class")
ACTIONS = {a.value for a in Action}


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens (defaults: Claude Sonnet 5.5 list prices, November 2026)."""

    input: float = 2.0
    output: float = 10.0
    cached: float = 0.20


def load_corpus(path: Path) -> list[dict]:
    """Read a JSONL corpus.

    Returns:
        one dict per non-empty line.
    Raises:
        ValueError: a line is not JSON, lacks a required field, or has an unknown action
            (the message names the line).
    """
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
        missing = [f for f in REQUIRED_FIELDS if f not in case]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        if case["action"] not in ACTIONS:
            raise ValueError(f"{path}:{number}: action {case['action']!r} is not one of {sorted(ACTIONS)}")
        if not isinstance(case["transient"], bool):
            raise ValueError(f"{path}:{number}: transient must be true or false")
        cases.append(case)
    return cases


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def score(verdicts: list[bool], labels: list[bool]) -> dict:
    """Precision of auto-retries and recall of transient failures.

    Args:
        verdicts: True where the failure was auto-retried.
        labels: True where the failure is transient.
    Returns:
        {"auto_retried", "auto_retry_precision" (share of auto-retried that are transient, None
        when nothing was retried), "transient_recall" (share of transient auto-retried)}.
    """
    retried = sum(verdicts)
    hits = sum(v and t for v, t in zip(verdicts, labels, strict=True))
    return {
        "auto_retried": retried,
        "auto_retry_precision": _rate(hits, retried),
        "transient_recall": _rate(hits, sum(labels)),
    }


def run_eval(
    cases: list[dict],
    kb,
    *,
    replay: bool,
    diagnoser: str,
    settings: DoctorSettings | None = None,
    prices: Prices = Prices(),
) -> dict:
    """Evaluate the pipeline on `cases` with knowledge base `kb` (migrated, any state).

    Args:
        cases: corpus rows (see `load_corpus`).
        kb: a KnowledgeBase; its observed cases are deleted first so every run starts cold.
        replay: feed outcomes back in file order (see module docstring).
        diagnoser: "offline" or "llm" (Claude through connection `doctor_llm`, memory first).
        settings: gate thresholds (default: the code defaults).
    Returns:
        the report: n, mode, diagnoser, auto_retry_precision, transient_recall, auto_retried,
        escalated, llm_calls, llm_calls_saved, tokens and cost, per_class, baselines, cases.
    """
    from include.doctor import embeddings
    from include.doctor.diagnosis import diagnose
    from include.doctor.gate import decide
    from include.doctor.knowledge import ensure_seeded
    from include.doctor.logs import excerpt_record, extract_excerpt
    from include.doctor.models import Diagnosis, Neighbour
    from include.doctor.rules import match_rule
    from include.doctor.store import retrieve_similar

    settings = settings or DoctorSettings()
    t0 = time.monotonic()
    kb.delete_observed_cases()
    ensure_seeded(kb, embeddings.embed, embeddings.model_name())

    excerpts = [excerpt_record(extract_excerpt(case["log"])) for case in cases]
    vectors = embeddings.embed([embeddings.embedding_text(e["signature"], e["text"]) for e in excerpts])

    rows = []
    usage = defaultdict(int)
    for case, excerpt, vector in zip(cases, excerpts, vectors, strict=True):
        ref = FailureRef(
            dag_id="eval",
            run_id=str(case["id"]),
            task_id=case.get("task_id") or "task",
            try_number=1,
            source="manual",
        )
        embedding = {"embedding": vector, "model": embeddings.model_name()}
        memory = retrieve_similar(
            ref.model_dump(mode="json"), excerpt, embedding, kb=kb, k=settings.neighbours
        )
        result = diagnose(ref.model_dump(mode="json"), excerpt, memory, use_llm=diagnoser == "llm")
        for key in ("input_tokens", "output_tokens", "cached_tokens"):
            usage[key] += result.get(key) or 0
        diagnosis = Diagnosis.model_validate(result["diagnosis"]) if result["diagnosis"] else None
        decision: Decision = decide(
            diagnosis,
            [Neighbour.model_validate(n) for n in memory["neighbours"]],
            [Neighbour.model_validate(n) for n in memory["fingerprint_matches"]],
            0,
            [],
            settings,
        )
        retried = decision.verdict == "auto_retry"
        rule = match_rule(excerpt["exception_type"], excerpt["message"], excerpt["causes"])
        rows.append(
            {
                "id": case["id"],
                "error_class": case["error_class"],
                "transient": case["transient"],
                "action": case["action"],
                "auto_retried": retried,
                "llm_called": result["llm_called"],
                "diagnosis": diagnosis.model_dump(mode="json") if diagnosis else None,
                "similarity": decision.similarity,
                "reasons": decision.reasons,
                "rules_retry": bool(rule and rule.transient and rule.action in RETRY_ACTIONS),
            }
        )
        if replay:
            _feed_back(kb, ref, case, excerpt, embedding, diagnosis, decision)

    labels = [r["transient"] for r in rows]
    report = {
        "n": len(rows),
        "mode": "replay" if replay else "cold",
        "diagnoser": diagnoser,
        **score([r["auto_retried"] for r in rows], labels),
        "escalated": sum(not r["auto_retried"] for r in rows),
        "llm_calls": sum(r["llm_called"] for r in rows),
        "llm_calls_saved": sum(not r["llm_called"] for r in rows) if diagnoser == "llm" else 0,
        **usage,
        "cost_usd": round(
            (
                usage["input_tokens"] * prices.input
                + usage["output_tokens"] * prices.output
                + usage["cached_tokens"] * prices.cached
            )
            / 1e6,
            6,
        ),
        "transient_share": _rate(sum(labels), len(labels)),
        "baselines": {
            "retry_all": score([True] * len(rows), labels),
            "rules_only": score([r["rules_retry"] for r in rows], labels),
        },
        "per_class": _per_class(rows),
        "seconds": round(time.monotonic() - t0, 1),
        "thresholds": {
            "similarity": settings.similarity_threshold,
            "confidence": settings.confidence_threshold,
        },
        "cases": rows,
    }
    return report


def _feed_back(
    kb, ref: FailureRef, case: dict, excerpt: dict, embedding: dict, diagnosis, decision: Decision
):
    """Record one case as production would have learnt it (module docstring)."""
    case_fields = {
        "operator": case.get("operator"),
        "fingerprint": excerpt["fingerprint"],
        "excerpt": excerpt["text"],
        "embedding": embedding["embedding"],
        "embedding_model": embedding["model"],
    }
    decision_data = decision.model_dump(mode="json")
    if decision.verdict == "auto_retry":
        kb.record_case(
            ref=ref,
            case=case_fields,
            diagnosis=diagnosis.model_dump(mode="json"),
            decision=decision_data,
            cleared=True,
            doctor_run_id="eval",
            outcome="succeeded" if case["transient"] else "failed",
        )
        return
    label = {
        "error_class": case["error_class"],
        "root_cause": case.get("rationale") or case["error_class"],
        "transient": case["transient"],
        "recommended_action": case["action"],
        "confidence": 1.0,
        "fix_steps": [],
        "evidence": [],
        "diagnoser": "human",
    }
    retried_by_person = case["transient"] and case["action"] in {a.value for a in RETRY_ACTIONS}
    kb.record_case(
        ref=ref,
        case=case_fields,
        diagnosis=label,
        decision=decision_data,
        cleared=retried_by_person,
        doctor_run_id="eval",
        outcome="succeeded" if retried_by_person else "escalated",
        actor="human",
    )


def _per_class(rows: list[dict]) -> dict:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = out.setdefault(r["error_class"], {"n": 0, "transient": 0, "auto_retried": 0, "correct": 0})
        c["n"] += 1
        c["transient"] += r["transient"]
        c["auto_retried"] += r["auto_retried"]
        c["correct"] += r["auto_retried"] == r["transient"]
    return dict(sorted(out.items()))


def format_report(report: dict) -> str:
    """A plain-text table of the report for people."""

    def pct(x) -> str:
        return "-" if x is None else f"{x:.2f}"

    lines = [
        f"eval: {report['n']} cases, mode {report['mode']}, diagnoser {report['diagnoser']}, "
        f"{report['seconds']}s",
        "",
        f"{'policy':<22}{'auto-retried':>13}{'precision':>11}{'recall':>9}",
        f"{'doctor (gate)':<22}{report['auto_retried']:>13}{pct(report['auto_retry_precision']):>11}"
        f"{pct(report['transient_recall']):>9}",
    ]
    for name, b in report["baselines"].items():
        lines.append(
            f"{name:<22}{b['auto_retried']:>13}{pct(b['auto_retry_precision']):>11}"
            f"{pct(b['transient_recall']):>9}"
        )
    lines += [
        "",
        f"escalated {report['escalated']}, LLM calls {report['llm_calls']}"
        + (
            f" (saved by memory {report['llm_calls_saved']}), tokens in {report['input_tokens']} "
            f"out {report['output_tokens']} cached {report['cached_tokens']}, cost ${report['cost_usd']}"
            if report["diagnoser"] == "llm"
            else ""
        ),
        "",
    ]
    lines.append(f"{'error_class':<40}{'n':>3}{'transient':>10}{'retried':>8}{'correct':>8}")
    for name, c in report["per_class"].items():
        lines.append(f"{name:<40}{c['n']:>3}{c['transient']:>10}{c['auto_retried']:>8}{c['correct']:>8}")
    wrong = [r for r in report["cases"] if r["auto_retried"] != r["transient"]]
    if wrong:
        lines += ["", "decided differently from the label:"]
        for r in wrong:
            got = "auto-retried" if r["auto_retried"] else "escalated"
            lines.append(
                f"  {r['id']}: {got} (label transient={r['transient']}); {'; '.join(r['reasons'])[:160]}"
            )
    return "\n".join(lines)
