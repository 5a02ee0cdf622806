"""`eval`: how good the doctor's decisions are on labelled corpora of failure logs.

Runs the real pipeline on each log (excerpt → redact → fingerprint → embed → retrieve →
diagnose → gate) against a knowledge base seeded with the curated runbooks, and scores the gate's
verdicts against the labels. Three modes:

- cold: the knowledge base holds only the runbooks; every case is judged on its own.
- replay: cases run in file order and each outcome is fed back as production would learn it
  (`_feed_back`).
- stream: the corpus replayed as production sees it: every case recurs `recurrences` times, pass 1
  as written, later passes with the volatile details of the log varied (`vary_log`), each pass in
  its own seeded shuffle, each occurrence a new failure, each outcome fed back. It measures what
  memory adds: the share of transient recurrences healed (auto-retried by the doctor), wrong retries
  after feedback for that case had been recorded (a person's answer, or Airflow's failed retry), and
  recall@5 of earlier occurrences.

Three diagnosers: "offline" (memory + rules), "llm" (Claude through connection `doctor_llm`,
memory first) and "oracle", which takes each case's label as the diagnosis so that the gate and
memory are measured alone.

Feedback (`_feed_back`), from three sources, in replay and stream modes:

- the doctor, always: an auto-retried transient case becomes the doctor's verified successful retry,
  an auto-retried permanent one its verified failed retry (actor doctor, decision auto_retry: what
  its verify step sees).
- a person, `feedback="person"` (the default): an escalated case is recorded with the label the
  person gives it (actor human: a transient one cleared by that person and retried with success, a
  permanent one left failed); an "approval" is approved by the person for a transient case (retry
  succeeds) and rejected for a permanent one.
- Airflow, `feedback="airflow"`: nobody answers. Each occurrence is a failure of a task with retries
  left, so Airflow's own retry of the failed try is the feedback for whatever the doctor did not
  auto-retry (actor airflow, decision airflow_retry, not cleared by the doctor): a transient case's
  retry succeeds on the same DAG version (outcome succeeded; the case carries the doctor's diagnosis
  made transient, with a retry action); a permanent case's retry fails again the same way on the
  same DAG version (outcome failed, no diagnosis: Airflow only saw it fail again, so the case's class
  and transience stay unknown). The labels' classes are never recorded.

Writes only to the knowledge base it is given (an embedded one by default).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from airflow_doctor.models import (
    RETRY_ACTIONS,
    Action,
    Decision,
    Diagnosed,
    Diagnosis,
    Embedding,
    FailureRef,
    Group,
    Memory,
    TaskHistory,
    TryRecord,
)
from airflow_doctor.settings import DoctorSettings

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("id", "log", "transient", "action", "error_class")
ACTIONS = {a.value for a in Action}
DIAGNOSERS = ("offline", "llm", "oracle")
#: Who answers for what the doctor did not auto-retry (module docstring, "Feedback").
FEEDBACKS = ("person", "airflow")
Feedback = Literal["person", "airflow"]
#: What Airflow's record says of each failure's task in an evaluation (`run_eval`'s `record`).
Record = Literal["unknown", "steady"]
RECORDS: tuple[str, ...] = ("unknown", "steady")
#: Successes on the same DAG version in a "steady" record (at least the default history_min_successes).
STEADY_SUCCESSES = 3

#: The actors whose feedback is a case's outcome from outside the doctor (a person's, Airflow's).
OUTSIDE_ACTORS = frozenset({"human", "airflow"})
_RETRY_ACTION_VALUES = frozenset(a.value for a in RETRY_ACTIONS)
#: Issue "Judgement that generalises": share of transient recurrences the doctor heals by itself.
RECURRENCE_TARGET = 0.90
#: Neighbours that count for recall@k (the issue's recall@5).
RECALL_AT = 5


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens (defaults: Claude Sonnet 5.5 list prices, November 2026)."""

    input: float = 2.0
    output: float = 10.0
    cached: float = 0.20


def load_corpus(path: Path) -> list[dict]:
    """Read a JSONL corpus.

    Args:
        path: a file with one JSON object per line and at least the fields `REQUIRED_FIELDS`.
    Returns:
        one dict per non-empty line, with `corpus_file` set to `str(path)`.
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
        case["corpus_file"] = str(path)
        cases.append(case)
    return cases


def load_corpora(paths: Sequence[Path]) -> list[dict]:
    """Read several JSONL corpora into one list, in the order given.

    Args:
        paths: one or more corpus files (see `load_corpus`).
    Returns:
        the cases of every file, each with `corpus_file`.
    Raises:
        ValueError: a malformed line (see `load_corpus`), or a case id used twice: the id names
            the failure in the knowledge base, so two cases with one id would overwrite each other.
    """
    cases: list[dict] = []
    seen: dict[str, str] = {}
    for path in paths:
        for case in load_corpus(Path(path)):
            key = str(case["id"])
            if key in seen:
                raise ValueError(f"{path}: case id {key!r} is also in {seen[key]}")
            seen[key] = str(path)
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


def oracle_diagnosis(case: dict) -> Diagnosis:
    """The case's label as a diagnosis (diagnoser "oracle"), so that gate and memory are measured alone.

    Args:
        case: a corpus row (see `load_corpus`).
    Returns:
        error_class, transient and recommended_action from the label, confidence 1.0, root_cause the
        rationale (at most 1000 characters), no evidence.
    """
    return Diagnosis(
        error_class=str(case["error_class"])[:80],
        root_cause=str(case.get("rationale") or case["error_class"])[:1000],
        transient=case["transient"],
        recommended_action=case["action"],
        confidence=1.0,
        evidence=[],
        diagnoser="oracle",
    )


# -- variation of a recurring failure's log --------------------------------------------------

_K8S = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' generated name suffixes
# `name.<suffix>:<digits>` with these suffixes is a file and a line number, not a host and a port.
_FILE_SUFFIXES = re.compile(
    r"(?i)\.(?:py|pyc|java|scala|sql|sh|log|txt|json|ya?ml|cfg|ini|js|ts|c|h|go|rs|rb|jar|csv|j2)$"
)
_VOLATILE = re.compile(
    r"""
    (?P<ts>(?<!\d)(?P<y>\d{4})-(?P<mo>[01]\d)-(?P<d>[0-3]\d)
        (?:(?P<sep>T|,\ |\ |_)(?P<h>[0-2]\d)(?P<c>:?)(?P<mi>[0-5]\d)(?P=c)(?P<s>[0-6]\d)
           (?:(?P<fs>[.,])(?P<frac>\d{1,12}))?)?)(?!\d)
    | (?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)
    | (?P<worker_ctx>>\ on\ host\ |(?i:\bhostname)['"]?\s*[=:]\s*['"]?)(?P<worker>[A-Za-z0-9][\w.-]*|<HOST>)
    | (?P<url_ctx>://[^\s/:'"]+:)(?P<url_port>\d{2,5})\b
    | (?P<hp_host>localhost|<IP>|<HOST>|(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}|[A-Za-z][\w-]*(?:\.[\w-]+)+)
        :(?P<hp_port>\d{2,5})(?![\d.:])
    | (?P<tuple_ctx>\(['"][^'"\s]+['"],\s*)(?P<tuple_port>\d{2,5})(?=\))
    | (?P<port_ctx>(?i:\bport)\s*[=:]?\s*['"]?)(?P<port>\d{2,5})\b
    | (?P<pid_ctx>(?i:\bpid)\s*[=:]?\s*)(?P<pid>\d+)\b
    | (?P<ip>(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)|<IP>)
    | (?P<pod>\b[a-z][a-z0-9-]*?)(?P<pod_rs>-[bcdfghjklmnpqrstvwxz2456789]{6,10})?
        -(?P<pod_sfx>[bcdfghjklmnpqrstvwxz2456789]{5})\b
    | (?P<hex>\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,}\b)
    """,
    re.VERBOSE,
)
_KEEP_PORTS = {"80", "443"}  # protocol ports stay what they are in production


class _Variation:
    """One recurrence's new volatile details; the same old value maps to the same new one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Later, by 1 to 400 days plus a time of day, so the order of lines is kept.
        self.offset = timedelta(
            days=rng.randint(1, 400), seconds=rng.randint(0, 86_399), microseconds=rng.randint(0, 999_999)
        )
        self.seen: dict[tuple[str, str], str] = {}

    def new(self, kind: str, old: str, make) -> str:
        key = (kind, old)
        if key not in self.seen:
            self.seen[key] = make()
        return self.seen[key]

    def chars(self, alphabet: str, n: int, need_digit: bool = False) -> str:
        while True:
            out = "".join(self.rng.choice(alphabet) for _ in range(n))
            if not need_digit or any(c.isdigit() for c in out):
                return out

    def ip(self, old: str) -> str:
        if old != "<IP>":
            try:
                address = ipaddress.IPv4Address(old)
            except ValueError:
                return old
            if address.is_loopback or address.is_unspecified or old == "255.255.255.255":
                return old
        r = self.rng
        return self.new("ip", old, lambda: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(2, 254)}")

    def port(self, old: str) -> str:
        if old in _KEEP_PORTS:
            return old
        return self.new("port", old, lambda: str(self.rng.randint(1024, 65_535)))

    def worker(self, old: str) -> str:
        def make() -> str:
            if self.rng.random() < 0.5:  # a Celery worker pod, or a Docker container id
                return f"airflow-worker-{self.chars(_K8S, 10)}-{self.chars(_K8S, 5, need_digit=True)}"
            return self.chars("0123456789abcdef", 12, need_digit=True)

        return self.new("worker", old, make)

    def timestamp(self, m: re.Match[str]) -> str:
        date = m.group("y", "mo", "d")
        try:
            if m.group("h") is None or (m.group("c") == "" and m.group("sep") != "T"):
                # A date alone (a path, a partition): whole days only; what follows is left as it is.
                new = datetime(*map(int, date)) + timedelta(days=self.offset.days)
                return new.strftime("%Y-%m-%d") + m.group("ts")[10:]
            frac = m.group("frac") or ""
            micro = int((frac + "000000")[:6]) if frac else 0
            old = datetime(*map(int, date), int(m.group("h")), int(m.group("mi")), int(m.group("s")), micro)
        except ValueError:  # not a real date (a version string, a 60th second): not a timestamp
            return m.group(0)
        new = old + self.offset
        c = m.group("c")
        out = f"{new:%Y-%m-%d}{m.group('sep')}{new:%H}{c}{new:%M}{c}{new:%S}"
        if frac:
            out += m.group("fs") + f"{new.microsecond:06d}".ljust(len(frac), "0")[: len(frac)]
        return out

    def __call__(self, m: re.Match[str]) -> str:
        kind = m.lastgroup
        if m.group("ts"):
            return self.timestamp(m)
        if m.group("uuid"):
            old = m.group("uuid").lower()
            return self.new("uuid", old, lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        if m.group("worker"):
            old = m.group("worker")
            if re.fullmatch(r"(?:\d{1,3}\.){3}\d{1,3}", old):
                return m.group("worker_ctx") + self.ip(old)
            return m.group("worker_ctx") + self.worker(old)
        if m.group("url_port"):
            return m.group("url_ctx") + self.port(m.group("url_port"))
        if m.group("hp_host"):
            host = m.group("hp_host")
            if _FILE_SUFFIXES.search(host):  # `taskinstance.py:2905` is a line number
                return m.group(0)
            if host == "<IP>" or re.fullmatch(r"(?:\d{1,3}\.){3}\d{1,3}", host):
                host = self.ip(host)
            return f"{host}:{self.port(m.group('hp_port'))}"
        if m.group("tuple_port"):
            ctx = _VOLATILE.sub(self, m.group("tuple_ctx"))
            return ctx + self.port(m.group("tuple_port"))
        if m.group("port"):
            return m.group("port_ctx") + self.port(m.group("port"))
        if m.group("pid"):
            pid = self.new("pid", m.group("pid"), lambda: str(self.rng.randint(7, 4_194_303)))
            return m.group("pid_ctx") + pid
        if m.group("ip"):
            return self.ip(m.group("ip"))
        if m.group("pod_sfx"):
            if not any(c.isdigit() for c in m.group("pod_sfx")):
                return m.group(0)
            rs = m.group("pod_rs")
            new_rs = "-" + self.new("pod_rs", rs, lambda: self.chars(_K8S, len(rs) - 1)) if rs else ""
            sfx = self.new("pod_sfx", m.group("pod_sfx"), lambda: self.chars(_K8S, 5, need_digit=True))
            return f"{m.group('pod')}{new_rs}-{sfx}"
        if m.group("hex"):
            old = m.group("hex")
            return self.new("hex", old, lambda: self.chars("0123456789abcdef", len(old), need_digit=True))
        raise AssertionError(f"unhandled volatile group {kind}")  # pragma: no cover - the regex is closed


def vary_log(log_value: Any, rng: random.Random) -> Any:
    """The same failure recurring: a log with new volatile details and the error's wording kept.

    Varied: timestamps and dates (all shifted by one random offset of 1 to 400 days, so run ids made
    of them change too and the lines keep their order; the format of each is kept), UUIDs, hex ids
    of 7 or more characters, Kubernetes pod-name suffixes, worker host names (`on host …`,
    `hostname=…`), IPv4 addresses (also the corpus's `<IP>`; loopback stays), ports (not 80 and 443,
    which do not move in production) and process ids. One old value maps to one new value within
    the log. Exception types, messages' words, HTTP statuses and error codes are left as they are.

    Args:
        log_value: a log as str, or structured records (list of dicts or strings), as in a corpus.
        rng: the source of randomness (seed it for a reproducible stream).
    Returns:
        the varied log, of the same type as `log_value`.
    """
    variation = _Variation(rng)
    if isinstance(log_value, str):
        return _VOLATILE.sub(variation, log_value)
    return json.loads(_VOLATILE.sub(variation, json.dumps(log_value)))


def stream_order(n: int, recurrences: int, seed: int) -> list[tuple[int, int]]:
    """The order in which the stream replays `n` cases.

    Args:
        n: number of cases.
        recurrences: how many times each case occurs (passes), >= 1.
        seed: seed of the shuffles.
    Returns:
        (pass number from 1, index of the case) for every occurrence: pass 1 in a seeded shuffle,
        then pass 2 in another shuffle, and so on; `n * recurrences` pairs.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    order: list[tuple[int, int]] = []
    for pass_number in range(1, recurrences + 1):
        indices = list(range(n))
        rng.shuffle(indices)
        order += [(pass_number, i) for i in indices]
    return order


# -- the evaluation ---------------------------------------------------------------------------


def run_eval(
    cases: list[dict],
    kb,
    *,
    replay: bool = False,
    diagnoser: str = "offline",
    stream: bool = False,
    recurrences: int = 3,
    seed: int = 0,
    settings: DoctorSettings | None = None,
    prices: Prices = Prices(),
    feedback: Feedback = "person",
    record: Record = "unknown",
) -> dict:
    """Evaluate the pipeline on `cases` with knowledge base `kb` (migrated, any state).

    Args:
        cases: corpus rows (see `load_corpus`), ids unique.
        kb: a KnowledgeBase; its observed cases are deleted first so every run starts cold.
        replay: feed outcomes back in file order (module docstring).
        diagnoser: "offline", "llm" (Claude through connection `doctor_llm`, memory first) or
            "oracle" (each case's label; `oracle_diagnosis`).
        stream: replay the corpus `recurrences` times as production sees it (module docstring);
            outcomes are always fed back, `replay` is ignored.
        record: what Airflow's record says of each failure's task (docs/gate.md, "Evidence
            sources"): "unknown" (nothing read: no corroboration, as a corpus carries none), or
            "steady" (the task succeeded on the same DAG version in its last `STEADY_SUCCESSES`
            runs and nothing changed since: the common case of a task that ran daily until it
            failed, for transient and permanent failures alike). An upper bound of what
            corroboration adds, not a measurement of it.
        recurrences: occurrences of each case in stream mode (>= 1; 1 has no recurrences).
        seed: seed of the stream's shuffles and variations.
        settings: gate thresholds (default: the code defaults).
        prices: token prices for the LLM cost.
        feedback: who answers for what the doctor did not auto-retry, in replay and stream modes:
            "person" (the label, actor human) or "airflow" (Airflow's own retry, actor airflow);
            module docstring.
    Returns:
        the report: n (occurrences judged), corpora ([{file, n, transient}]), mode, diagnoser,
        feedback (None in cold mode, which feeds nothing back), auto_retried, auto_retry_precision,
        transient_recall, approval, escalated, llm_calls, llm_calls_saved, tokens and cost_usd,
        transient_share, baselines (retry_all, rules_only), per_class, seconds (wall clock),
        thresholds, cases (one row per occurrence, with feedback_before: the actors whose outcome for
        an earlier occurrence of the case was recorded, and answered_before: a person's among them),
        and in stream mode `stream` (see `_stream_summary`).
    Raises:
        ValueError: an unknown diagnoser or feedback, or recurrences < 1.
    """
    from airflow_doctor.knowledge import embeddings
    from airflow_doctor.knowledge.runbooks import ensure_seeded
    from airflow_doctor.logs.excerpt import excerpt_record, extract_excerpt

    if diagnoser not in DIAGNOSERS:
        raise ValueError(f"diagnoser {diagnoser!r} is not one of {', '.join(DIAGNOSERS)}")
    if record not in RECORDS:
        raise ValueError(f"record {record!r} is not one of {', '.join(RECORDS)}")
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback {feedback!r} is not one of {', '.join(FEEDBACKS)}")
    if recurrences < 1:
        raise ValueError("recurrences must be at least 1")
    settings = settings or DoctorSettings()
    t0 = time.monotonic()
    kb.delete_observed_cases()
    ensure_seeded(kb, embeddings.embed, embeddings.model_name())

    order = stream_order(len(cases), recurrences, seed) if stream else [(1, i) for i in range(len(cases))]
    learn = stream or replay
    rows: list[dict] = []
    usage: dict[str, int] = defaultdict(int)
    case_of: dict[int, str] = {}  # knowledge-base case id -> corpus case id (recall@5)
    # corpus case id -> actors whose outcome for an earlier occurrence of it was recorded
    fed_back: dict[str, set[str]] = defaultdict(set)
    for pass_number in sorted({p for p, _ in order}):
        batch = [cases[i] for p, i in order if p == pass_number]
        logs = [
            case["log"]
            if pass_number == 1
            else vary_log(case["log"], random.Random(f"{seed}:{pass_number}:{case['id']}"))  # noqa: S311
            for case in batch
        ]
        # One batch of embeddings per pass: the same vectors as one call per failure, much faster.
        excerpts = [excerpt_record(extract_excerpt(text)) for text in logs]
        vectors = embeddings.embed([embeddings.embedding_text(e["signature"], e["text"]) for e in excerpts])
        for case, excerpt, vector in zip(batch, excerpts, vectors, strict=True):
            ref = FailureRef(
                dag_id="eval",
                run_id=f"stream__{pass_number}__{case['id']}" if stream else str(case["id"]),
                task_id=case.get("task_id") or "task",
                try_number=1,
                source="manual",
            )
            embedding = {"embedding": vector, "model": embeddings.model_name()}
            row, diagnosis, decision, memory, result = _judge(
                case, ref, excerpt, embedding, kb, diagnoser, settings, record
            )
            for key in ("input_tokens", "output_tokens", "cached_tokens"):
                usage[key] += getattr(result, key) or 0
            row["pass"] = pass_number
            row["run_id"] = ref.run_id
            before = fed_back[str(case["id"])]
            row["feedback_before"] = sorted(before)
            row["answered_before"] = "human" in before  # a person had answered for this case
            if stream and pass_number > 1:
                top = memory.neighbours[:RECALL_AT]
                row["recalled"] = any(case_of.get(n.case_id) == str(case["id"]) for n in top)
            rows.append(row)
            if learn:
                case_id, actor = _feed_back(kb, ref, case, excerpt, embedding, diagnosis, decision, feedback)
                case_of[case_id] = str(case["id"])
                fed_back[str(case["id"])].add(actor)

    labels = [r["transient"] for r in rows]
    report = {
        "n": len(rows),
        "corpora": _corpora(cases),
        "mode": "stream" if stream else "replay" if replay else "cold",
        "diagnoser": diagnoser,
        "feedback": feedback if learn else None,
        "record": record,
        **score([r["auto_retried"] for r in rows], labels),
        "approval": sum(r["verdict"] == "approval" for r in rows),
        "escalated": sum(r["verdict"] == "escalate" for r in rows),
        "llm_calls": sum(r["llm_called"] for r in rows),
        "llm_calls_saved": sum(not r["llm_called"] for r in rows) if diagnoser == "llm" else 0,
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "cached_tokens": usage["cached_tokens"],
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
        "thresholds": {
            "similarity": settings.similarity_threshold,
            "confidence": settings.confidence_threshold,
        },
    }
    if stream:
        report["stream"] = _stream_summary(rows, recurrences, seed, feedback)
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["cases"] = rows
    return report


def steady_history() -> TaskHistory:
    """Airflow's record of a task that succeeded on DAG version 1 in its last `STEADY_SUCCESSES`
    runs and then failed on the same version (`run_eval(record="steady")`)."""
    recent = [
        TryRecord(run_id=f"scheduled__{n}", try_number=1, state="success", dag_version=1)
        for n in range(STEADY_SUCCESSES)
    ]
    return TaskHistory(failed_version=1, recent=recent, last_success=recent[0])


def _judge(
    case: dict,
    ref: FailureRef,
    excerpt: dict,
    embedding: dict,
    kb,
    diagnoser: str,
    settings: DoctorSettings,
    record: Record = "unknown",
) -> tuple[dict, Diagnosis | None, Decision, Memory, Diagnosed]:
    """Retrieve, diagnose and gate one occurrence through the doctor's own per-group flow
    (pipeline.judge, the functions the DAG's tasks call), as a group of one whose DAG has no tags.

    Returns:
        (report row, diagnosis or None, decision, memory, diagnose's output).
    """
    from airflow_doctor import pipeline
    from airflow_doctor.remediation.groups import group_key

    group = Group(
        key=group_key(excerpt, ref),
        label=ref.label,
        members=[ref],
        excerpt=excerpt,
        settings=asdict(settings),
        dag_tags={ref.dag_id: []},
        history={ref.member_key: steady_history()} if record == "steady" else {},
    )
    chosen = (lambda _group: oracle_diagnosis(case)) if diagnoser == "oracle" else diagnoser
    judged = pipeline.judge(group, kb=kb, embedding=Embedding.model_validate(embedding), diagnoser=chosen)
    diagnosis, decision = judged.diagnosed.diagnosis, judged.decided.decisions[0]
    row = {
        "id": case["id"],
        "corpus_file": case.get("corpus_file"),
        "error_class": case["error_class"],
        "transient": case["transient"],
        "action": case["action"],
        "verdict": decision.verdict,
        "auto_retried": decision.verdict == "auto_retry",
        "llm_called": judged.diagnosed.llm_called,
        "diagnosis": diagnosis.model_dump(mode="json") if diagnosis else None,
        "fingerprint": excerpt["fingerprint"],
        "similarity": decision.similarity,
        "reasons": decision.reasons,
        "rules_retry": judged.reading.rules_retry,
    }
    return row, diagnosis, decision, judged.memory, judged.diagnosed


def _feed_back(
    kb,
    ref: FailureRef,
    case: dict,
    excerpt: dict,
    embedding: dict,
    diagnosis: Diagnosis | None,
    decision: Decision,
    feedback: Feedback = "person",
) -> tuple[int, str]:
    """Record one occurrence as production would have learnt it (module docstring, "Feedback").

    Returns:
        (the knowledge base's case id, the actor recorded: "doctor", "human" or "airflow").
    """
    case_fields = {
        "operator": case.get("operator"),
        "fingerprint": excerpt["fingerprint"],
        "excerpt": excerpt["text"],
        "embedding": embedding["embedding"],
        "embedding_model": embedding["model"],
    }
    decision_data = decision.model_dump(mode="json")
    if decision.verdict == "auto_retry":
        kb.record_clear(ref, "eval")  # as clear_and_retry does: the task instance's retry budget
        case_id = kb.record_case(
            ref=ref,
            case=case_fields,
            diagnosis=diagnosis.model_dump(mode="json"),
            decision=decision_data,
            cleared=True,
            doctor_run_id="eval",
            outcome="succeeded" if case["transient"] else "failed",
        )
        return case_id, "doctor"
    if feedback == "airflow":
        return _airflow_retry(kb, ref, case, case_fields, diagnosis, decision), "airflow"
    # Escalated, or sent for approval: a person answers with the label. A transient case is
    # cleared by that person (or its retry approved) and succeeds; a permanent one is left failed
    # (or its retry rejected).
    label = oracle_diagnosis(case).model_dump(mode="json") | {"diagnoser": "human"}
    retried_by_person = case["transient"] and case["action"] in {a.value for a in RETRY_ACTIONS}
    case_id = kb.record_case(
        ref=ref,
        case=case_fields,
        diagnosis=label,
        decision=decision_data,
        cleared=retried_by_person,
        doctor_run_id="eval",
        outcome="succeeded" if retried_by_person else "escalated",
        actor="human",
    )
    return case_id, "human"


def _airflow_retry(
    kb, ref: FailureRef, case: dict, case_fields: dict, diagnosis: Diagnosis | None, decision: Decision
) -> int:
    """Record Airflow's own retry of a failed try the doctor did not auto-retry (module docstring).

    The remediation is actor airflow, decision airflow_retry (the doctor decided nothing: the task
    had retries left), not cleared by the doctor, on the same DAG version: a transient case's retry
    succeeded, and the case carries the doctor's diagnosis made transient with a retry action
    (labelled diagnoser airflow; the store keeps it on the case); a permanent case's retry failed
    again the same way, and the case has no diagnosis (Airflow saw only the failure, so class and
    transience stay unknown).

    Returns:
        the knowledge base's case id.
    """
    healed = bool(case["transient"])
    happened = "it succeeded" if healed else "it failed again the same way"
    airflow_decision = {
        "verdict": "airflow_retry",
        "reasons": [
            f"airflow: the task had retries left; Airflow retried the failed try on the same DAG version "
            f"and {happened}",
            f"doctor: the gate's verdict was {decision.verdict}; nobody answered",
        ],
        "similarity": None,
        "retry_class": None,
    }
    recorded = None
    if healed:
        seen = diagnosis.model_dump(mode="json") if diagnosis else {}
        action = seen.get("recommended_action")
        what = seen.get("root_cause") or "The doctor could not recognise this failure."
        retried = "Airflow's own retry of the failed try succeeded on the same DAG version"
        recorded = seen | {
            "error_class": seen.get("error_class") or "unknown_error",
            "root_cause": f"{what} ({retried})"[:1000],
            "transient": True,
            "recommended_action": action if action in _RETRY_ACTION_VALUES else Action.retry.value,
            "confidence": seen.get("confidence", 0.0),
            "fix_steps": seen.get("fix_steps", []) if seen.get("transient") else [],
            "evidence": seen.get("evidence", []),
            "diagnoser": "airflow",
            "model": None,
        }
    return kb.record_case(
        ref=ref,
        case=case_fields,
        diagnosis=recorded,
        decision=airflow_decision,
        cleared=False,
        doctor_run_id="eval",
        outcome="succeeded" if healed else "failed",
        actor="airflow",
    )


def _corpora(cases: list[dict]) -> list[dict]:
    out: dict[str, dict] = {}
    for case in cases:
        c = out.setdefault(case.get("corpus_file") or "-", {"n": 0, "transient": 0})
        c["n"] += 1
        c["transient"] += case["transient"]
    return [{"file": name, **counts} for name, counts in out.items()]


def _pass_figures(rows: list[dict]) -> dict:
    """Figures of a set of occurrences: healed share, precision, wrong retries, recall@5."""
    transient = [r for r in rows if r["transient"]]
    retried = [r for r in rows if r["auto_retried"]]
    recalled = [r["recalled"] for r in rows if "recalled" in r]
    return {
        "occurrences": len(rows),
        "transient": len(transient),
        "auto_retried": len(retried),
        "healed_share": _rate(sum(r["auto_retried"] for r in transient), len(transient)),
        "auto_retry_precision": _rate(sum(r["transient"] for r in retried), len(retried)),
        "wrong_retries": sum(not r["transient"] for r in retried),
        "approval": sum(r["verdict"] == "approval" for r in rows),
        "escalated": sum(r["verdict"] == "escalate" for r in rows),
        f"recall_at_{RECALL_AT}": _rate(sum(recalled), len(recalled)),
    }


def _stream_summary(rows: list[dict], recurrences: int, seed: int, feedback: Feedback = "person") -> dict:
    """The stream's figures, defined the same way whatever the feedback.

    Returns:
        {"recurrences", "seed", "feedback", "passes": [per-pass figures with "pass"], "recurrence":
        figures of passes 2..N together (None with one pass), "transient_recurrences" and
        "transient_recurrences_healed" (of passes 2..N, auto-retried by the doctor), "healed_share"
        (their share, also recurrence's), "target_healed_share", "meets_target",
        "wrong_retries": [{id, pass, error_class, feedback_before (actors whose outcome for an
        earlier occurrence of the case was recorded), after_feedback (a person's or Airflow's among
        them), after_persons_answer, reasons}],
        "wrong_retries_after_feedback": wrong retries after a person's answer or Airflow's failed
        retry of the case had been recorded, "wrong_retries_after_persons_answer": after a person's
        answer, "wrong_retries_after_airflow_retry": after Airflow's failed retry,
        "recall_at_5": over passes 2..N, "unhealed_transient_recurrences": [{id, pass, verdict,
        reasons}]}.
    """
    passes = [
        {"pass": p, **_pass_figures([r for r in rows if r["pass"] == p])} for p in range(1, recurrences + 1)
    ]
    later = [r for r in rows if r["pass"] > 1]
    recurrence = _pass_figures(later) if later else None
    wrong = [
        {
            "id": r["id"],
            "pass": r["pass"],
            "error_class": r["error_class"],
            "feedback_before": r["feedback_before"],
            "after_feedback": bool(OUTSIDE_ACTORS & set(r["feedback_before"])),
            "after_persons_answer": r["answered_before"],
            "reasons": r["reasons"],
        }
        for r in rows
        if r["auto_retried"] and not r["transient"]
    ]
    transient_later = [r for r in later if r["transient"]]
    healed = recurrence["healed_share"] if recurrence else None
    return {
        "recurrences": recurrences,
        "seed": seed,
        "feedback": feedback,
        "passes": passes,
        "recurrence": recurrence,
        "transient_recurrences": len(transient_later),
        "transient_recurrences_healed": sum(r["auto_retried"] for r in transient_later),
        "healed_share": healed,
        "target_healed_share": RECURRENCE_TARGET,
        "meets_target": healed is not None and healed >= RECURRENCE_TARGET,
        "wrong_retries": wrong,
        "wrong_retries_after_feedback": sum(w["after_feedback"] for w in wrong),
        "wrong_retries_after_persons_answer": sum(w["after_persons_answer"] for w in wrong),
        "wrong_retries_after_airflow_retry": sum("airflow" in w["feedback_before"] for w in wrong),
        f"recall_at_{RECALL_AT}": recurrence[f"recall_at_{RECALL_AT}"] if recurrence else None,
        "unhealed_transient_recurrences": [
            {"id": r["id"], "pass": r["pass"], "verdict": r["verdict"], "reasons": r["reasons"]}
            for r in later
            if r["transient"] and not r["auto_retried"]
        ],
    }


def _per_class(rows: list[dict]) -> dict:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = out.setdefault(r["error_class"], {"n": 0, "transient": 0, "auto_retried": 0, "correct": 0})
        c["n"] += 1
        c["transient"] += r["transient"]
        c["auto_retried"] += r["auto_retried"]
        c["correct"] += r["auto_retried"] == r["transient"]
    return dict(sorted(out.items()))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_report(report: dict) -> str:
    """A plain-text table of the report for people."""
    files = ", ".join(f"{c['file']} ({c['n']})" for c in report.get("corpora", []))
    unit = "occurrences" if report["mode"] == "stream" else "cases"
    fed = f", feedback {report['feedback']}" if report.get("feedback") else ""
    fed += ", record steady (an upper bound)" if report.get("record") == "steady" else ""
    lines = [
        f"eval: {report['n']} {unit}, mode {report['mode']}, "
        f"diagnoser {report['diagnoser']}{fed}, {report['seconds']}s",
        f"corpora: {files}",
        "",
        f"{'policy':<22}{'auto-retried':>13}{'precision':>11}{'recall':>9}",
        f"{'doctor (gate)':<22}{report['auto_retried']:>13}{_pct(report['auto_retry_precision']):>11}"
        f"{_pct(report['transient_recall']):>9}",
    ]
    for name, b in report["baselines"].items():
        lines.append(
            f"{name:<22}{b['auto_retried']:>13}{_pct(b['auto_retry_precision']):>11}"
            f"{_pct(b['transient_recall']):>9}"
        )
    lines += [
        "",
        f"approval {report['approval']}, escalated {report['escalated']}, LLM calls {report['llm_calls']}"
        + (
            f" (saved by memory {report['llm_calls_saved']}), tokens in {report['input_tokens']} "
            f"out {report['output_tokens']} cached {report['cached_tokens']}, cost ${report['cost_usd']}"
            if report["diagnoser"] == "llm"
            else ""
        ),
    ]
    if "stream" in report:
        lines += ["", *_format_stream(report["stream"])]
    width = max([len(name) + 2 for name in report["per_class"]] + [40])
    lines += ["", f"{'error_class':<{width}}{'n':>4}{'transient':>10}{'retried':>8}{'correct':>8}"]
    for name, c in report["per_class"].items():
        lines.append(f"{name:<{width}}{c['n']:>4}{c['transient']:>10}{c['auto_retried']:>8}{c['correct']:>8}")
    if "stream" not in report:
        wrong = [r for r in report["cases"] if r["auto_retried"] != r["transient"]]
        if wrong:
            lines += ["", "decided differently from the label:"]
            for r in wrong:
                got = "auto-retried" if r["auto_retried"] else r["verdict"]
                lines.append(
                    f"  {r['id']}: {got} (label transient={r['transient']}); {'; '.join(r['reasons'])[:160]}"
                )
    return "\n".join(lines)


#: How the stream table names each feedback mode.
_FEEDBACK_TEXT = {
    "person": "a person answers for what the doctor did not auto-retry",
    "airflow": "Airflow's own retry of what the doctor did not auto-retry, nobody answers",
}
_ACTOR_TEXT = {"doctor": "the doctor's retry", "human": "a person's answer", "airflow": "Airflow's retry"}


def _format_stream(stream: dict) -> list[str]:
    recall_key = f"recall_at_{RECALL_AT}"
    feedback = stream.get("feedback", "person")
    lines = [
        f"stream: {stream['recurrences']} passes, seed {stream['seed']}, "
        f"feedback {feedback} ({_FEEDBACK_TEXT.get(feedback, feedback)})",
        f"{'pass':<6}{'occurrences':>12}{'transient':>10}{'retried':>8}{'healed':>8}{'precision':>10}"
        f"{'wrong':>6}{'approval':>9}{'escalated':>10}{f'recall@{RECALL_AT}':>10}",
    ]
    rows = [(str(p["pass"]), p) for p in stream["passes"]]
    if stream["recurrence"]:
        rows.append((f"2-{stream['recurrences']}", stream["recurrence"]))
    for name, p in rows:
        lines.append(
            f"{name:<6}{p['occurrences']:>12}{p['transient']:>10}{p['auto_retried']:>8}"
            f"{_pct(p['healed_share']):>8}{_pct(p['auto_retry_precision']):>10}{p['wrong_retries']:>6}"
            f"{p['approval']:>9}{p['escalated']:>10}{_pct(p[recall_key]):>10}"
        )
    healed = stream["recurrence"]["healed_share"] if stream["recurrence"] else None
    lines += [
        "",
        f"healed share of transient recurrences {_pct(healed)} "
        f"(target >= {stream['target_healed_share']:.2f}: {'met' if stream['meets_target'] else 'not met'}); "
        f"recall@{RECALL_AT} of earlier occurrences {_pct(stream[recall_key])}",
        f"wrong retries {len(stream['wrong_retries'])}, after feedback on the case "
        f"{stream.get('wrong_retries_after_feedback', stream['wrong_retries_after_persons_answer'])} "
        f"(a person's answer {stream['wrong_retries_after_persons_answer']}, Airflow's failed retry "
        f"{stream.get('wrong_retries_after_airflow_retry', 0)})",
    ]
    for w in stream["wrong_retries"]:
        actors = w.get("feedback_before", ["human"] if w["after_persons_answer"] else [])
        before = "after " + ", ".join(_ACTOR_TEXT.get(a, a) for a in actors) if actors else "no feedback yet"
        lines.append(f"  {w['id']} (pass {w['pass']}, {before}): {'; '.join(w['reasons'])[:160]}")
    unhealed = stream["unhealed_transient_recurrences"]
    if unhealed:
        lines.append(f"transient recurrences not auto-retried: {len(unhealed)}")
        for u in unhealed:
            lines.append(f"  {u['id']} (pass {u['pass']}, {u['verdict']}): {'; '.join(u['reasons'])[:160]}")
    return lines
