"""What memory says about one failure: the one place the doctor's memory rules live.

Memory is what retrieve_similar found in the knowledge base for a failure: earlier cases with the
same fingerprint and the most similar cases (runbook entries and observed failures with their
verified outcomes). Three stages read it, each through `Recall`:

- the diagnose stage: may memory decide without an LLM call (`decides_without_llm`);
- the offline diagnoser: which case memory recognises the failure as (`recognised`);
- the gate: does memory vouch for a retry (`vouches`), and what speaks against one
  (`failed_retries`, `said_permanent`).

The rules (docs/gate.md, issue "Judgement that generalises"): a case whose doctor retry is
still in flight says nothing about retrying yet; a transient runbook entry or an observed case whose
retry verifiably succeeded vouches when it has this fingerprint or is the most similar case at or
above the similarity threshold; a verified failed retry of this fingerprint, or of a similar case
unless this fingerprint is known to heal, speaks against; a person's "permanent" for this
fingerprint outweighs every verified retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_doctor.models import Neighbour

# Similarity at which the most similar case decides the diagnosis without an LLM call, whatever the
# retrieval threshold: 0.95 is where the runbook vectors' near-duplicates sit (bench/retrieval's
# clusters: near-duplicate groups at 0.9, distinct classes at 0.23-0.48), so only a near-copy of a
# known case skips the model.
RECOGNISE_WITHOUT_LLM_SIMILARITY = 0.95


@dataclass(frozen=True)
class Recall:
    """Memory of one failure, read by the diagnose stage, the offline diagnoser and the gate.

    Attributes:
        neighbours: similar cases, most similar first, without those still being retried.
        in_flight: similar observed cases whose doctor retry is still pending.
        fingerprint_matches: earlier cases with the same fingerprint (newest first as retrieved).
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

    @property
    def best(self) -> Neighbour | None:
        """The most similar counted case, or None."""
        return self.neighbours[0] if self.neighbours else None

    @property
    def close(self) -> list[Neighbour]:
        """Counted cases at least `threshold` similar."""
        return [n for n in self.neighbours if n.similarity >= self.threshold]

    @property
    def verified_fingerprint(self) -> list[Neighbour]:
        """Cases of this fingerprint whose retry is verified to have worked."""
        return [n for n in self.fingerprint_matches if n.retry_verified]

    @property
    def said_permanent(self) -> list[Neighbour]:
        """Cases of this fingerprint a person said are permanent."""
        return [n for n in self.fingerprint_matches if n.judged_permanent]

    @property
    def vouches(self) -> bool:
        """Memory vouches for a retry: a verified retry of this fingerprint, or the most similar case
        is close and its retry is verified; never against a person's "permanent" for it."""
        if self.said_permanent:
            return False
        best = self.best
        return bool(self.verified_fingerprint) or bool(
            best and best.similarity >= self.threshold and best.retry_verified
        )

    @property
    def vouches_by_observation(self) -> bool:
        """Memory vouches through this deployment's own cases, not a runbook entry: an observed case
        of this fingerprint whose retry is verified, or the most similar case, at or above the
        threshold, is an observed one whose retry is verified."""
        if not self.vouches:
            return False
        best = self.best
        return any(n.kind == "observed" for n in self.verified_fingerprint) or bool(
            best and best.kind == "observed" and best.similarity >= self.threshold and best.retry_verified
        )

    @property
    def failed_retries(self) -> list[Neighbour]:
        """Verified failed retries that speak against an automatic one: any case of this fingerprint,
        and any close case unless this fingerprint is known to heal. Unique by case id."""
        found = {n.case_id: n for n in self.fingerprint_matches if n.retry_failed}
        if not self.verified_fingerprint:
            found |= {n.case_id: n for n in self.close if n.retry_failed}
        return list(found.values())

    @property
    def every_case(self) -> list[Neighbour]:
        """Counted and in-flight cases together, most similar first (what a case *is* does not
        depend on whether its retry has ended)."""
        return sorted(self.neighbours + self.in_flight, key=lambda n: n.similarity, reverse=True)

    @property
    def best_verified_similarity(self) -> float | None:
        """Similarity of the most similar counted case whose retry is verified, or None."""
        return max((n.similarity for n in self.neighbours if n.retry_verified), default=None)

    def recognised(self) -> tuple[Neighbour, float, str] | None:
        """The case memory recognises this failure as, for the offline diagnoser.

        Returns:
            (case, confidence, why): a case of this fingerprint whose class and transience are known
            (confidence 0.9), else the most similar case at or above the threshold with a known
            class, in flight or not (confidence its similarity, at most 0.95); None otherwise.
        """
        known = [n for n in self.fingerprint_matches if n.error_class and n.transient is not None]
        if known:
            return known[0], 0.9, "the same error fingerprint was seen before"
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
        """Memory knows this failure well enough to diagnose it without an LLM call: a case of this
        fingerprint with a verified retry or a verified outcome, or a most similar case at least
        RECOGNISE_WITHOUT_LLM_SIMILARITY (and the threshold) similar that is a runbook entry or has
        an outcome."""
        if any(n.retry_verified or n.outcome in {"succeeded", "failed"} for n in self.fingerprint_matches):
            return True
        return any(
            n.similarity >= max(self.threshold, RECOGNISE_WITHOUT_LLM_SIMILARITY)
            and (n.kind == "runbook" or n.outcome != "none")
            for n in self.every_case[:1]
        )
