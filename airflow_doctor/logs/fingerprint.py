"""Fingerprints: the same failure, recurring with different volatile details, hashes the same.

The fingerprint is a SHA-256 (first 16 hex digits) of the exception type plus the normalised
message: timestamps, UUIDs, hex ids, IP addresses, host names, ports, paths, quoted values and
numbers are replaced by placeholders. `signature()` is also the text the embedding is made of.
"""

from __future__ import annotations

import hashlib
import re

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<ts>"),
    (re.compile(r"\d{4}-\d\d-\d\d"), "<date>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"<IP>"), "<ip>"),
    (re.compile(r"\b[0-9a-f:]*:[0-9a-f:]+:[0-9a-f]+\b", re.I), "<ip>"),  # IPv6
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    # Short hex ids (a short git sha, a job or pod suffix): 7-11 hex digits with a digit and a letter.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,11}\b", re.I), "<hex>"),
    (re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"]+"), "<url>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@%+~-]+){2,}[/\\]?"), "<path>"),
    (
        re.compile(
            r"(?i)\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|net|org|io|internal|local|cloud|"
            r"amazonaws|googleapis|svc|cluster|lan|dev|ai|co|edu|gov|de|uk|fr|br|in)\b"
        ),
        "<host>",
    ),
    (re.compile(r"(?i)(host|server|hostname)\s*[=:]\s*\"?[\w.-]+\"?"), r"\1 <host>"),
    (re.compile(r"(?i)(port)\s*[=:]?\s*\d+"), r"\1 <n>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
    (re.compile(r"\s+"), " "),
]


# Numbers that carry meaning and are kept: HTTP statuses, exit codes and signals, errno values.
_KEEP = [
    re.compile(r"(?i)\b(status(?: code)?|http(?:/\d(?:\.\d)?)?|response|code)(\s*[:=]?\s*)([1-5]\d\d)\b"),
    re.compile(r"(?i)()()\b([1-5]\d\d)(?=\s*(?:client error|server error|:\s*[A-Z]))"),
    re.compile(r"(\()()([1-5]\d\d)(?=\))"),
    re.compile(r"(?i)\b(return code|exit code|exit status|returncode|signal|errno)(\s*[:=]?\s*)(-?\d+)\b"),
]
_KEPT = re.compile(r"KEEPNUM(m?)(\d+)")


def _protect(match: re.Match[str]) -> str:
    number = match.group(3)
    return (
        f"{match.group(1)}{match.group(2)}KEEPNUM{'m' if number.startswith('-') else ''}{number.lstrip('-')}"
    )


def normalise(text: str) -> str:
    """`text` with volatile details replaced by placeholders, whitespace collapsed, cut to 500 chars.

    Kept as they are: HTTP status codes (403 and 503 are different failures), exit codes and
    signals (-9 is SIGKILL), errno values.
    """
    out = text or ""
    for pattern in _KEEP:
        out = pattern.sub(_protect, out)
    for pattern, repl in _RULES:
        out = pattern.sub(repl, out)
    out = _KEPT.sub(lambda m: ("-" if m.group(1) else "") + m.group(2), out)
    return out.strip()[:500]


_QUALIFIED_IN_PARENS = re.compile(r"\((?:[a-z_][\w]*\.)+([A-Z]\w*)\)")


def signature(exception_type: str | None, message: str) -> str:
    """The normalised error signature `Type: message` (the fingerprint's and embedding's input).

    The type is reduced to its class name (`psycopg2.OperationalError` -> `OperationalError`):
    structured Airflow 3 logs carry the bare name, plain-text tracebacks the qualified one.
    """
    exc = (exception_type or "").strip().rsplit(".", 1)[-1]
    # SQLAlchemy and others wrap the driver's error as "(psycopg2.OperationalError) ...": keep the
    # class name only, for the same reason as the type.
    msg = normalise(_QUALIFIED_IN_PARENS.sub(r"(\1)", message or ""))
    return f"{exc}: {msg}" if exc else msg


def fingerprint(exception_type: str | None, message: str) -> str:
    """A stable 16-hex-digit hash of the error signature.

    Same exception type and same message up to volatile details (timestamps, ids, hosts, ports,
    paths, counts, durations) give the same fingerprint; anything else gives another.
    """
    return hashlib.sha256(signature(exception_type, message).encode("utf-8")).hexdigest()[:16]
