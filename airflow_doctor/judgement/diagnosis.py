"""Diagnosis: from an error excerpt and similar cases to a typed Diagnosis, with Claude or offline.

The LLM path calls Claude through the Anthropic provider's hook on connection `doctor_llm`
(host = optional base URL of any Anthropic-compatible endpoint; extra `model`), forcing a single
tool whose input schema is the Diagnosis model. Anything invalid, refused, truncated, empty or
timed out is "no diagnosis" (None), which the gate escalates; the error is logged, never raised.

The offline path (no `doctor_llm` connection) is memory first (fingerprint, then a near-identical
neighbour), then rules on exception types and messages; it is labelled `offline` everywhere.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from airflow_doctor.judgement.reading import Reading, read
from airflow_doctor.judgement.rules import VETO_CONFIDENCE, Rule
from airflow_doctor.knowledge.memory import Recall
from airflow_doctor.models import (
    ACTION_MEANINGS,
    Action,
    Diagnosed,
    Diagnosis,
    FailureRef,
    Memory,
    Neighbour,
    TaskHistory,
)
from airflow_doctor.resources import data_dir
from airflow_doctor.settings import LLM_CONN_ID, DoctorSettings, connection_exists

log = logging.getLogger(__name__)

PROMPT_DIR = data_dir("prompts")
TOOL_NAME = "record_diagnosis"
# The current Sonnet (November 2026): fast and cheap enough for one call per failure. Override with
# the connection's extra {"model": ...}.
DEFAULT_MODEL = "claude-sonnet-5-5"
LLM_TIMEOUT_SECONDS = 60.0
LLM_MAX_RETRIES = 3  # the SDK retries 408/409/429/5xx/529 with exponential backoff and honours retry-after
MAX_OUTPUT_TOKENS = 1024


# -- offline path ---------------------------------------------------------------------------


def diagnose_offline(
    excerpt: dict,
    neighbours: list[Neighbour],
    fingerprint_matches: list[Neighbour],
    similarity_threshold: float,
    *,
    local_services: bool = False,
    reading: Reading | None = None,
) -> Diagnosis:
    """Diagnose without an LLM: memory first, then rules, and let them check each other.

    Memory is `Recall.recognised` (airflow_doctor/knowledge/memory.py): a case with the same fingerprint,
    else the most similar case at or above `similarity_threshold` (cosine). Rules are
    airflow_doctor/judgement/rules.py, through their reading of the excerpt (reading.py).

    Args:
        excerpt: an Excerpt as dict (exception_type, message, causes, text, ...).
        neighbours: similar cases, most similar first.
        fingerprint_matches: earlier cases with the same fingerprint.
        similarity_threshold: a neighbour at least this similar counts as memory.
        local_services: localhost services are real here (rules.LOCALHOST_REFUSED).
        reading: the rules' reading of `excerpt` (reading.read), when the caller has it; read here
            otherwise.
    Returns:
        a Diagnosis labelled diagnoser="offline". Confidence: memory alone 0.9 for a fingerprint
        match, else the neighbour's similarity (at most 0.95); a rule alone its own estimate;
        memory and rule agreeing on transience the higher of the two plus 0.05 (at most 0.97);
        disagreeing: the rule when memory is only a similar runbook case (a runbook describes a
        class; similar text is not the same cause) or a similar observed case of another class and
        fingerprint (another error that reads alike), memory when it is what happened to this very
        error (`Recall.known_outcome`) at 0.9, else the class of the stronger one at 0.5 (the gate
        escalates); nothing 0.2.
    """
    recall = Recall.of(neighbours, fingerprint_matches, similarity_threshold)
    memory = recall.recognised()
    rule = (reading or read(excerpt, local_services=local_services)).rule
    evidence = _evidence(excerpt)
    if memory is None and rule is None:
        return Diagnosis(
            error_class="unknown_error",
            root_cause="The doctor could not recognise this failure.",
            transient=False,
            recommended_action=Action.notify,
            confidence=0.2,
            fix_steps=["Read the task log and diagnose by hand."],
            evidence=evidence,
        )
    if memory is None:
        return _from_rule(rule, rule.confidence, evidence)
    n, mem_conf, why = memory
    from_memory = _from_memory(n, mem_conf, why)
    if rule is None:
        return from_memory
    if rule.transient == bool(n.transient):
        from_memory.confidence = min(0.97, max(mem_conf, rule.confidence) + 0.05)
        from_memory.evidence = evidence
        return from_memory
    if n not in recall.fingerprint_matches and (n.kind == "runbook" or n.error_class != rule.error_class):
        # A runbook case describes a class, and an observed case of another class and fingerprint is
        # another error; their vectors say only that the text reads alike (often the same API's error
        # format with another code: a 403 beside this 503). The rule read this error's own words. An
        # observed case the rules would read as this same class (a person's "permanent" for a 503 of
        # a decommissioned endpoint) still speaks: below.
        from_rule = _from_rule(rule, rule.confidence, evidence)
        from_rule.root_cause += f" (a {n.kind} case of {n.error_class} reads alike; the error says this)"
        return from_rule
    if recall.known_outcome() is n:
        # This very error (same fingerprint) already ended one way here: what happened outweighs a
        # pattern's reading of its words.
        from_memory.evidence = evidence
        return from_memory
    # Memory and rules disagree: keep the stronger reading, but not confidently.
    stronger = from_memory if mem_conf >= rule.confidence else _from_rule(rule, rule.confidence, evidence)
    stronger.confidence = 0.5
    stronger.root_cause += " (memory and rules disagree on whether a retry would help)"
    return stronger


def _from_rule(rule: Rule, confidence: float, evidence: list[str]) -> Diagnosis:
    return Diagnosis(
        error_class=rule.error_class,
        root_cause=rule.root_cause,
        transient=rule.transient,
        recommended_action=rule.action,
        confidence=confidence,
        fix_steps=[rule.fix_step],
        evidence=evidence,
        diagnoser="offline",
    )


# An observed case's title is its diagnosis' root cause, which may itself say it was recognised.
_RECOGNISED = re.compile(r"^(?:Recognised from memory \([^)]*\): )+")


def _from_memory(n: Neighbour, confidence: float, why: str) -> Diagnosis:
    action = n.recommended_action or (Action.retry if n.transient else Action.notify)
    what = _RECOGNISED.sub("", n.title or "") or n.error_class
    return Diagnosis(
        error_class=n.error_class or "unknown_error",
        root_cause=f"Recognised from memory ({why}): {what}",
        transient=bool(n.transient),
        recommended_action=action,
        confidence=confidence,
        fix_steps=list(n.fix_steps),
        evidence=[],
        diagnoser="offline",
    )


def _evidence(excerpt: dict) -> list[str]:
    """The excerpt's exception line, verbatim, when it can be found."""
    exc = excerpt.get("exception_type")
    for line in reversed((excerpt.get("text") or "").splitlines()):
        if exc and exc in line:
            return [line.strip()]
    return []


# -- LLM path --------------------------------------------------------------------------------


@cache
def _prompt(name: str) -> str:
    return (PROMPT_DIR / name).read_text(encoding="utf-8")


def system_prompt() -> str:
    """The stable system prompt: rules plus the action catalogue (cached by the API)."""
    catalogue = "\n".join(f"- {a.value}: {meaning}" for a, meaning in ACTION_MEANINGS.items())
    return _prompt("diagnose_system.md").replace("{action_catalogue}", catalogue)


def user_prompt(
    ref: FailureRef, excerpt: dict, neighbours: list[Neighbour], history: TaskHistory | None = None
) -> str:
    """The per-failure prompt (include/prompts/diagnose_user.md.j2) with the log as untrusted data,
    and the deployment's record (Airflow's DAG versions and the task's recent outcomes: facts the
    failing task could not write) beside it; the lines only the failed try printed are log text and
    go in their own untrusted block."""
    import jinja2

    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701 - plain text
    # The excerpt must not be able to close its own wrapper tag.
    text = (excerpt.get("text") or excerpt.get("message") or "").replace(
        "</untrusted_log>", "</untrusted-log>"
    )
    new_lines = "\n".join((history.new_lines if history else []) or []).replace(
        "</untrusted_log_diff>", "</untrusted-log-diff>"
    )
    return env.from_string(_prompt("diagnose_user.md.j2")).render(
        ref=ref,
        operator=excerpt.get("operator"),
        neighbours=neighbours,
        exception_type=excerpt.get("exception_type"),
        excerpt=text,
        history=history,
        new_lines=new_lines,
    )


def tool_schema() -> dict:
    """The `record_diagnosis` tool: its input schema is the Diagnosis model's (LLM-facing fields)."""
    schema = Diagnosis.model_json_schema()
    for internal in ("diagnoser", "model"):
        schema["properties"].pop(internal, None)
    schema["required"] = [
        "error_class",
        "root_cause",
        "transient",
        "recommended_action",
        "confidence",
        "evidence",
    ]
    return {
        "name": TOOL_NAME,
        "description": "Record the diagnosis of the failed task instance.",
        "input_schema": schema,
    }


def llm_configured(conn_id: str = LLM_CONN_ID) -> bool:
    """Whether the LLM connection exists; without it the doctor diagnoses offline."""
    return connection_exists(conn_id)


# The module whose import makes the LLM call possible: the Anthropic provider's hook, which imports
# the `anthropic` SDK (~1.1-1.2 s of CPU on the 2-core bench machine, almost all of it the SDK's own
# package __init__: anthropic.types 0.74 s, anthropic.lib.vertex 0.31 s, anthropic._client 0.11 s;
# `python -X importtime -c "import airflow.providers.anthropic.hooks.anthropic"`, 2026-12-05).
# Importing a submodule runs the package __init__, so no narrower import exists.
LLM_CLIENT_MODULE = "airflow.providers.anthropic.hooks.anthropic"


def preload_llm_client(conn_id: str = LLM_CONN_ID):
    """Import the LLM client (LLM_CLIENT_MODULE) in a daemon thread when `conn_id` exists.

    The diagnose task starts this before Airflow reads its inputs from XCom, so the import runs
    while the task waits on the execution API (XCom, the connection) instead of after; the later
    import in `diagnose_with_llm` waits for this one (Python's per-module import lock) and is then
    free. Without the connection nothing is imported (the offline path never pays for the SDK).

    Returns:
        the started threading.Thread (it never raises: an import error shows again, logged, in the
        call).
    """
    import importlib
    import threading

    def load() -> None:
        try:
            if llm_configured(conn_id):
                importlib.import_module(LLM_CLIENT_MODULE)
        except Exception as exc:  # noqa: BLE001 - diagnose_with_llm imports again and reports it
            log.debug("Preloading %s failed: %s", LLM_CLIENT_MODULE, exc)

    thread = threading.Thread(target=load, name="doctor-llm-preload", daemon=True)
    thread.start()
    return thread


@dataclass
class LLMResult:
    """What one LLM call gave: a diagnosis (None = no diagnosis) and its cost."""

    diagnosis: Diagnosis | None
    error: str | None
    model: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    latency_ms: int = 0


def diagnose_with_llm(
    ref: FailureRef,
    excerpt: dict,
    neighbours: list[Neighbour],
    conn_id: str = LLM_CONN_ID,
    timeout: float = LLM_TIMEOUT_SECONDS,
    *,
    history: TaskHistory | None = None,
) -> LLMResult:
    """Ask Claude for a Diagnosis through tool use.

    Args:
        ref: the failure.
        excerpt: an Excerpt as dict; its text is redacted already.
        neighbours: similar cases to show the model.
        conn_id: the Anthropic connection (default `doctor_llm`).
        timeout: seconds for the whole request, per attempt.
        history: the task's history (DAG versions, recent outcomes, what only the failed try
            printed), shown as the deployment's record; None: "not read".
    Returns:
        LLMResult; `diagnosis` is None (with `error` set) when the answer was refused, truncated,
        empty, not the tool, invalid, or the call failed. Evidence lines not found verbatim in the
        excerpt set confidence to 0.
    """
    from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

    t0 = time.monotonic()
    model = None
    try:
        hook = AnthropicHook(conn_id=conn_id)
        model = hook.get_connection(hook.conn_id).extra_dejson.get("model") or DEFAULT_MODEL
        client = hook.get_conn().with_options(timeout=timeout, max_retries=LLM_MAX_RETRIES)
        message = client.messages.create(
            model=model,
            max_tokens=MAX_OUTPUT_TOKENS,
            system=[{"type": "text", "text": system_prompt(), "cache_control": {"type": "ephemeral"}}],
            tools=[{**tool_schema(), "cache_control": {"type": "ephemeral"}}],
            # "auto", not a forced tool: current Claude models with thinking reject forced tool_choice
            # (400). The system prompt asks for exactly one call; prose instead of it is no diagnosis.
            tool_choice={"type": "auto"},
            messages=[{"role": "user", "content": user_prompt(ref, excerpt, neighbours, history)}],
        )
    except Exception as exc:  # noqa: BLE001 - any failure of the call is "no diagnosis", never a crash
        log.warning("LLM call failed for %s: %s: %s", ref.label, type(exc).__name__, exc)
        return LLMResult(
            None, f"{type(exc).__name__}: {exc}"[:500], model, latency_ms=int((time.monotonic() - t0) * 1000)
        )
    latency_ms = int((time.monotonic() - t0) * 1000)
    usage = getattr(message, "usage", None)
    result = LLMResult(
        None,
        None,
        getattr(message, "model", model) or model,
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        cached_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
        latency_ms=latency_ms,
    )
    diagnosis, error = parse_message(message, excerpt.get("text") or "")
    result.diagnosis, result.error = diagnosis, error
    if diagnosis:
        diagnosis.diagnoser, diagnosis.model = "llm", result.model
    else:
        log.warning("No diagnosis from the LLM for %s: %s", ref.label, error)
    return result


def parse_message(message: Any, excerpt_text: str) -> tuple[Diagnosis | None, str | None]:
    """Validate a Messages API response into a Diagnosis.

    Returns:
        (diagnosis, None) or (None, reason). Reasons: stop_reason refusal/max_tokens, no tool_use
        block, invalid tool input. A diagnosis whose evidence is not verbatim in the excerpt gets
        confidence 0.
    """
    stop = getattr(message, "stop_reason", None)
    if stop in {"refusal", "max_tokens"}:
        return None, f"stop_reason={stop}"
    blocks = [
        b
        for b in (getattr(message, "content", None) or [])
        if getattr(b, "type", None) == "tool_use" and getattr(b, "name", None) == TOOL_NAME
    ]
    if not blocks:
        return None, f"no {TOOL_NAME} tool call (stop_reason={stop})"
    try:
        diagnosis = Diagnosis.model_validate(blocks[0].input)
    except ValidationError as exc:
        return None, f"invalid tool input: {exc.error_count()} errors: {str(exc)[:300]}"
    if not evidence_is_grounded(diagnosis.evidence, excerpt_text):
        diagnosis.confidence = 0.0
    return diagnosis, None


def evidence_is_grounded(evidence: list[str], excerpt_text: str) -> bool:
    """True when there is evidence and every line of it occurs verbatim (trimmed) in the excerpt."""
    lines = [e.strip() for e in evidence if e and e.strip()]
    return bool(lines) and all(line in excerpt_text for line in lines)


RULE_VETO_CONFIDENCE = (
    VETO_CONFIDENCE  # a rule at least this sure that a failure is permanent vetoes "transient"
)
VETOED_CONFIDENCE = 0.3


def cross_check(
    diagnosis: Diagnosis,
    excerpt: dict,
    *,
    local_services: bool = False,
    reading: Reading | None = None,
) -> Diagnosis:
    """Check an LLM's "transient" against the offline rules, in place.

    When the model says transient but a rule at least RULE_VETO_CONFIDENCE sure says the primary
    error is permanent (a KeyError, bad credentials, a missing module ...; `Reading.vetoes_transient`),
    the model's confidence is cut to VETOED_CONFIDENCE: text in a log must not be able to talk the
    doctor into a retry (docs/architecture.md, invariants). A disputed reading (disputes.is_disputed:
    a surface transient failures share, such as a memory kill or a duplicate key) is left to the
    gate, which lets a confident diagnosis settle it only on a log that argues for nothing. The
    opposite direction (model says permanent) is left alone: it only ever leads to escalation.

    Args:
        diagnosis: the LLM's diagnosis; changed in place.
        excerpt: the excerpt it diagnosed (as dict).
        local_services: localhost services are real here (rules.LOCALHOST_REFUSED).
        reading: the rules' reading of `excerpt`, when the caller has it; read here otherwise.
    Returns:
        the same diagnosis.
    """
    if not diagnosis.transient:
        return diagnosis
    reading = reading or read(excerpt, local_services=local_services)
    if reading.vetoes_transient:
        rule = reading.rule
        diagnosis.confidence = min(diagnosis.confidence, VETOED_CONFIDENCE)
        diagnosis.root_cause = (
            f"{diagnosis.root_cause} [doctor: the offline rules read this error as "
            f"{rule.error_class}, which is not transient; confidence lowered]"
        )[:1000]
    return diagnosis


def rules_dispute_memory(
    recall: Recall,
    excerpt: dict,
    *,
    local_services: bool = False,
    reading: Reading | None = None,
) -> bool:
    """Whether memory does not know this failure well enough to skip the LLM, though it recognises
    it (`Recall.decides_without_llm`).

    True when the recognised case is not what happened to this very error (`Recall.known_outcome`:
    a verified retry or a person's "permanent" for this fingerprint) and either the rules read the
    error's own words the other way (transient against permanent: `diagnose_offline`'s
    disagreement) or their reading is disputed (disputes.is_disputed), which a runbook entry, curated
    knowledge of a class like the rules, cannot settle and an LLM diagnosis may.

    Args:
        recall: memory of the failure.
        excerpt: its excerpt (as dict).
        local_services: localhost services are real here (rules.LOCALHOST_REFUSED).
        reading: the rules' reading of `excerpt`, when the caller has it; read here otherwise.
    Returns:
        bool.
    """
    found = recall.recognised()
    if found is None or recall.known_outcome() is not None:
        return False
    reading = reading or read(excerpt, local_services=local_services)
    if reading.rule is None:
        return False
    return reading.rule.transient != bool(found[0].transient) or reading.disputed


def diagnose_failure(
    ref: FailureRef,
    excerpt: dict,
    memory: Memory,
    settings: DoctorSettings,
    *,
    use_llm: bool | None = None,
    reading: Reading | None = None,
    history: TaskHistory | None = None,
) -> Diagnosed:
    """Diagnose one failure: memory first, then Claude if `doctor_llm` exists, else offline rules.

    A failure memory knows well enough (`Recall.decides_without_llm`) is decided from memory without
    an LLM call (`[doctor] memory_first`, default on), unless the rules read the error the
    other way (`rules_dispute_memory`). An LLM "transient" is cross-checked against the rules
    (`cross_check`).

    Args:
        ref: the failed try (the group's representative).
        excerpt: its excerpt (as dict).
        memory: retrieve_similar's Memory.
        settings: the doctor run's settings (thresholds, memory_first).
        use_llm: True or False forces the path; None asks whether `doctor_llm` exists.
        reading: the rules' reading of `excerpt` (reading.read with the settings' local_services),
            when the caller has it; read here, once, otherwise.
        history: what Airflow recorded about the task (capture/history.py), shown to the model as
            the deployment's record; None when not read.
    Returns:
        Diagnosed: the diagnosis (None when none came out, with `error` saying why), the diagnoser
        ("llm", "offline" or "memory"), and for an LLM call its model, tokens and latency. Never
        raises.
    """
    recall = Recall.of(memory.neighbours, memory.fingerprint_matches, settings.similarity_threshold)
    reading = reading or read(excerpt, local_services=settings.local_services)
    verified_memory = recall.decides_without_llm() and not rules_dispute_memory(
        recall, excerpt, reading=reading
    )
    if use_llm is None:
        use_llm = llm_configured()
    if use_llm and not (verified_memory and settings.memory_first):
        result = diagnose_with_llm(ref, excerpt, memory.neighbours, history=history)
        if result.diagnosis is not None:
            cross_check(result.diagnosis, excerpt, reading=reading)
        return Diagnosed(
            diagnosis=result.diagnosis,
            diagnoser="llm",
            llm_called=True,
            error=result.error,
            model=result.model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cached_tokens=result.cached_tokens,
            latency_ms=result.latency_ms,
        )
    diagnoser = "memory" if use_llm else "offline"
    try:
        t0 = time.monotonic()
        diagnosis = diagnose_offline(
            excerpt,
            memory.neighbours,
            memory.fingerprint_matches,
            settings.similarity_threshold,
            local_services=settings.local_services,
            reading=reading,
        )
        return Diagnosed(
            diagnosis=diagnosis, diagnoser=diagnoser, latency_ms=int((time.monotonic() - t0) * 1000)
        )
    except Exception as exc:  # noqa: BLE001 - no diagnosis, said why: the gate escalates
        return Diagnosed(diagnoser="offline", error=f"{type(exc).__name__}: {exc}"[:500])
