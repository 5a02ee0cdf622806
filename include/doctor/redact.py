"""Redaction: secrets out of log text before anything embeds, stores, sends or notifies it.

Two layers: Airflow's own secrets masker (every value Airflow knows to be secret, e.g.
connection passwords, masked as `***`), then patterns for secrets Airflow does not know about.
Each pattern replaces only the secret part and keeps the context (`password=***`), so the
diagnosis can still see what kind of thing failed.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MASK = "***"

# (name, pattern, replacement). Order matters: specific token formats before generic key=value.
_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
        "-----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY-----",
    ),
    (
        "auth_header",
        re.compile(
            r"(?i)\b(authorization|proxy-authorization)(['\"]?\s*[:=]\s*['\"]?)"
            r"(bearer|basic|token|digest|negotiate|aws4-hmac-sha256)?\s*[^\n'\"}]+"
        ),
        r"\1\2\3 ***",
    ),
    ("bearer", re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), MASK),
    ("aws_access_key", re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"), MASK),
    (
        "aws_secret",
        re.compile(
            r"(?i)(aws_secret_access_key|aws_session_token|secretaccesskey)"
            r"(['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9/+=]{16,}"
        ),
        r"\1\2***",
    ),
    ("gcp_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MASK),
    ("gcp_private_key_id", re.compile(r"(?i)(\"private_key_id\"\s*:\s*\")[0-9a-f]{20,}"), r"\1***"),
    (
        "azure_conn",
        re.compile(r"(?i)(AccountKey|SharedAccessKey|SharedAccessSignature|sig)=([^;&\s'\"]+)"),
        r"\1=***",
    ),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    (
        "slack_webhook",
        re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/]+"),
        "hooks.slack.com/services/***",
    ),
    ("github_token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"), MASK),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{8,}"), MASK),
    ("openai_key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9]{20,}"), MASK),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), MASK),
    ("uri_password", re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*):([^@\s'\"/]+)@"), r"\1:***@"),
    (
        "key_value",
        re.compile(
            r"(?i)\b((?:[a-z0-9_.-]*?)(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
            r"client[_-]?secret|private[_-]?key|credentials?|auth)(?:[a-z0-9_.-]*?))"
            r"(['\"]?\s*(?:=|:)\s*['\"]?)(?!\*\*\*)([^\s'\",;&}]{3,})"
        ),
        r"\1\2***",
    ),
]


def redact(text: str) -> str:
    """Return `text` with secrets replaced by `***`.

    Args:
        text: any log text (already decoded to str).
    Returns:
        the redacted text; same length or shorter in practice, never containing a matched secret.
    """
    if not text:
        return text
    text = _airflow_mask(text)
    for _name, pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _airflow_mask(text: str) -> str:
    """Apply Airflow's secrets masker (values registered by connections/Variables in this process)."""
    try:
        from airflow.sdk.log import redact as airflow_redact
    except Exception:  # noqa: BLE001 - outside Airflow (CLI, tests) there is no masker to apply
        return text
    try:
        result = airflow_redact(text)
        return result if isinstance(result, str) else text
    except Exception as exc:  # noqa: BLE001 - the masker must never stop the doctor
        log.debug("Airflow secrets masker failed: %s", exc)
        return text
