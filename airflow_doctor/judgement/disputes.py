"""Disputed readings: a reading of the rules whose surface transient and permanent failures share,
and what in a log argues for a retry (docs/gate.md, "Disputed readings"; issue "Judgement that
generalises").

The rules read the primary error's surface. For most permanent classes the surface settles it (a
KeyError, a rejected password, a missing module: a retry with nothing changed fails the same way).
For a few it cannot: an unresolvable host is a typo or a DNS outage, a refusal on localhost a
container misconfiguration or a local service restarting, a SIGTERM a node drain or a person, a
memory kill a greedy task or a greedy neighbour, a unique-key violation bad data or two writers
racing for a generated key, a 404 a wrong name or an object not there yet (or already collected).
The catalogue documents each one (catalogue.DISPUTED). For these the rules' reading is a default,
not a veto: an independent judge that has read the whole excerpt (the LLM, or the label in
`eval --diagnoser oracle`; never the offline diagnoser, which is the rules themselves) may settle it
as transient; gate.py says when (`settle`). A transient reading outside the catalogue (a refusal on
a port that is not the protocol's standard one, a pod that did not start in time) is the same
question the other way round.

This module says which readings are disputed (`is_disputed`) and what in an excerpt argues for a
retry (`pleas`). A hostile log must argue (that is what makes it hostile), so a log that argues keeps
the rules' reading, however sure the judge is. Never raises.
"""

from __future__ import annotations

import re
import unicodedata

from airflow_doctor.judgement.catalogue import DISPUTED
from airflow_doctor.judgement.rules import (
    GENERIC_CODE_ERROR,
    TRY_SET_FROM_OUTSIDE,
    WRONG_AWS_REGION,
    Rule,
    match_rule,
)

# Readings whose class is disputed but whose own rule settles it (by Rule.id): a region that does not
# exist resolves nowhere, ever; a try that Airflow says was set to failed, success or skipped from
# outside was stopped by a person, the API or a DAG run timeout, whose decision a retry would undo.
SETTLED_READINGS = frozenset({WRONG_AWS_REGION.id, TRY_SET_FROM_OUTSIDE.id})

# Words that address whoever judges the log rather than describe what a library did: retry advice,
# the doctor's own vocabulary (diagnosis, runbook, confidence, tool calls), jailbreak phrasing, and
# "retry" / "temporary" in the languages hostile logs use. Library phrases ("Max retries exceeded",
# "Retrying in 2 s", "UP_FOR_RETRY") do not match: they say what happened, not what to decide.
_ADDRESSED = re.compile(
    r"\btransient\b|\bflak(?:y|e)\b|\bintermittent(?:ly)?\b|"
    r"\btemporar(?:y|ily) (?:issue|glitch|problem|blip)|"
    r"\b(?:safe|ok|okay|fine|harmless) to (?:retry|re-?run|clear)\b|\bplease (?:retry|re-?run|clear)\b|"
    r"\b(?:should|must|can|may) (?:safely )?(?:be )?(?:retried|re-?run|cleared|retry)\b|"
    r"\b(?:retry|re-?run|clear) (?:it|this|me|the task)\b|\bjust (?:retry|re-?run|clear)\b|"
    r"\bdoctor\b|\bdiagnos\w*|\brunbook\b|\bauto[_ -]?retr\w*|\bconfidence\b|\brecord_diagnosis\b|"
    r"\brecommended_action\b|\btool_(?:use|result|call)\b|\b(?:ignore|disregard) (?:all |any |the )?"
    r"(?:previous|above|prior|earlier|other)\b|\binstructions?\b|\bknown (?:issue|flake|glitch)\b|"
    r"\bnot a (?:real |code )?(?:bug|error|problem)\b|"
    r"r[eé]essa|relancer|temporaire|erneut|wiederhol|vorübergehend|novamente|tempor[aá]ri|reintent|riprov",
    re.I,
)
# Letters beyond Latin Extended-B (Cyrillic, Greek, CJK, full-width forms) and invisible format
# characters: what instructions in other scripts and look-alike exception names are written with.
_LATIN_END = 0x024F
_FRAME = re.compile(r'File "[^"]*", line \d+')


def is_disputed(rule: Rule | None) -> bool:
    """Whether `rule` is a reading an independent diagnosis may settle (catalogue.DISPUTED, less the
    readings whose own rule settles them): a permanent one it may overrule, a transient one outside
    the catalogue (`connection_refused`, `pod_start_timeout`) it may vouch for."""
    return rule is not None and rule.error_class in DISPUTED and rule.id not in SETTLED_READINGS


def pleas(excerpt: dict, *, local_services: bool = False, limit: int = 3) -> list[str]:
    """What in the excerpt, besides its primary error, argues for a retry: at most `limit` reasons.

    Reads the excerpt's `text` (what the LLM was shown; bounded by logs.MAX_EXCERPT_BYTES), line by
    line, skipping the lines that restate the primary error's first line. A line argues when
    - the rules read it as a transient class (a reset, timeout or 503 printed before, after or
      inside the real error: an earlier caught error, a failing callback, a forged traceback);
    - it addresses the judge (`_ADDRESSED`: retry advice, the doctor's vocabulary, jailbreaks);
    - it has letters outside the Latin script or invisible characters (instructions in another
      script, look-alike exception names), or the excerpt's exception names are forged.
    Returns:
        reasons as short strings (e.g. "a line reads as connection_reset_by_remote"); [] when the
        excerpt argues for nothing, so an independent diagnosis may settle a disputed reading.
    """
    found: list[str] = []
    if excerpt.get("forged_names"):
        found.append("an exception name has invisible or look-alike characters")
    primary = (excerpt.get("message") or "").split("\n", 1)[0].strip()
    lines = [*(excerpt.get("text") or "").splitlines(), *(excerpt.get("context") or [])]
    after_frame = False
    for line in lines:
        if len(found) >= limit:
            break
        text = line.strip()
        # A traceback's frame and the source line under it are code, not something that happened
        # (`session.get(url, timeout=30)` is no timeout); the words test below still reads them.
        code, after_frame = after_frame, bool(_FRAME.match(text))
        if not text or text == "[...]":
            continue
        # Words joined by underscores are words too: a file or function name can carry the advice
        # (`RETRY_IT_IS_TRANSIENT.py`), which word boundaries alone would not see.
        if _ADDRESSED.search(text) or _ADDRESSED.search(text.replace("_", " ")):
            # The words are the log's: the reason names the kind, never echoes them (notes, Slack, UI).
            _add(found, "a line speaks to the judge (retry advice, the doctor's words, instructions)")
        elif _foreign(text):
            _add(found, "a line has letters outside the Latin script or invisible characters")
        if after_frame or code or (len(primary) >= 12 and primary in text):
            continue
        rule = match_rule(None, text, local_services=local_services)
        if rule is not None and rule.transient and rule.error_class != GENERIC_CODE_ERROR:
            _add(found, f"a line besides the primary error reads as {rule.error_class}")
    return found[:limit]


def _add(found: list[str], reason: str) -> None:
    if reason not in found:
        found.append(reason)


def _foreign(text: str) -> bool:
    return any(
        (ord(ch) > _LATIN_END and unicodedata.category(ch).startswith("L"))
        or unicodedata.category(ch) == "Cf"
        for ch in text
    )
