"""The types that travel between the doctor's stages (as JSON through XCom) and into its prompts.

FailureRef names one failed try of one task instance; Diagnosis is what a diagnoser (LLM or
offline) concludes; Neighbour is a similar past case; Decision is the gate's verdict.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from airflow_doctor.judgement.catalogue import is_retry_safe

Source = Literal["listener", "sweeper", "manual"]


class Action(StrEnum):
    """The closed set of remediation actions a diagnosis may recommend."""

    retry = "retry"
    retry_with_backoff = "retry_with_backoff"
    retry_with_more_resources = "retry_with_more_resources"
    notify = "notify"


#: Actions the doctor may carry out by clearing the task instance (docs/gate.md).
RETRY_ACTIONS = frozenset({Action.retry, Action.retry_with_backoff})

ACTION_MEANINGS = {
    Action.retry: "clear the task instance now; the very next try is expected to succeed",
    Action.retry_with_backoff: "clear after a growing delay; an upstream blip (timeout, 5xx, reset) "
    "is expected to pass",
    Action.retry_with_more_resources: "rerun only with more memory, disk or a bigger worker; an identical "
    "retry would fail the same way (a human must act)",
    Action.notify: "do not retry; a human must change code, configuration, credentials or data",
}


#: Postgres `integer` holds values below 2**31 (the inbox's map_index and try_number columns).
PG_INT_LIMIT = 2**31
#: Airflow's limit on dag_id and task_id (ID_LEN in airflow.models.base); run_id is held to the same.
ID_MAX_LENGTH = 250


def _printable_id(value: str) -> str:
    """An id without control characters (NUL included) or lone surrogates (neither fits Postgres
    text), with at least one visible character: Airflow never names a DAG, run or task with spaces
    alone, so a whitespace-only id can only be a malformed conf or event.

    Raises:
        ValueError: a control character or surrogate, or nothing but whitespace.
    """
    bad = next((c for c in value if unicodedata.category(c) in {"Cc", "Cs"}), None)
    if bad is not None:
        raise ValueError(f"must not contain control characters (found U+{ord(bad):04X})")
    if not value.strip() or all(unicodedata.category(c) in {"Zs", "Cf"} for c in value):
        raise ValueError("must contain a character other than whitespace")
    return value


def _whole_number(value: Any) -> Any:
    """Refuse what pydantic's int would quietly accept but is no count: a bool (True == 1)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


#: dag_id, run_id, task_id: at most 250 characters, at least one of them visible, no control characters.
Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH), AfterValidator(_printable_id)]
#: try_number: an integer >= 1 (Airflow counts tries from 1), within Postgres integer range.
TryNumber = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, lt=PG_INT_LIMIT)]
#: The manual trigger's try_number: like TryNumber, but 0 means "the task instance's latest try".
TryNumberOrLatest = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, lt=PG_INT_LIMIT)]
#: map_index: -1 for an unmapped task, else the instance's index, within Postgres integer range.
MapIndex = Annotated[int, BeforeValidator(_whole_number), Field(ge=-1, lt=PG_INT_LIMIT)]


def describe_errors(exc: ValidationError) -> str:
    """A ValidationError as one line naming each field and its rule, without echoing the input.

    Returns:
        e.g. "map_index: Input should be greater than or equal to -1; run_id: Value error, must not
        contain control characters (found U+0000)". The offending value is left out: it may be
        megabytes long or carry control characters into the log.
    """
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors(include_input=False)
    )


class FailureRef(BaseModel):
    """One failed try of one task instance: the key of everything the doctor does.

    The key (dag_id, run_id, task_id, map_index, try_number) is what makes handling idempotent.
    Validation is strict where a bad value would reach the REST API or the inbox: ids are
    non-empty strings of at most 250 characters without control characters; try_number is an
    integer >= 1 and map_index an integer >= -1, both below 2**31 (Postgres integer). Numeric
    strings ("3") and whole floats (3.0) are coerced; bools, fractions (1.7), lists and dicts are
    refused. `describe_errors` turns the ValidationError into a message naming each field.
    """

    model_config = ConfigDict(extra="ignore")

    dag_id: Identifier
    run_id: Identifier
    task_id: Identifier
    map_index: MapIndex = -1
    try_number: TryNumber
    source: Source = "listener"
    failed_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number)

    @property
    def member_key(self) -> str:
        """`key` as one string (its fields joined by U+001F, a character no id may hold): how the
        per-member results of a group's tasks name their member (`PerMember`)."""
        return "\x1f".join(map(str, self.key))

    @property
    def label(self) -> str:
        """The label of the doctor's mapped task instances in the UI: `dag_id.task_id[map_index]`."""
        suffix = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{suffix}"


class Diagnosis(BaseModel):
    """A structured diagnosis of one failure. The Field descriptions are part of the LLM prompt."""

    model_config = ConfigDict(extra="ignore")

    error_class: str = Field(
        description="Short snake_case name of the root cause, not of the Airflow wrapper exception, "
        "e.g. db_connection_refused, key_error_missing_field, http_503_service_unavailable.",
        min_length=1,
        max_length=80,
    )
    root_cause: str = Field(description="One or two sentences: what went wrong and why.", max_length=1000)
    transient: bool = Field(
        description="True only if a plain retry, with no change to code, configuration, credentials or "
        "data, would plausibly succeed."
    )
    recommended_action: Action = Field(description="Exactly one action from the action catalogue.")
    confidence: float = Field(
        description="Probability in [0, 1] that error_class and transient are right.", ge=0.0, le=1.0
    )
    fix_steps: list[str] = Field(
        default_factory=list,
        description="Concrete steps a person would take, most useful first.",
        max_length=8,
    )
    evidence: list[str] = Field(
        default_factory=list,
        description="Lines copied exactly, character for character, from the error excerpt that support "
        "the diagnosis.",
        max_length=8,
    )
    diagnoser: str = Field(default="offline", description="Filled in by the doctor, not the model.")
    model: str | None = None

    @field_validator("error_class")
    @classmethod
    def _snake(cls, value: str) -> str:
        return "_".join(value.strip().lower().replace("-", " ").split())


class Neighbour(BaseModel):
    """A similar past case from the knowledge base, with what is known of its outcome."""

    case_id: int
    kind: Literal["runbook", "observed"]
    similarity: float
    title: str | None = None
    error_class: str | None = None
    transient: bool | None = None
    recommended_action: Action | None = None
    fingerprint: str | None = None
    fix_steps: list[str] = Field(default_factory=list)
    outcome: Literal[
        "succeeded",
        "failed",
        "pending",
        "unverified",
        "escalated",
        "fixed_by_change",
        "fixed_by_person",
        "none",
    ] = "none"
    actor: Literal["doctor", "human", "airflow"] | None = None
    dag_id: str | None = None
    task_id: str | None = None

    @property
    def retry_verified(self) -> bool:
        """A retry of this failure verifiably succeeded on this deployment: an observed case whose
        retry (the doctor's, a person's or Airflow's own, `actor`) ended in success. A runbook entry
        never is: it is curated text about a class, not a retry this deployment made (docs/gate.md)."""
        return self.kind == "observed" and self.outcome == "succeeded"

    @property
    def describes_retry(self) -> bool:
        """A transient runbook entry of a retry-safe catalogue class (catalogue.py): knowledge for
        the diagnosis that a retry of the class usually works, not evidence that one did here."""
        return (
            self.kind == "runbook"
            and bool(self.transient)
            and self.recommended_action in RETRY_ACTIONS
            and is_retry_safe(self.error_class)
        )

    @property
    def retry_failed(self) -> bool:
        """A retry of this observed case was verified to fail again (the doctor's, a person's or
        Airflow's own on the same DAG version)."""
        return self.kind == "observed" and self.outcome == "failed"

    @property
    def fixed(self) -> bool:
        """This observed failure ended only after a change, not by a retry: the next success ran on
        a newer DAG version (`fixed_by_change`), or followed a person's action: a late clear, or a
        connection or Variable changed in between (`fixed_by_person`). Never a transient failure."""
        return self.kind == "observed" and self.outcome in {"fixed_by_change", "fixed_by_person"}

    @property
    def judged_permanent(self) -> bool:
        """A person said this observed case is not transient: they left it failed (their label or
        answer), as opposed to retrying it themselves."""
        return (
            self.kind == "observed"
            and self.actor == "human"
            and self.transient is False
            and self.outcome == "escalated"
        )


class Decision(BaseModel):
    """The gate's verdict for one failure and every reason behind it."""

    verdict: Literal["auto_retry", "approval", "escalate"]
    reasons: list[str]
    similarity: float | None = None
    memory_match: bool = False
    backoff_seconds: float = 0.0
    retry_class: str | None = Field(
        default=None, description="The catalogue class the rules read in the primary error, if retry-safe."
    )


# -- What the doctor DAG's tasks pass each other through XCom (the Task SDK serialises these
# models; airflow_doctor/dags.py allows them for deserialisation; airflow_doctor/pipeline.py) ------


class TryRecord(BaseModel):
    """One try of a task instance as Airflow recorded it (REST `.../tries`, `.../taskInstances`)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    try_number: int
    state: str | None = None
    dag_version: int | None = Field(default=None, description="The DAG version's version_number it ran on.")
    bundle_version: str | None = Field(
        default=None,
        description="The DAG bundle's version it ran on (a git commit for a versioned bundle; None for "
        "a local folder). Airflow keeps the version_number and moves this pointer when only the code "
        "changed.",
    )
    start_date: datetime | None = None
    end_date: datetime | None = None
    max_tries: int | None = Field(
        default=None,
        description="The task instance's max_tries when this try ran: Airflow retries a failed try while "
        "try_number <= max_tries (and the task has retries).",
    )


class TaskHistory(BaseModel):
    """What Airflow recorded about a failed task instance and its task: evidence the failing task
    cannot write (capture/history.py reads it through the REST API; judgement/gate.py weighs it).

    Every field is None or empty when it could not be read; `error` then says why, and the gate
    treats the unknown as no corroboration (it never vouches for a retry by default).
    """

    model_config = ConfigDict(extra="ignore")

    failed_version: int | None = Field(default=None, description="DAG version number of the failed try.")
    failed_bundle_version: str | None = Field(default=None, description="Bundle version of the failed try.")
    earlier_tries: list[TryRecord] = Field(
        default_factory=list, description="This task instance's earlier tries (Airflow's own retries)."
    )
    recent: list[TryRecord] = Field(
        default_factory=list,
        description="This task's task instances in other DAG runs, newest first (their latest try).",
    )
    last_success: TryRecord | None = Field(default=None, description="The task's newest successful try.")
    new_lines: list[str] = Field(
        default_factory=list,
        description="Line templates only the failed try printed, against the last successful try's log "
        "(redacted; text from the log, untrusted).",
    )
    compared_with: str | None = Field(default=None, description="'run_id try n' of the log compared with.")
    retries_left: int | None = Field(
        default=None,
        description="max_tries - try_number of the failed try, when the task has retries: > 0 means Airflow "
        "failed it without using its retries (AirflowFailException, a retry policy's FAIL, a person).",
    )
    policy_failed: bool = Field(
        default=False,
        description="The failed try's own records say its retry policy (AIP-105 retry_policy) decided FAIL.",
    )
    error: str | None = None

    @property
    def changed_since_success(self) -> bool:
        """The failed try ran on other code than the task's last success: a newer DAG version (a new
        version is written when the DAG's serialised form changes), or, with a versioned bundle, the
        same version number on another bundle version (a commit that changed only task code). With
        a local DAG folder a change inside a task's code alone leaves no trace here."""
        last = self.last_success
        if last is None:
            return False
        newer = (
            self.failed_version is not None
            and last.dag_version is not None
            and self.failed_version > last.dag_version
        )
        moved = (
            self.failed_bundle_version is not None
            and last.bundle_version is not None
            and self.failed_bundle_version != last.bundle_version
        )
        return newer or moved

    @property
    def successes_on_version(self) -> int:
        """Successful task instances of this task, in other runs, on the failed try's DAG version."""
        if self.failed_version is None:
            return 0
        return sum(
            1
            for t in self.recent
            if t.state == "success"
            and t.dag_version == self.failed_version
            and (self.failed_bundle_version is None or t.bundle_version in {None, self.failed_bundle_version})
        )


class Group(BaseModel):
    """The failures one mapped `handle_failures` instance handles: the same fingerprint, or one
    failure whose log gave nothing to fingerprint (fetch_logs' output, one per group)."""

    model_config = ConfigDict(extra="ignore")

    key: str = Field(description="'fingerprint:<hex>' or 'failure:<key>' (an ungroupable failure).")
    label: str = Field(description="The representative's `dag.task[i]`, plus ' +N more' for a group.")
    members: list[FailureRef] = Field(min_length=1, description="Oldest first; members[0] represents.")
    excerpt: dict = Field(description="The representative's excerpt (logs.excerpt_record).")
    settings: dict | None = Field(
        default=None, description="The doctor's settings as fetch_logs read them (config.snapshot)."
    )
    dag_tags: dict[str, list[str]] | None = Field(
        default=None,
        description="{dag_id: tag names} of the members' DAGs as fetch_logs read them for the claim "
        "(doctor:off); the gate uses them instead of reading the tags again, and reads a DAG missing "
        "here itself. None: not read.",
    )
    history: dict[str, TaskHistory] = Field(
        default_factory=dict,
        description="{FailureRef.member_key: TaskHistory} as fetch_logs read it; a member absent here "
        "has no known history (no corroboration).",
    )


class Embedding(BaseModel):
    """embed_failure's output: the representative's vector (None when it could not be made)."""

    embedding: list[float] | None = None
    model: str = ""
    reused: bool = Field(default=False, description="Taken from a stored case with the same fingerprint.")
    error: str | None = None


class Memory(BaseModel):
    """retrieve_similar's output for a group: what the knowledge base knows about its failure."""

    neighbours: list[Neighbour] = Field(default_factory=list, description="Most similar first.")
    fingerprint_matches: list[Neighbour] = Field(default_factory=list)
    doctor_clears: list[int | None] = Field(
        default_factory=list, description="Per member: the doctor's clears of it so far; None unknown."
    )
    class_outcomes: dict | None = None
    error: str | None = None

    def for_member(self, i: int) -> dict:
        """The memory dict the gate and the messages read for member i (doctor_clears its own)."""
        data = self.model_dump(mode="json")
        data["doctor_clears"] = self.doctor_clears[i] if i < len(self.doctor_clears) else None
        return data


#: What a group's task did to each member it handled: {FailureRef.member_key: its result (JSON)}. A
#: member the task did nothing for is absent; nothing depends on the members' order.
PerMember = dict[str, dict]


class Diagnosed(BaseModel):
    """diagnose's output: the diagnosis (None when none came out) and how it was made."""

    diagnosis: Diagnosis | None = None
    diagnoser: str = Field(
        default="offline",
        description="'llm', 'offline' (the rules), 'memory' (decided without the LLM), 'oracle'.",
    )
    llm_called: bool = False
    error: str | None = Field(default=None, description="Why no diagnosis came out, or what went wrong.")
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    latency_ms: int | None = None


class GroupDecision(BaseModel):
    """gate_on_confidence's output: one Decision per member, aligned with Group.members."""

    decisions: list[Decision]
    doctor_clears: list[int | None]
    diagnosed_at: str = Field(description="ISO 8601 time the gate decided.")

    def members_with(self, verdict: str) -> list[int]:
        """Indexes of the members whose verdict is `verdict`."""
        return [i for i, d in enumerate(self.decisions) if d.verdict == verdict]
