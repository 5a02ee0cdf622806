"""What memory says about one failure: the one place the doctor's memory rules live.

Memory is what retrieve_similar found in the knowledge base for a failure: earlier cases with the
same fingerprint and the most similar cases (runbook entries and observed failures with their
verified outcomes). Every question the doctor asks of it is one function here:

- `is_outcome_of_this_error`: what happened to a failure here (a verified retry, a person's answer);
- `Recall.known_outcome`: the recognised case when that is what happened to this very error;
- `Recall.recognised`: which case memory recognises the failure as (the offline diagnoser);
- `Recall.decides_without_llm`: may memory diagnose without an LLM call (the diagnose stage);
- `Recall.vouches`, `Recall.vouches_by_observation`, `Recall.vouches_for`: does memory vouch for a
  retry, and through whose cases (the gate);
- `Recall.healed_here`, `Recall.failed_retries`, `Recall.own_retry_failed`, `Recall.said_permanent`:
  what speaks for and against one (the gate).

The rules (docs/gate.md, "Memory"): a case whose doctor retry is still in flight says nothing
about retrying yet; an observed case whose retry verifiably succeeded here (the doctor's, a
person's, or Airflow's own retry on the same DAG version: actor doctor, human, airflow) vouches when
it has this fingerprint or is the most similar case at or above the similarity threshold; a
verified failed retry of this fingerprint, or of a similar case unless this fingerprint is known to
heal, speaks against; a failure of this fingerprint that ended only after a change (a new DAG
version, a person's fix) speaks against; a person's "permanent" for this fingerprint outweighs every
verified retry. Only this deployment's own outcomes say what happened to an error: a runbook entry
is curated text about a class (knowledge for the diagnosis, never a retry made here), and the
doctor's own escalation is its decision, not an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_doctor.models import Neighbour

# Similarity at which the most similar case decides the diagnosis without an LLM call, whatever the
# retrieval threshold: 0.95 is where the runbook vectors' near-duplicates sit (bench/retrieval's
# clusters: near-duplicate groups at 0.9, distinct classes at 0.23-0.48), so only a near-copy of a
# known case skips the model.
RECOGNISE_WITHOUT_LLM_SIMILARITY = 0.95
# A retry's verified ends (remediation outcomes, include/sql/): what happened, whoever retried.
VERIFIED_RETRY_OUTCOMES = frozenset({"succeeded", "failed"})
# Outcomes that say a failure ended by a change, not a retry (include/sql/007_deployment_record.sql).
FIXED_OUTCOMES = frozenset({"fixed_by_change", "fixed_by_person"})


def is_outcome_of_this_error(case: Neighbour) -> bool:
    """Whether a case records what happened to its failure here, as opposed to what was decided or
    known about it.

    True for an observed case whose retry (the doctor's, a person's or Airflow's own) verifiably
    succeeded or failed, that ended only after a change (`Neighbour.fixed`), or that a person judged
    permanent (`Neighbour.judged_permanent`: they left it failed, or answered "permanent"). False
    for a runbook entry (curated knowledge of a class, not something that happened on this
    deployment), for the doctor's own escalation nobody answered
    (the doctor's decision: counting it would let the doctor confirm itself), for a retry still
    pending or never verified.

    Args:
        case: a similar case or a fingerprint match.
    Returns:
        bool.
    """
    return case.kind == "observed" and (
        case.outcome in VERIFIED_RETRY_OUTCOMES or case.fixed or case.judged_permanent
    )


@dataclass(frozen=True)
class Recall:
    """Memory of one failure, read by the diagnose stage, the offline diagnoser and the gate.

    Attributes:
        neighbours: similar cases, most similar first, without those still being retried.
        in_flight: similar observed cases whose doctor retry is still pending.
        fingerprint_matches: earlier cases with the same fingerprint (as retrieved: a person's
            "permanent" first, then newest first).
        threshold: the similarity (cosine, 0-1) at which a neighbour counts as memory
            (`DoctorSettings.similarity_threshold`).
    """

    neighbours: tuple[Neighbour, ...]
    in_flight: tuple[Neighbour, ...]
    fingerprint_matches: tuple[Neighbour, ...]
    threshold: float

    @classmethod
    def of(
        cls, neighbours: list[Neighbour], fingerprint_matches: list[Neighbour], threshold: float
    ) -> Recall:
        """Split `neighbours` (most similar first) into counted and in-flight cases."""
        in_flight = tuple(n for n in neighbours if n.kind == "observed" and n.outcome == "pending")
        counted = tuple(n for n in neighbours if n not in in_flight)
        return cls(counted, in_flight, tuple(fingerprint_matches), threshold)

    # -- what memory holds -----------------------------------------------------------------------

    @property
    def best(self) -> Neighbour | None:
        """The most similar counted case, or None."""
        return self.neighbours[0] if self.neighbours else None

    @property
    def close(self) -> list[Neighbour]:
        """Counted cases at least `threshold` similar."""
        return [n for n in self.neighbours if n.similarity >= self.threshold]

    @property
    def every_case(self) -> list[Neighbour]:
        """Counted and in-flight cases together, most similar first (what a case *is* does not
        depend on whether its retry has ended)."""
        return sorted(self.neighbours + self.in_flight, key=lambda n: n.similarity, reverse=True)

    @property
    def verified_fingerprint(self) -> list[Neighbour]:
        """Observed cases of this fingerprint whose retry verifiably succeeded here
        (`Neighbour.retry_verified`; a runbook entry never is)."""
        return [n for n in self.fingerprint_matches if n.retry_verified]

    @property
    def best_verified_similarity(self) -> float | None:
        """Similarity of the most similar counted (observed) case whose retry is verified, or None."""
        return max((n.similarity for n in self.neighbours if n.retry_verified), default=None)

    # -- what happened to this very error ----------------------------------------------------------

    def known_outcome(self) -> Neighbour | None:
        """The case memory recognises this failure as (`recognised`), when it is what happened to
        this very error: a case of this fingerprint for which `is_outcome_of_this_error` holds.

        Returns:
            that case, or None (memory recognises a similar case, a runbook entry, or an outcome-less
            case of this fingerprint; or nothing).
        """
        found = self.recognised()
        if found is None:
            return None
        case = found[0]
        return case if case in self.fingerprint_matches and is_outcome_of_this_error(case) else None

    @property
    def healed_here(self) -> bool:
        """A retry of this fingerprint verifiably succeeded on this deployment (an observed case; a
        runbook entry does not count): the evidence that outweighs the rules' permanent reading."""
        return bool(self.verified_fingerprint)

    @property
    def healed_by_airflow(self) -> list[Neighbour]:
        """Cases of this fingerprint that Airflow's own retry healed here (actor airflow)."""
        return [n for n in self.verified_fingerprint if n.actor == "airflow"]

    @property
    def fixed(self) -> list[Neighbour]:
        """Cases of this fingerprint that ended only after a change (`Neighbour.fixed`: a new DAG
        version, or a person's fix), newest first as retrieved: a recurrence is the old pattern of a
        fixed failure, not a passing cause."""
        return [n for n in self.fingerprint_matches if n.fixed]

    @property
    def said_permanent(self) -> list[Neighbour]:
        """Cases of this fingerprint a person said are permanent."""
        return [n for n in self.fingerprint_matches if n.judged_permanent]

    # -- for a retry -------------------------------------------------------------------------------

    @property
    def vouches(self) -> bool:
        """Memory vouches for a retry: a verified retry of this fingerprint here, or the most similar
        case is close and its retry verifiably succeeded here; never against a person's "permanent"
        for it, nor for a fingerprint whose failure a change fixed."""
        if self.said_permanent or self.fixed:
            return False
        best = self.best
        return bool(self.verified_fingerprint) or bool(
            best and best.similarity >= self.threshold and best.retry_verified
        )

    @property
    def vouches_by_observation(self) -> bool:
        """Memory vouches through this deployment's own cases: since a runbook entry never vouches,
        the same as `vouches` (kept for callers that name the distinction)."""
        return self.vouches

    def vouches_for(self, *, cut_off: bool, uncatalogued: bool) -> bool:
        """Whether memory vouches for a retry of the error as the rules read it (the gate's memory
        evidence): `vouches`, narrowed where a runbook entry cannot know the answer.

        Args:
            cut_off: the log was cut before the exception that failed the task (excerpt source
                `cut_off`): it shows only an error being handled when that one was raised, so only
                this deployment's verified retry of the same fingerprint (`healed_here`) vouches.
            uncatalogued: the rules read a transient class the catalogue leaves out (a refusal on a
                port that is not the protocol's standard one): observed retries vouch for it as
                for any other (memory holds no runbook vouching any more).
        Returns:
            bool.
        """
        if not self.vouches:
            return False
        if cut_off:
            return self.healed_here
        return True

    # -- against a retry ---------------------------------------------------------------------------

    @property
    def failed_retries(self) -> list[Neighbour]:
        """Verified failed retries that speak against an automatic one: any case of this fingerprint,
        and any close case unless this fingerprint is known to heal. Unique by case id."""
        found = {n.case_id: n for n in self.fingerprint_matches if n.retry_failed}
        if not self.verified_fingerprint:
            found |= {n.case_id: n for n in self.close if n.retry_failed}
        return list(found.values())

    def own_retry_failed(self, doctor_clears: int | None) -> bool:
        """A retry of this error failed since the doctor cleared this task instance: most likely the
        doctor's own, so a person gains nothing from being asked to try it again (no approval).

        Args:
            doctor_clears: the doctor's clears of this task instance; None when unknown.
        """
        return bool(self.failed_retries) and bool(doctor_clears)

    # -- for the diagnosis -------------------------------------------------------------------------

    def recognised(self) -> tuple[Neighbour, float, str] | None:
        """The case memory recognises this failure as, for the offline diagnoser.

        Returns:
            (case, confidence, why): a case of this fingerprint whose class and transience are known
            (confidence 0.9): the newest that records what happened to it (`is_outcome_of_this_error`),
            else the newest; else the most similar case at or above the threshold with a known
            class, in flight or not (confidence its similarity, at most 0.95); None otherwise.
            A newer case that holds only the doctor's own decision (an escalation nobody answered,
            perhaps made on a person's answer since undone) does not hide what happened to an older
            one: the doctor would otherwise confirm itself.
        """
        known = [n for n in self.fingerprint_matches if n.error_class and n.transient is not None]
        if known:
            happened = [n for n in known if is_outcome_of_this_error(n)]
            return (happened or known)[0], 0.9, "the same error fingerprint was seen before"
        close = [
            n
            for n in self.every_case
            if n.similarity >= self.threshold and n.error_class and n.transient is not None
        ]
        if close:
            n = close[0]
            return n, min(0.95, n.similarity), f"a {n.kind} case is {n.similarity:.2f} similar"
        return None

    def decides_without_llm(self) -> bool:
        """Memory knows this failure well enough to diagnose it without an LLM call.

        Only this deployment's own verified outcomes decide without the model, never a runbook
        entry's text: True for a case of this fingerprint that records what happened to it here
        (`is_outcome_of_this_error`: a verified retry, either way, a fix by a change, or a person's
        "permanent"), and for a most similar case at least RECOGNISE_WITHOUT_LLM_SIMILARITY (and the
        threshold) similar that is an observed case with such an outcome (a near-copy of a known
        case). The diagnose stage still asks the rules first (diagnosis.rules_dispute_memory).
        """
        if any(is_outcome_of_this_error(n) for n in self.fingerprint_matches):
            return True
        return any(
            n.similarity >= max(self.threshold, RECOGNISE_WITHOUT_LLM_SIMILARITY)
            and is_outcome_of_this_error(n)
            for n in self.every_case[:1]
        )
