"""The rules' reading of one failure's excerpt: computed once, read by every judge.

The offline diagnoser, the LLM's cross-check, the diagnose stage's memory-first check, the gate,
retrieve_similar (which class's retry outcomes to count) and the evaluation all ask the rules the
same questions about the same excerpt. `read` answers them once, in a `Reading`; each of them takes
it as an optional `reading=` and reads the excerpt itself only when it is not given. Pure: no I/O,
never raises on an excerpt the log stage made.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_doctor.judgement.catalogue import is_retry_safe
from airflow_doctor.judgement.disputes import is_disputed, pleas
from airflow_doctor.judgement.error_classes import ErrorClass
from airflow_doctor.judgement.rules import VETO_CONFIDENCE, Rule, classify, permanent_causes
from airflow_doctor.models import RETRY_ACTIONS

# Where the primary error may come from for the catalogue to vouch for it (logs/excerpt.py's
# `source`): the exception that failed the task (or its chain), the output a wrapper reports, the
# error line of a log without any exception (a lost worker), or Airflow's own audit record of what
# ended the try (a heartbeat timeout). Not a line merely logged before a generic re-raise (`context`).
AUTHORITATIVE_SOURCES = frozenset({"error_detail", "traceback", "wrapped_output", "log_line", "audit_log"})
# Sources where the primary error replaced a wrapper: the output's other errors are in `causes`, and
# they are evidence. (An exception's own chain is not: the library errors it was handling say
# nothing about why it failed.)
WRAPPED_SOURCES = frozenset({"wrapped_output", "context"})


@dataclass(frozen=True)
class Reading:
    """What the offline rules make of one excerpt.

    Attributes:
        excerpt_given: an excerpt was there to read (False: no rule evidence at all; the catalogue
            cannot vouch and no rule can veto).
        rule: the rule that reads the primary error (rules.classify), or None when none does.
        source: where the primary error was found (the excerpt's `source`: `traceback`, `cut_off`,
            `context`, ...), or None.
        disputed: the reading is one an independent diagnosis may settle (disputes.is_disputed).
        pleas: what else in the excerpt argues for a retry (disputes.pleas), at most three reasons,
            read wherever the reading is `settleable`;
            read only for a disputed reading, the one question they answer (elsewhere ()).
        permanent_causes: permanent rules that match another failure a wrapper's output printed
            (sources in WRAPPED_SOURCES only, any confidence: the failure a wrapper reports is printed
            before whatever a cleanup step prints after it), then those matching a direct cause of the
            primary error (`raise ... from`, the excerpt's `raised_from`, any source), in that order
            (issue #23 item 3, "The error is the error"). Any one vetoes a retry (gate.py).
        forged: an exception name in the log has invisible or look-alike characters.
    """

    excerpt_given: bool
    rule: Rule | None = None
    source: str | None = None
    disputed: bool = False
    pleas: tuple[str, ...] = ()
    permanent_causes: tuple[Rule, ...] = ()
    forged: bool = False

    @property
    def error_class(self) -> ErrorClass | None:
        """The class the rules read, or None."""
        return self.rule.error_class if self.rule else None

    @property
    def retry_safe_class(self) -> ErrorClass | None:
        """The class when the rules read a transient class of the retry-safe catalogue, else None."""
        if self.rule is not None and self.rule.transient and is_retry_safe(self.rule.error_class):
            return self.rule.error_class
        return None

    @property
    def uncatalogued(self) -> bool:
        """The rules read a transient class the catalogue leaves out (`connection_refused`,
        `pod_start_timeout`): only this deployment's observed retries, a person or an independent
        diagnosis can vouch for it."""
        return self.rule is not None and self.rule.transient and not is_retry_safe(self.rule.error_class)

    @property
    def settleable(self) -> bool:
        """A diagnosis corroborated by the deployment's record may settle this reading as transient
        (gate.settle): a disputed surface, an error the rules know no class for, or a transient class
        the catalogue leaves out."""
        return self.excerpt_given and (self.disputed or self.rule is None or self.uncatalogued)

    @property
    def authoritative(self) -> bool:
        """The primary error comes from a source in AUTHORITATIVE_SOURCES."""
        return self.source in AUTHORITATIVE_SOURCES

    @property
    def cut_off(self) -> bool:
        """The log was cut before the exception that failed the task: the primary error is one that
        was being handled when that exception was raised."""
        return self.source == "cut_off"

    @property
    def vetoes_transient(self) -> bool:
        """The rules read a permanent class, at least VETO_CONFIDENCE sure, that is not disputed: an
        LLM's "transient" is cut (diagnosis.cross_check)."""
        return (
            self.rule is not None
            and not self.rule.transient
            and self.rule.confidence >= VETO_CONFIDENCE
            and not self.disputed
        )

    @property
    def rules_retry(self) -> bool:
        """The rules alone would retry: a transient reading with a retry action (the evaluation's
        `rules_only` baseline)."""
        return self.rule is not None and self.rule.transient and self.rule.action in RETRY_ACTIONS

    @property
    def outcome_class(self) -> ErrorClass | None:
        """The class whose verified doctor retries are counted for demotion
        (KnowledgeBase.class_outcomes): a retry-safe class, or a disputed reading (which a diagnosis
        may settle and the doctor then retry); None otherwise."""
        if self.retry_safe_class is not None or self.disputed:
            return self.rule.error_class
        return None


def read(excerpt: dict | None, *, local_services: bool) -> Reading:
    """Read one excerpt with the offline rules.

    Args:
        excerpt: an excerpt as dict (logs.excerpt_record: exception_type, message, causes, context,
            text, source, forged_names); None when there is none.
        local_services: localhost services are real here (`DoctorSettings.local_services`; rules
            LOCALHOST_REFUSED). Callers pass the settings' value, so every judge reads alike.
    Returns:
        the Reading. An empty excerpt ({}) is read as one with nothing the rules know.
    """
    if excerpt is None:
        return Reading(excerpt_given=False)
    rule = classify(excerpt, local_services=local_services) if excerpt else None
    source = excerpt.get("source")
    disputed = is_disputed(rule)
    # Pleas matter wherever a diagnosis may settle the reading: a disputed surface, an error the
    # rules know no class for, a transient class the catalogue leaves out (gate.settle).
    settleable = disputed or rule is None or (rule.transient and not is_retry_safe(rule.error_class))
    return Reading(
        excerpt_given=True,
        rule=rule,
        source=source,
        disputed=disputed,
        pleas=tuple(pleas(excerpt, local_services=local_services)) if settleable and excerpt else (),
        permanent_causes=_permanent_causes(excerpt, source),
        forged=bool(excerpt.get("forged_names")),
    )


def _permanent_causes(excerpt: dict, source: str | None) -> tuple[Rule, ...]:
    """`Reading.permanent_causes` of an excerpt: the printed failures' of a wrapper, then the direct
    causes' (any confidence: a permanent class among them is evidence, however sure its rule)."""
    printed = permanent_causes(excerpt, min_confidence=0.0) if source in WRAPPED_SOURCES else []
    return (*printed, *permanent_causes(excerpt, min_confidence=0.0, field="raised_from"))
