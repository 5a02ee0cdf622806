"""Redaction: secrets out of log text before anything embeds, stores, sends or notifies it.

`redact` runs on a whole log text (before the excerpt is chosen, windowed or cut); docs/redaction.md
lists every family with example shapes, and the known limits.

1. Multi-line blocks: PEM, PGP, OpenSSH, SSH2 and PuTTY private keys are found by their BEGIN
   marker and masked up to their END marker (or, for a truncated key, over the key-material lines
   after it), wherever the excerpt window later falls. Every newline is kept, so line numbers
   (and the excerpt's choice of lines) do not move.
2. Airflow's own secrets masker: every value Airflow knows to be secret in this process (connection
   passwords, sensitive Variables), masked as `***`.
3. Encoded text: a whitespace-separated token with `%XX` escapes is decoded (twice at most, `+` as a
   space too: a GCP `keyfile_dict` inside an `AIRFLOW_CONN_` URI), and a run of `\\xNN` escapes is
   decoded; when the decoded form holds a secret, it replaces the token, redacted. NUL bytes (UTF-16
   read as UTF-8) are dropped first.
4. Patterns, each on the lines holding one of its needles. Vendor token formats come from
   detect-secrets 1.5.0 (https://github.com/Yelp/detect-secrets): the `denylist` regexes of its
   Stripe, SendGrid, GitHub, GitLab, Twilio, Mailchimp, Discord, Square, Azure storage, PyPI,
   Telegram, Artifactory and AWS plugins are used as published (their public class attribute). Its
   Slack, JWT, basic-auth, keyword, npm and OpenAI regexes are not linear-time on long runs (nested
   or unbounded quantifiers that backtrack), so they are rewritten here from the published patterns
   with bounded quantifiers. What logs need on top: key/value in every quoting and separator style
   (ODBC braces too), CLI flags with attached or separate values and the password flags of common
   commands (mysql -p, redis-cli -a, ldapsearch -w/-y, sqlcmd -P...), `configure set`, presigned
   URL signatures, `user:pw@` and `user/pw@` in URIs and DSNs, .netrc and .pgpass lines, auth and
   header tuples, query engines' secrets, cookies, SMTP AUTH lines, newer vendor prefixes (hf_,
   dop_v1_, shpat_, lin_api_, xoxe.xoxp-, GOCSPX-...). A mask that ends inside a token masks its
   rest (a fixed-length published regex on a longer key). Then values on another line than their
   key: the next line after `key:`, a Kubernetes env var's `value:` after `- name: DB_PASSWORD`,
   `send "..."` after an expect prompt, a table's or data frame's secret column, a printed secret
   file, a key cut by a line wrap, a random literal on a traceback's source line. Last, entropy:
   detect-secrets' Shannon entropy (its Base64/HexHighEntropyString charsets and limits) masks
   random-looking tokens near a credential word, in string literals, and long ones alone; hashes,
   UUIDs, paths and ids elsewhere are kept.
5. Long tokens anywhere (16 to 4096 base64 characters): Fernet keys, base64 of `user:password` or
   of text holding a secret, and random-looking ones (4.).

Each pattern masks only the secret part and keeps the context (`password=***`), so the diagnosis
can still see what kind of thing failed.

Linear time: `bound_text` first caps a text (10 MB, keeping the tail) and every line (64 KB,
keeping head and tail); every quantifier is bounded or possessive, or follows a literal that a match
consumes, so a long run of any character costs at most a constant per character. Matching is
case-insensitive on the text or on `fold(text)`, a lower-cased copy of the same length, so offsets
never shift. Speed: one scan with a trie-shaped regex of every needle finds the candidate lines
(one str.find per needle took 1.4 s over 10 MB of random bytes); short needles (`pw`, `-p`) count
only where a pattern could match; a 10 MB file of random bytes or of random Unicode text gives its
excerpt in well under 2 s (bench/redact.py).

Known gaps: a secret with no credential word near, no known prefix and no known shape (a bare
random password under 32 characters, a bare hex key) is not found; values more than 3 lines below
their key; base64 under 16 characters or wrapped over lines; see docs/redaction.md.
"""

from __future__ import annotations

import base64
import bisect
import functools
import itertools
import logging
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Literal
from urllib.parse import unquote, unquote_plus

log = logging.getLogger(__name__)

MASK = "***"
MAX_TEXT_BYTES = 10 * 1024 * 1024  # of a whole log; the tail is kept (it holds the failure)
MAX_LINE_CHARS = 64 * 1024  # of one line; its head and tail are kept
LINE_CUT_MARKER = " [... line cut by airflow-doctor ...] "


def bound_text(text: str, max_bytes: int = MAX_TEXT_BYTES, max_line: int = MAX_LINE_CHARS) -> str:
    """Cap a text before any pattern runs on it.

    Args:
        text: any text.
        max_bytes: bound of the whole text, in characters (at most 4 UTF-8 bytes each; the tail is kept).
        max_line: bound of each line, in characters (head and tail kept around `LINE_CUT_MARKER`).
    Returns:
        the text, at most `max_bytes` characters, no line longer than `max_line` plus the marker.
    """
    if len(text) > max_bytes:
        text = text[-max_bytes:]
    if len(text) <= max_line:
        return text
    lines = text.split("\n")
    if max(map(len, lines)) <= max_line:
        return text
    half = max_line // 2
    return "\n".join(ln if len(ln) <= max_line else ln[:half] + LINE_CUT_MARKER + ln[-half:] for ln in lines)


# -- 1. multi-line blocks -------------------------------------------------------------------------

_BLOCK_BEGIN = re.compile(r"-{4,5} ?BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?) ?-{4,5}")
_BLOCK_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}")
_PUTTY = re.compile(r"Private-Lines: *(\d{1,4})")
# A line of a truncated key: base64 to its end, a PEM header, or nothing.
_KEY_MATERIAL = re.compile(
    r"[A-Za-z0-9+/]{16,}={0,2}[ \t'\",]{0,3}$|^\s*(?:Proc-Type|DEK-Info|Comment|Version):|^\s*$"
)
MAX_BLOCK_LINES = 1000  # of a truncated key masked line by line


def _mask_keep_newlines(segment: str) -> str:
    return "\n".join(MASK if part.strip() else part for part in segment.split("\n"))


def _redact_blocks(text: str) -> str:
    """Mask private key blocks: between BEGIN and END, or the key-material lines after a BEGIN."""
    if "PRIVATE KEY" not in text and "Private-Lines" not in text:
        return text
    out: list[str] = []
    pos = 0
    ends_exist = True  # once an END is missing, no later BEGIN has one: skip the search (linear time)
    while True:
        begin = _BLOCK_BEGIN.search(text, pos)
        if begin is None:
            break
        out.append(text[pos : begin.end()])
        end = _BLOCK_END.search(text, begin.end()) if ends_exist else None
        if end is not None:
            out.append(_mask_keep_newlines(text[begin.end() : end.start()]))
            pos = end.start()
            continue
        ends_exist = False
        line_end = text.find("\n", begin.end())
        line_end = len(text) if line_end < 0 else line_end
        out.append(MASK if text[begin.end() : line_end].strip() else text[begin.end() : line_end])
        pos = line_end
        for _ in range(MAX_BLOCK_LINES):
            if pos >= len(text):
                break
            nxt = text.find("\n", pos + 1)
            nxt = len(text) if nxt < 0 else nxt
            line = text[pos + 1 : nxt]
            if not _KEY_MATERIAL.search(line) or _BLOCK_BEGIN.search(line):
                break
            out.append("\n" + (MASK if line.strip() else line))
            pos = nxt
    out.append(text[pos:])
    text = "".join(out)
    for m in reversed(list(_PUTTY.finditer(text))):  # PuTTY: `Private-Lines: N` then N lines of key
        start = m.end()
        stop = start
        for _ in range(min(int(m.group(1)), MAX_BLOCK_LINES) + 1):
            nxt = text.find("\n", stop + 1)
            stop = len(text) if nxt < 0 else nxt
        text = text[:start] + _mask_keep_newlines(text[start:stop]) + text[stop:]
    return text


# -- 2. Airflow's masker --------------------------------------------------------------------------


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


# -- 4. single-line patterns ----------------------------------------------------------------------

Replacement = str | Callable[[re.Match[str]], str]
Needles = tuple[str, ...] | None


def _mask_groups(m: re.Match[str]) -> str:
    """The match with each non-empty group masked, or the whole match when it has no groups
    (detect-secrets' convention: a plugin's regex group is the secret)."""
    if not m.re.groups:
        return MASK
    whole, start = m.group(0), m.start()
    spans = sorted(m.span(g) for g in range(1, m.re.groups + 1) if m.group(g))
    out, last = [], 0
    for s, e in spans:
        if s - start < last:
            continue
        out += [whole[last : s - start], MASK]
        last = e - start
    return "".join(out) + whole[last:]


_GITLAB = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-", "glptt-")

#: The detect-secrets plugins applied, as (module of `detect_secrets.plugins`, class, needles): only
#: those whose published regexes run in linear time. The needles are here, not taken from the
#: plugins, so that the needle scan is built without importing detect-secrets (which imports
#: `requests`: about 0.045 s of CPU in a task process that never redacts, measured 2026-12-08).
_LIBRARY_PLUGINS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("aws", "AWSKeyDetector", ("a3t", "abia", "acca", "akia", "asia", "aws")),
    ("artifactory", "ArtifactoryDetector", ("akc", "artifactory", "jfrog")),
    ("azure_storage_key", "AzureStorageKeyDetector", ("accountkey=",)),
    ("discord", "DiscordBotTokenDetector", None),
    ("github_token", "GitHubTokenDetector", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    ("gitlab_token", "GitLabTokenDetector", (*_GITLAB, "glagent-", "gloas-")),
    ("mailchimp", "MailchimpDetector", ("-us",)),
    ("pypi_token", "PypiTokenDetector", ("pypi-",)),
    ("sendgrid", "SendGridDetector", ("sg.",)),
    ("square_oauth", "SquareOAuthDetector", ("sq0csp-",)),
    ("stripe", "StripeDetector", ("k_live_",)),
    ("telegram_token", "TelegramBotTokenDetector", ("bot", "telegram", "token")),
    ("twilio", "TwilioKeyDetector", None),
)


def _library_patterns() -> list[tuple[str, re.Pattern[str], Replacement, Needles]]:
    """detect-secrets plugins whose published regexes run in linear time (`_LIBRARY_PLUGINS`), with
    needles (see `_OWN_PATTERNS`; the Artifactory `AP...` and Telegram formats are looked for only
    on lines that name their service or a token, as `ap` and `:` are on every line). The whole
    match is masked, except for AWS, whose keyword regex captures the secret after its context
    (GitLab's groups capture the prefix, not the secret). A token longer than the published length
    keeps no tail: `_MASK_TAIL` masks the rest of a token that a mask ends inside. Imported on the
    first redaction (`_patterns`), not with this module."""
    import importlib

    try:
        plugins = [
            (getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name), needles)
            for module, name, needles in _LIBRARY_PLUGINS
        ]
    except ImportError:  # pragma: no cover - the own patterns below still cover these families
        log.warning("detect-secrets is not installed: its vendor token patterns are not applied")
        return []
    return [
        (
            f"detect-secrets:{plugin.__name__}",
            regex,
            _mask_groups if plugin.__name__ == "AWSKeyDetector" else MASK,
            needles,
        )
        for plugin, needles in plugins
        for regex in plugin.denylist
    ]


def _key_value(m: re.Match[str]) -> str:
    value = m.group("value")
    if value[:1] == "{":  # ODBC: PWD={a value; with spaces}
        return m.group("key") + m.group("sep") + "{" + MASK + "}"
    quote_open = value[:2] if value.startswith('\\"') else value[:1] if value[:1] in "\"'" else ""
    quote_close = quote_open if quote_open and value.endswith(quote_open) and len(value) > 1 else ""
    return m.group("key") + m.group("sep") + quote_open + MASK + quote_close


# Names of settings whose value is a secret (matched case-insensitively, as a part of a longer name:
# SNOWFLAKE_PASSWORD, db.password, AIRFLOW__CORE__FERNET_KEY, client-key-data, fs.s3a.secret.key,
# DD_APP_KEY).
_SENSITIVE_NAMES = (
    r"(?:password|passwd|passphrase|secret|token|api[_.-]?key|apikey|access[_.-]?key|private[_.-]?key|"
    r"fernet[_.-]?key|client[_.-]?key|signing[_.-]?key|encryption[_.-]?key|account[_.-]?key|master[_.-]?key|"
    r"subscription[_.-]?key|app(?:lication)?[_.-]?key|app[_.-]?secret|credentials?|session[_.-]?id|sessid|"
    r"csrf|cookie|(?<![a-z])(?:pass|pwd|pw|auth|sid|sig)(?![a-z]))"
)
_KEY_VALUE_NEEDLES = ("pass", "pwd", "pw", "secret", "token", "key", "credential", "session", "sessid")
_KEY_VALUE_NEEDLES += ("csrf", "cookie", "auth", "sid", "sig")
_QUOTED_VALUE = r"\"[^\"\n]{1,1024}\"|'[^'\n]{1,1024}'"  # "a value" or 'a value' on one line
_SEP = r"(?:\\?[\"'])?[ \t]{0,8}(?:=>|:=|=|:|->)[ \t]{0,8}"
_VALUE = (
    r"(?!\\?[\"']?\*\*\*)"
    r"(?:\\\"(?:[^\"\\\n]|\\[^\"\n]){1,4096}?\\\""  # \"escaped JSON\"
    r"|\"(?:[^\"\\\n]|\\[^\n]){1,4096}\""  # "double quoted"
    r"|'[^'\n]{1,4096}'"  # 'single quoted'
    r"|\{(?:[^}\n]|\}\}){1,1024}\}"  # {ODBC braces; may hold spaces}
    # unquoted, up to whitespace; not a tuple (auth=("u", "p")) nor a YAML block scalar's | or >
    r"|(?!\(\s{0,4}b?[\"'])(?![|>][-+]?(?:\s|$))[^\s'\"<>]{1,4096})"
)
_SENSITIVE_FLAGS = (
    r"password|passwd|pass|pwd|passphrase|passin|passout|token|auth-token|access-token|oauth-token|bearer|"
    r"api-key|apikey|app-key|application-key|secret|client-secret|secret-key|access-key|account-key|"
    r"sas-token|private-key|key-password|storepass|keypass|connection-string"
)
# Commands whose short flag is a password, by the flags that are (elsewhere -p is a port or `mkdir
# -p`, -a is `ls -a`): (needles of the command, the command, its password flags). Sources: the
# commands' manuals (mysql(1) -p, sqlcmd -P, redis-cli -a, ldapsearch(1) -w/-y, vsql -w, zip -P).
_PASSWORD_FLAGS = [
    (
        (
            "mysql",
            "mariadb",
            "sshpass",
            "login",
            "twine",
            "mongo",
            "htpasswd",
            "cqlsh",
            "hdbsql",
            "7z",
            "rar",
        ),
        re.compile(
            r"(?i)\b(?:mysql\w*|mariadb\w*|sshpass|login|twine|mongo\w*|htpasswd|mysqladmin|mysqldump|"
            r"cqlsh|hdbsql|7z|rar)\b"
        ),
        "-p",
    ),
    (
        ("sqlcmd", "bcp", "isql", "zip", "ipmitool", "mosquitto"),
        re.compile(r"(?i)\b(?:sqlcmd|bcp|isql|unzip|zip|ipmitool|mosquitto_\w{1,10})\b"),
        "-[pP]",
    ),
    (("redis-cli",), re.compile(r"(?i)\bredis-cli\b"), "-a|--pass"),
    (("ldap",), re.compile(r"(?i)\bldap[a-z]{2,12}\b"), "-w|-y"),
    (("vsql", "vertica"), re.compile(r"(?i)\b(?:vsql|vertica\w*)\b"), "-w|-p"),
    (("snmp",), re.compile(r"(?i)\bsnmp[a-z]{2,12}\b"), "-A|-X"),
]


def _flag_pattern(flags: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w-])((?:{flags}))([ \t]+|(?=[^\s-]))(?!\*\*\*)"
        r"('[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\"|[^\s'\"]{1,1024})"
    )


_PASSWORD_FLAG_PATTERNS = [(needles, cmd, _flag_pattern(flags)) for needles, cmd, flags in _PASSWORD_FLAGS]


def _quoted(value: str) -> bool:
    """Whether `value` is wrapped in a pair of the same quote."""
    return len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]


def _masked(value: str) -> str:
    """`MASK` inside the quotes of `value`, if it has a pair."""
    return value[0] + MASK + value[0] if _quoted(value) else MASK


def _inner_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of text[start:end] without its pair of quotes, if it has one."""
    return (start + 1, end - 1) if _quoted(text[start:end]) else (start, end)


def _short_p(m: re.Match[str]) -> str:
    return m.group(1) + m.group(2) + _masked(m.group(3))


def _cli_password_flags(line: str) -> str:
    """`-p secret` / `-psecret` / `-a 'secret'` on one line of a command whose flag is a password
    (`_PASSWORD_FLAGS`)."""
    low = line.lower()
    for needles, cmd, pattern in _PASSWORD_FLAG_PATTERNS:
        if any(n in low for n in needles) and cmd.search(line):
            line = pattern.sub(_short_p, line)
    return line


def _quoted_mask(m: re.Match[str]) -> str:
    return m.group("pre") + _masked(m.group("value"))


# Vendor token prefixes detect-secrets 1.5.0 does not know, or knows with a fixed length (the rest
# of a longer token would survive): each prefix, then at least 16 token characters. Sources: the
# vendors' published token formats (Hugging Face `hf_`, DigitalOcean `dop_v1_`, Shopify `shpat_`,
# Linear `lin_api_`, Grafana `glsa_`/`glc_`, Sentry `sntrys_`, Docker `dckr_pat_`, Figma `figd_`,
# PlanetScale `pscale_tkn_`, Postman `PMAK-`, New Relic `NRAK-`, Google OAuth `ya29.`/`GOCSPX-`,
# age `AGE-SECRET-KEY-1`, Brevo `xkeysib-`, Atlassian `ATATT3`, Notion `ntn_`, RubyGems
# `rubygems_`, Groq `gsk_`, Replicate `r8_`, xAI `xai-`, Pinecone `pcsk_`, Tailscale `tskey-`,
# Dynatrace `dt0c01.`, Slack refresh tokens `xoxe.xoxp-`/`xoxe-`, Mailgun `key-`, Alibaba `LTAI`).
_VENDOR_PREFIXES = [
    "hf_",
    "dop_v1_",
    "doo_v1_",
    "dor_v1_",
    "shpat_",
    "shpca_",
    "shppa_",
    "shpss_",
    "lin_api_",
    "lin_oauth_",
    "glsa_",
    "glc_",
    "sntrys_",
    "sntryu_",
    "dckr_pat_",
    "figd_",
    "pscale_tkn_",
    "pscale_pw_",
    "pmak-",
    "nrak-",
    "ya29.",
    "gocspx-",
    "age-secret-key-1",
    "xkeysib-",
    "atatt3",
    "ntn_",
    "rubygems_",
    "gsk_",
    "r8_",
    "xai-",
    "pcsk_",
    "tskey-",
    "dt0c01.",
    "xoxe.xox",
    "xoxe-",
    "key-",
    "ltai",
    "glpat-",
    "npm_",
    "sk_live_",
    "rk_live_",
    "sk_test_",
    "rk_test_",
    "sq0atp-",
    "sq0csp-",
    "shpat_",
    "github_pat_",
    "ghs_",
    "ghu_",
    "gho_",
    "ghr_",
    "ghp_",
]
_VENDOR_TOKEN = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])(?:"
    + "|".join(re.escape(p) for p in dict.fromkeys(_VENDOR_PREFIXES))
    + r")[A-Za-z0-9_.=+/-]{16,1024}"
)
# The rest of a token that a mask ends inside (a published regex of fixed length, e.g. Stripe's
# 24 characters, on a longer key): masked too.
_MASK_TAIL = re.compile(r"\*\*\*[A-Za-z0-9_-]{1,4096}")

_HEADER_NAMES = (
    r"(?:proxy-)?authorization|x-api-key|api-key|apikey|x-auth-token|x-access-token|private-token|"
    r"x-vault-token|x-goog-api-key|cookie|set-cookie|dd-api-key|dd-application-key|"
    r"[a-z0-9-]{0,40}(?:token|secret|password|signature|api-key|apikey|app-key|application-key)[a-z0-9-]{0,20}"
)

# (name, pattern, replacement, needles). Needles are lower-case substrings without which the pattern
# cannot match: only the lines holding one are searched, and each pattern only on the lines that hold
# one of its own needles (found with str.find, far faster than a regex scan of every line). None:
# the pattern starts with a literal the regex engine finds fast, or spans two lines, and runs on the
# whole text.
_OWN_PATTERNS: list[tuple[str, re.Pattern[str], Replacement, Needles]] = [
    (
        "auth_header",
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|x-api-key|x-auth-token|private-token|x-vault-token|"
            r"x-goog-api-key|api-key)([\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?)"
            r"(?:(bearer|basic|token|digest|negotiate|ntlm|aws4-hmac-sha256|sso-key|apikey)[ \t]+)?"
            r"(?!\*\*\*)[^\n'\"}]{1,4096}"
        ),
        lambda m: f"{m.group(1)}{m.group(2)}{(m.group(3) + ' ') if m.group(3) else ''}{MASK}",
        ("authorization", "x-api-key", "x-auth-token", "private-token", "x-vault-token", "api-key"),
    ),
    (
        # Raw header tuples: (b'authorization', b'Bearer x'), ('X-Api-Key', 'x') (httpx, h11, aiohttp).
        "header_tuple",
        re.compile(
            rf"(?i)(b?[\"'](?:{_HEADER_NAMES})[\"'][ \t]{{0,4}},[ \t]{{0,4}}b?[\"']"
            r"(?:(?:bearer|basic|token|digest)[ \t]+)?)(?!\*\*\*)[^\"'\n]{1,4096}(?=[\"'])"
        ),
        r"\1***",
        (
            "authorization",
            "api-key",
            "apikey",
            "app-key",
            "application-key",
            "token",
            "cookie",
            "secret",
            "password",
        )
        + ("signature",),
    ),
    (
        "bearer",
        re.compile(r"(?i)\b(bearer)[ \t]+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,4096}"),
        r"\1 ***",
        ("bearer",),
    ),
    (
        "smtp_auth",
        re.compile(
            r"(?i)\b(AUTH[ \t]+(?:PLAIN|LOGIN|XOAUTH2|OAUTHBEARER|CRAM-MD5)[ \t]+)[A-Za-z0-9+/=]{4,8192}"
        ),
        r"\1***",
        ("auth plain", "auth login", "auth xoauth2", "auth oauthbearer", "auth cram-md5"),
    ),
    (
        # AUTH LOGIN: after the server asks "Username:" / "Password:" (base64), the next line sent.
        "smtp_login",
        re.compile(
            r"((?:VXNlcm5hbWU6|UGFzc3dvcmQ6)[^\n]{0,300}\n[^\n]{0,300}?send:[ \t]*b?['\"])"
            r"[A-Za-z0-9+/=]{2,4096}"
        ),
        r"\1***",
        None,
    ),
    (
        "jwt",
        re.compile(
            r"(?<![A-Za-z0-9_=-])eyJ[A-Za-z0-9_=-]{5,8192}\.[A-Za-z0-9_=-]{5,8192}(?:\.[A-Za-z0-9_.+/=-]{0,8192})?"
        ),
        MASK,
        ("eyj",),
    ),
    ("slack_token", re.compile(r"(?<![A-Za-z0-9-])xox[abposre]-[A-Za-z0-9-]{10,512}"), MASK, ("xox",)),
    ("slack_app_token", re.compile(r"(?<![A-Za-z0-9-])xapp-[A-Za-z0-9-]{10,512}"), MASK, ("xapp-",)),
    (
        "slack_webhook",
        re.compile(
            r"(hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers|commands)/)[A-Za-z0-9/_-]{1,512}"
        ),
        r"\1***",
        ("hooks.slack",),
    ),
    (
        "telegram_bot_url",
        re.compile(r"(api\.telegram\.org/(?:file/)?bot)[0-9]{3,15}:[A-Za-z0-9_-]{10,128}"),
        r"\1***",
        ("api.telegram.org",),
    ),
    ("anthropic_key", re.compile(r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{8,512}"), MASK, ("sk-ant-",)),
    (
        "openai_key",
        re.compile(r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,512}"),
        MASK,
        ("sk-",),
    ),
    (
        "stripe_key",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9_]{16,255}|whsec_[A-Za-z0-9]{16,255}"
        ),
        MASK,
        ("_live_", "_test_", "whsec_"),
    ),
    (
        "sendgrid_key",
        re.compile(r"(?<![A-Za-z0-9_.-])SG\.[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{16,64}"),
        MASK,
        ("sg.",),
    ),
    ("databricks_token", re.compile(r"(?<![A-Za-z0-9_-])dapi[a-f0-9]{32}(?:-\d{1,2})?"), MASK, ("dapi",)),
    (
        "github_token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9_]{30,255}|github_pat_[A-Za-z0-9_]{30,255})"),
        MASK,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("vendor_token", _VENDOR_TOKEN, MASK, tuple(dict.fromkeys(_VENDOR_PREFIXES))),
    ("gcp_api_key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"), MASK, ("aiza",)),
    ("npm_token", re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}"), MASK, ("npm_",)),
    ("pypi_token", re.compile(r"(?<![A-Za-z0-9_-])pypi-[A-Za-z0-9_-]{50,512}"), MASK, ("pypi-",)),
    (
        "hashicorp_token",
        re.compile(r"(?<![A-Za-z0-9_-])hv[sbr]\.[A-Za-z0-9_-]{20,512}"),
        MASK,
        ("hvs.", "hvb.", "hvr."),
    ),
    # kubeconfig / base64 of a PEM private key ("-----BEGIN ..." encodes as LS0tLS1CRUdJT...).
    ("base64_pem", re.compile(r"LS0tLS1CRUdJT[A-Za-z0-9+/=]{0,65536}"), MASK, None),
    (
        # Presigned URLs: S3 (X-Amz-Signature, X-Amz-Security-Token), GCS (X-Goog-Signature), CloudFront
        # (Signature=), Azure SAS (sig=), and the key/secret of SigV2 (AWSAccessKeyId is kept).
        "url_signature",
        re.compile(
            r"(?i)((?:[?&;]|\\u0026)(?:x-amz-signature|x-amz-security-token|x-goog-signature|x-goog-credential|"
            r"signature|sig|token|access_token|x-amz-credential)=)(?!\*\*\*)[^&\s'\"#<>]{1,8192}"
        ),
        r"\1***",
        ("signature", "sig=", "token=", "x-amz-", "x-goog-"),
    ),
    (
        "azure_conn",
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig|SecretAccessKey)=(?!\*\*\*)[^;&\s'\"]{1,4096}"
        ),
        r"\1=***",
        ("accountkey", "sharedaccess", "sig=", "secretaccesskey"),
    ),
    (
        "cookie_header",
        re.compile(r"(?i)\b((?:set-)?cookie2?[ \t]{0,8}:[ \t]{0,8})(?!\*\*\*)[^\n]{1,8192}"),
        r"\1***",
        ("cookie",),
    ),
    ("cookie_jar", re.compile(r"(<Cookie [A-Za-z0-9_.-]{1,128}=)[^\s>]{1,4096}"), r"\1***", ("<cookie ",)),
    # scheme://user:pw@host: the password may hold @ / , ; & } (the last @ of the token ends it).
    (
        "uri_password",
        re.compile(r"(://[^\s/?#@:'\"]{0,256}:)(?!\*\*\*@)[^\s'\"]{1,512}(?=@)"),
        r"\1***",
        ("://",),
    ),
    # user/pw@host: Oracle (sqlplus, sqlldr, expdp, JDBC thin, userid=) and `CONNECT user/pw@db`.
    (
        "oracle_credentials",
        re.compile(
            r"(?i)(\b(?:sqlplus|sqlldr|expdp|impdp|exp|imp|rman|dgmgrl|connect|conn|userid[ \t]*=|"
            r"jdbc:oracle:[a-z0-9]{1,10}:|oracle[a-z0-9+_]{0,30}:)"
            r"(?:[ \t]{1,8}-[A-Za-z]{1,10}){0,3}[ \t]{0,8}['\"]?[A-Za-z0-9_$#.\[\]]{1,128}/)"
            r"(?!\*\*\*)(\"[^\"\n]{1,256}\"|[^\s\"'/]{1,256})(?=@)"
        ),
        r"\1***",
        ("sqlplus", "sqlldr", "expdp", "impdp", "exp ", "imp ", "rman", "dgmgrl", "conn", "userid", "oracle"),
    ),
    # curl -u user:pw, --user user:pw, --proxy-user; smbclient -U user%pw; lftp -u user,pw
    (
        "cli_user_password",
        re.compile(
            r"(?<![\w-])((?:-u|-U|--user|--proxy-user|--basic-auth)(?:[ \t]{1,8}|=)['\"]?[^\s:%,'\"]{1,256}"
            r"(?::|%|,(?=[^\s]{1,1024}[ \t]{1,8}\w)))"
            r"(?!\*\*\*)[^\s'\"]{1,1024}"
        ),
        r"\1***",
        ("-u", "--user", "--basic-auth", "--proxy-user"),
    ),
    (
        # aws configure set aws_secret_access_key V, gcloud config set ..., databricks configure ...
        "configure_set",
        re.compile(
            r"(?i)(\bconfig(?:ure)?[ \t]+set[ \t]+(?:--[a-z-]{1,30}[ \t]+)?[A-Za-z0-9_.-]{0,60}?"
            r"(?:secret|key|token|password|passwd|credential)[A-Za-z0-9_.-]{0,60}[ \t]+)"
            r"(?!\*\*\*)(?!-)([^\s'\"]{1,1024}|'[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\")"
        ),
        r"\1***",
        ("configure", "config "),
    ),
    (
        "cli_flag",
        re.compile(
            rf"(?i)(?P<pre>(?<![\w-])--?(?:[a-z0-9]{{1,20}}-){{0,2}}(?:{_SENSITIVE_FLAGS})(?![\w-])"
            r"(?:[ \t]{1,8}|=))"
            r"(?P<value>(?!-)(?!\*\*\*)(?:'[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\"|[^\s'\"]{1,1024}))"
        ),
        _quoted_mask,
        ("-pass", "-pwd", "token", "bearer", "key", "secret", "connection-string", "storepass", "keypass"),
    ),
    (
        "vault_login",
        re.compile(
            r"(?i)(\bvault[ \t]+login[ \t]+(?:-[a-z-]{1,30}(?:=[^\s]{1,100})?[ \t]+){0,4})"
            r"(?![a-z_]{1,30}=)(?!-)(?!\*\*\*)[^\s'\"]{4,1024}"
        ),
        r"\1***",
        ("vault",),
    ),
    (
        # .netrc on one line: machine h login u password p (also `account` and `default`).
        "netrc",
        re.compile(
            r"(?i)(\b(?:login|account|machine|default)\b[^\n]{0,512}?[ \t](?:password|passwd)[ \t]+)"
            r"(?!\*\*\*)[^\s]{1,1024}"
        ),
        r"\1***",
        ("machine", "login", "default"),
    ),
    (
        # requests/httpx/aiohttp auth tuples in a source line: auth=("user", "pw"), HTTPBasicAuth("u", "p").
        "auth_tuple",
        re.compile(
            r"(?i)((?:\b(?:[a-z_]{0,20}auth|credentials?)[ \t]{0,4}=[ \t]{0,4}[(\[]|"
            r"\b(?:HTTP(?:Basic|Digest|Proxy)Auth|BasicAuth|DigestAuth)[ \t]{0,4}\()"
            r"[ \t]{0,4}(?:(?:login|username|user)[ \t]{0,4}=[ \t]{0,4})?"
            r"(?:b?\"[^\"\n]{0,256}\"|b?'[^'\n]{0,256}'|[A-Za-z_][\w.\[\]'\"]{0,64})[ \t]{0,4},[ \t]{0,4}"
            r"(?:password[ \t]{0,4}=[ \t]{0,4})?b?([\"']))(?!\*\*\*)[^\"'\n]{1,1024}(?=[\"'])"
        ),
        r"\1***",
        ("auth", "credential"),
    ),
    (
        # A password piped to a command that reads it: echo 'pw' | docker login --password-stdin,
        # echo 'user:pw' | chpasswd, echo pw | passwd --stdin user, echo pw | kinit.
        "stdin_password",
        re.compile(
            r"(?i)(\b(?:echo|printf)[ \t]{1,8}(?:-[ne][ \t]{1,8})?)(['\"]?)(?!\*\*\*)([^\s'\"|]{1,256})\2"
            r"(?=[ \t]{0,8}\|[^\n]{0,200}?"
            r"(?:password-stdin|pass-stdin|chpasswd|passwd[ \t]{1,8}--stdin|kinit))"
        ),
        r"\1\2***\2",
        ("password-stdin", "pass-stdin", "chpasswd", "--stdin", "kinit"),
    ),
    (
        # Positional passwords: htpasswd -b[c] FILE USER PW, rabbitmqctl add_user|change_password USER PW.
        "positional_password",
        re.compile(
            r"(?i)(\bhtpasswd[ \t]{1,8}-[a-z]{0,4}b[a-z]{0,4}[ \t]{1,8}(?:-[a-z]{1,5}[ \t]{1,8}){0,3}"
            r"[^\s-][^\s]{0,255}[ \t]{1,8}[^\s]{1,128}[ \t]{1,8}"
            r"|\brabbitmqctl[ \t]{1,8}(?:[^\n]{0,64}[ \t])?(?:add_user|change_password)[ \t]{1,8}"
            r"[^\s]{1,128}[ \t]{1,8})"
            r"(?!\*\*\*)(['\"]?)[^\s'\"]{1,256}\2"
        ),
        r"\1\2***\2",
        ("htpasswd", "rabbitmqctl"),
    ),
    (
        # DuckDB / query engines: CREATE SECRET (TYPE s3, KEY_ID '...', SECRET '...'), one per line too.
        "sql_secret_param",
        re.compile(
            r"(?im)((?:^|[(,])[ \t]{0,8}(?:secret|secret_access_key|session_token|password|token|"
            r"account_key|client_secret|connection_string|refresh_token|bearer_token)[ \t]{1,8})"
            r"(?!\*\*\*)'(?:[^'\n]|''){1,1024}'"
        ),
        r"\1'***'",
        ("secret", "token", "password", "account_key", "connection_string"),
    ),
    (
        # ClickHouse table functions: s3('url', 'key_id', 'secret'[, ...]).
        "s3_function",
        re.compile(
            r"(?i)(\bs3(?:cluster)?[ \t]{0,4}\([ \t]{0,4}'[^'\n]{1,2048}'[ \t]{0,4},[ \t]{0,4}"
            r"'[^'\n]{1,256}'[ \t]{0,4},[ \t]{0,4}')[^'\n]{1,1024}(?=')"
        ),
        r"\1***",
        ("s3(", "s3cluster("),
    ),
    (
        "sql_password",
        re.compile(
            r"(?i)(?P<pre>\b(?:identified[ \t]+by|password|using)[ \t]+)"
            r"(?P<value>'[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\")"
        ),
        _quoted_mask,
        ("identified", "password"),
    ),
    (
        # db2 connect to DB user U using PW
        "db2_using",
        re.compile(r"(?i)(\buser[ \t]+[^\s]{1,128}[ \t]+using[ \t]+)(?!\*\*\*)[^\s'\"]{1,1024}"),
        r"\1***",
        ("using",),
    ),
    (
        "xml_secret",
        re.compile(
            rf"(?i)(<(?:[a-z0-9_:-]{{0,40}}){_SENSITIVE_NAMES}[a-z0-9_:-]{{0,40}}>)(?!\*\*\*)[^<\n]{{1,4096}}(?=</)"
        ),
        r"\1***",
        _KEY_VALUE_NEEDLES,
    ),
    (
        # A Kubernetes env var or a name/value pair on one line: {"name": "DB_PASSWORD", "value": "x"},
        # V1EnvVar(name='API_TOKEN', value='x').
        "name_value",
        re.compile(
            rf"(?i)(\bname[\"']?[ \t]{{0,4}}[:=][ \t]{{0,4}}[\"']?[A-Za-z0-9_.-]{{0,60}}?{_SENSITIVE_NAMES}"
            r"[A-Za-z0-9_.-]{0,60}[\"']?[ \t]{0,4}[,;]?[ \t]{0,4}[\"']?value[\"']?[ \t]{0,4}[:=][ \t]{0,4})"
            r"(?!\*\*\*)(?!None\b|null\b)(" + _QUOTED_VALUE + r"|[^\s,'\"})]{1,1024})"
        ),
        lambda m: m.group(1) + _masked(m.group(2)),
        ("name",),
    ),
    (
        "key_value",
        re.compile(rf"(?i)(?P<key>{_SENSITIVE_NAMES}[a-z0-9_.-]{{0,40}}?)(?P<sep>{_SEP})(?P<value>{_VALUE})"),
        _key_value,
        _KEY_VALUE_NEEDLES,
    ),
]


@functools.cache
def _patterns() -> list[tuple[str, re.Pattern[str], Replacement, Needles]]:
    """Every line and whole-text pattern: the own first (their bounds are wider), then
    detect-secrets' (imported on this first call)."""
    return _OWN_PATTERNS + _library_patterns()


# Needles that must stand alone at one side at least (a letter neither before nor after would be
# required by every pattern they serve): short ones, found inside random text and words everywhere.
_WORD_NEEDLES = {"pw": "letter", "sid": "letter", "sig": "letter", "-p": "dash", "-u": "dash"}
_FLAG_NEEDLES = tuple(n for needles, _, _ in _PASSWORD_FLAGS for n in needles)
_NEEDLES = sorted(
    {n for *_, needles in _OWN_PATTERNS for n in needles or ()}
    | {n for *_, needles in _LIBRARY_PLUGINS for n in needles or ()}
    | set(_FLAG_NEEDLES)
)


# The one character whose str.lower() is two code points (U+0130, LATIN CAPITAL LETTER I WITH DOT
# ABOVE -> "i" + COMBINING DOT ABOVE; checked over every code point of Python 3.11's Unicode data).
_LOWER_GROWS = "\u0130"


def fold(text: str) -> str:
    """`text` lower-cased with its length kept, so an offset found in the copy is an offset in
    `text` (str.lower() turns U+0130 into two code points, which shifted every later offset: a
    secret below such a line kept its value). Used only to find needles; the patterns themselves
    match case-insensitively on `text`.

    Returns:
        a str of len(text).
    """
    low = (text.replace(_LOWER_GROWS, "i") if _LOWER_GROWS in text else text).lower()
    if len(low) != len(text):  # a future Unicode table: fall back to a per-character fold
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low


def _stands_alone(low: str, i: int, needle: str) -> bool:
    """Whether the needle found at `low[i]` has the boundary its patterns need (`_WORD_NEEDLES`)."""
    before = low[i - 1] if i else " "
    if _WORD_NEEDLES[needle] == "dash":  # a flag: -p, -u (not inside a word or a longer flag)
        return not (before.isalnum() or before in "_-")
    after = low[i + len(needle)] if i + len(needle) < len(low) else " "
    return not ("a" <= before <= "z" or "a" <= after <= "z")


def _trie(words: Iterable[str]) -> str:
    """A regex alternation of `words` shaped as a trie (one branch per next character): the regex
    engine scans it about 4 times faster than a flat alternation, and one pass replaces a str.find
    per word (184 finds took 1.4 s over 10 MB of random bytes; the trie 0.4 s)."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(ch) + build(node[ch]) for ch in sorted(k for k in node if k)]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


@functools.cache
def _scanners() -> tuple[re.Pattern[str], dict[str, tuple[tuple[str, int], ...]], dict[str, int]]:
    """(a scan for the needles, needle -> each needle it holds with its offset, itself included,
    needle -> the offset to scan on from),
    over every needle of the line patterns, the cross-line rules and the credential words. The scan
    takes the longest needle at a position, so the shorter ones starting there come from the map."""
    needles = sorted(set(_NEEDLES) | set(_ACROSS_NEEDLES) | set(_CREDENTIAL_WORDS))
    inside = {n: tuple((m, n.find(m)) for m in needles if m in n) for n in needles}
    # Where to look on after a needle: at its first suffix that another needle starts with (a needle
    # overlapping its end), else after it (a needle wholly inside it is in `inside`).
    after = {
        n: next((k for k in range(1, len(n)) if any(m.startswith(n[k:]) for m in needles)), len(n))
        for n in needles
    }
    return re.compile(_trie(needles)), inside, after


def _candidates(low: str) -> dict[int, set[str]]:
    """Line start -> the needles the line holds (each only where it has the boundary it needs), for
    every line holding one. `low` is `fold(text)`: the same length, so its offsets are offsets in
    the text. One pass of the trie over the text, a Python step per position where a needle starts."""
    scan, inside, after = _scanners()
    out: dict[int, set[str]] = {}
    start, end = 0, -1
    found: set[str] = set()
    m = scan.search(low)
    while m is not None:
        i = m.start()
        if i > end:  # a new line
            if found:
                out[start] = found
            lo = end + 1  # the previous line's end (-1 before the first line)
            nl = low.rfind("\n", lo, i)
            start = nl + 1 if nl >= 0 else lo
            end = low.find("\n", i)
            end = len(low) if end < 0 else end
            found = set()
        for needle, offset in inside[m.group()]:
            if needle not in _WORD_NEEDLES or _stands_alone(low, i + offset, needle):
                found.add(needle)
        m = scan.search(low, i + after[m.group()])
    if found:
        out[start] = found
    return out


def _sub_lines(lines: list[str], pattern: re.Pattern[str], replacement: Replacement) -> list[str]:
    """`pattern` applied to each line, by one regex call over the lines joined (none of the patterns
    crosses a newline); the lines, changed or not."""
    joined = "\n".join(lines)
    new = pattern.sub(replacement, joined)
    if new == joined:
        return lines
    out = new.split("\n")
    if len(out) != len(lines):  # a replacement changed the line count: never expected, stay safe
        out = [pattern.sub(replacement, ln).replace("\n", " ") for ln in lines]
    return out


def _apply_whole(text: str) -> str:
    """The patterns without needles (a fast literal start or a match over two lines), on the text."""
    for name, pattern, replacement, needles in _patterns():
        if needles is None and all(g in text for g in _WHOLE_GUARDS.get(name, ("",))):
            text = pattern.sub(replacement, text)
    return text


# Literals a whole-text pattern cannot match without (checked with `in`, faster than its regex).
_WHOLE_GUARDS = {"smtp_login": ("send:",), "base64_pem": ("LS0tLS1CRUdJT",)}


def _redact_text(text: str) -> str:
    """Layers 4 to 6 but the long tokens: the whole-text patterns, then the values on another line
    than their key (`_across_edits`), then each line pattern on the lines that hold one of its own
    needles, the password flags of commands and credential-near entropy; last, the rest of any
    token a mask ends inside."""
    text = _redact_pgpass(_apply_whole(text))
    candidates = _candidates(fold(text))
    wrapped = _WRAPPED_KEY.search(text) is not None
    if not candidates and not wrapped:
        return _MASK_TAIL.sub(MASK, text) if MASK in text else text
    lines = text.split("\n")
    starts = [0, *itertools.accumulate(len(ln) + 1 for ln in lines)][:-1]
    needles_at = {bisect.bisect_right(starts, s) - 1: found for s, found in candidates.items()}
    across = sorted(i for i, found in needles_at.items() if not found.isdisjoint(_ACROSS_NEEDLES))
    _apply_line_edits(lines, _across_edits(lines, across[-MAX_ACROSS_LINES:]))
    if wrapped:
        _apply_line_edits(lines, _wrapped_key_edits(text, lines, starts))
    by_needle: dict[str, list[int]] = {}
    for i, found in needles_at.items():
        for needle in found:
            by_needle.setdefault(needle, []).append(i)
    for _name, pattern, replacement, needles in _patterns():
        if needles is None:
            continue
        rows = sorted({i for n in needles for i in by_needle.get(n, ())})
        if rows:
            for i, line in zip(rows, _sub_lines([lines[i] for i in rows], pattern, replacement), strict=True):
                lines[i] = line
    for i in sorted({i for n in _FLAG_NEEDLES for i in by_needle.get(n, ())}):
        lines[i] = _cli_password_flags(lines[i])
    for i in sorted({i for n in _CREDENTIAL_WORDS for i in by_needle.get(n, ())}):
        lines[i] = _near_credential_entropy(lines[i])
    text = "\n".join(lines)
    return _MASK_TAIL.sub(MASK, text) if MASK in text else text


MAX_ACROSS_LINES = 50_000  # candidate lines the cross-line rules look at, the last ones (a bound of work)


def _across_edits(lines: list[str], rows: list[int]) -> list[tuple[int, int, int]]:
    """The edits of the cross-line rules for the candidate `rows`, in order. A line that a table or a
    block scalar above it already covered is not read as a table's header or a block's key again,
    so each line is read as a row once (a log of a million table headers stays linear)."""
    edits: list[tuple[int, int, int]] = []
    covered = -1
    for i in rows:
        found = _line_edits(lines, i, multi=i > covered)
        if found:
            covered = max(covered, max(j for j, _, _ in found))
        edits += found
    return edits


def _apply_line_edits(lines: list[str], edits: list[tuple[int, int, int]]) -> None:
    """Mask each (line, start, end) span of `lines`, in place."""
    by_line: dict[int, list[tuple[int, int]]] = {}
    for j, s, e in edits:
        if e > s:
            by_line.setdefault(j, []).append((s, e))
    for j, spans in by_line.items():
        lines[j] = _apply_edits(lines[j], spans)


# A .pgpass line, host:port:database:user:password (port digits or *): found from its first `:`
# (a literal the regex engine finds fast; a scan from each line start cost 0.2 s per 10 MB).
_PGPASS_TAIL = re.compile(
    r":(?:\d{1,5}|\*):[A-Za-z0-9_.*$-]{1,255}:[^\s:]{1,255}:(?!\*\*\*)([^\s:]{1,512})(?=\s|$)"
)
_PGPASS_HOST = re.compile(r"[A-Za-z0-9_.*-]{1,255}$")


def _redact_pgpass(text: str) -> str:
    """Mask the password field of every `.pgpass` line (its host field stands alone on the left)."""
    edits = []
    for m in _PGPASS_TAIL.finditer(text):
        host = _PGPASS_HOST.search(text, max(0, m.start() - 255), m.start())
        if host and (host.start() == 0 or text[host.start() - 1] in " \t\n'\""):
            edits.append(m.span(1))
    return _apply_edits(text, edits)


# -- 5. entropy: random-looking tokens near a credential word, and alone when long -----------------

# detect-secrets 1.5.0's charsets and default limits (Base64HighEntropyString: 4.5 bits over
# letters, digits and +/-_=; HexHighEntropyString: 3.0 bits over hex digits, lowered for all-digit
# strings). Shannon entropy of n characters cannot exceed log2(n), so a short token near a credential
# word is held to log2(n) - 0.6 (16 characters: 3.4 bits; 40 and more: the published 4.5).
_B64_CHARSET = string.ascii_letters + string.digits + "+/-_="
_HEX_CHARSET = string.hexdigits
B64_LIMIT = 4.5
HEX_LIMIT = 3.0


def shannon_entropy(data: str, charset: str = _B64_CHARSET) -> float:
    """Shannon entropy of `data` in bits per character, counting only the characters of `charset`
    (detect-secrets' `HighEntropyStringsPlugin.calculate_shannon_entropy`, from
    http://blog.dkbza.org/2007/05/scanning-data-for-entropy-anomalies.html).

    Returns:
        0.0 for an empty string; at most log2(len(data)).
    """
    if not data:
        return 0.0
    counts = Counter(data)
    n = len(data)
    return -sum(c / n * math.log2(c / n) for ch, c in counts.items() if ch in charset)


def _hex_entropy(data: str) -> float:
    """detect-secrets' HexHighEntropyString entropy: an all-digit string loses 1.2 / log2(n) bits."""
    entropy = shannon_entropy(data, _HEX_CHARSET)
    if data.isdigit() and len(data) > 1:
        entropy -= 1.2 / math.log2(len(data))
    return entropy


# A CamelCase or snake_case identifier (PartitionedLoaderV2, load_2024_v3): not random, however
# many letter kinds it mixes. Possessive, so a long token is matched in linear time.
_IDENTIFIER = re.compile(r"(?:[A-Z]?+[a-z]{2,}+|[A-Z]++(?![a-z])|[0-9]++|[_-])++")

Context = Literal["near", "quoted", "alone"]


def looks_random(token: str, context: Context) -> bool:
    """Whether `token` (characters of the base64 charset) is random enough to be a secret.

    Args:
        token: the candidate; under 16 characters it never is.
        context: "near" a credential word (within 64 characters after it on its line): a hex
            token (dashes allowed: a UUID-shaped key) with a digit and a letter above
            detect-secrets' hex limit (3.0 bits), or a token with a digit or mixed case above
            min(4.5, log2(n) - 0.6) bits. "quoted" (a string literal, as detect-secrets scans them):
            upper case, lower case and a digit, not an identifier nor a path, above
            min(4.5, log2(n) - 0.6) bits. "alone": the same, 32 characters or more, above
            detect-secrets' base64 limit (4.5 bits). Hex hashes, UUIDs and trace ids have no upper
            case (and at most 4 bits): they stay unless a credential word is near.
    Returns:
        True when the token is to be masked; False for anything shorter than 16 or longer than
        4096 characters.
    """
    n = len(token)
    if n < 16 or n > 4096:
        return False
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    short_limit = min(B64_LIMIT, math.log2(n) - 0.6)
    if context == "near":
        bare = token.replace("-", "")  # a UUID-shaped key (Heroku's) is hex between dashes
        if all(c in _HEX_CHARSET for c in bare) and (has_digit and (has_upper or has_lower)):
            return _hex_entropy(bare) > HEX_LIMIT
        if not (has_digit or (has_upper and has_lower)):
            return False
        return shannon_entropy(token) > short_limit
    if not (has_digit and has_upper and has_lower) or token.startswith("/") or token.count("/") > 2:
        return False
    if (context == "alone" and n < 32) or _IDENTIFIER.fullmatch(token):
        return False
    return shannon_entropy(token) > (B64_LIMIT if context == "alone" else short_limit)


_CREDENTIAL_WORDS = ("password", "passwd", "secret", "token", "credential", "key", "auth", "bearer")
_CREDENTIAL_WORD = re.compile(
    r"(?i)(?<![a-z])(?:passwords?|passwd|secrets?|tokens?|credentials?|(?:api|app|access|secret|private)?"
    r"[ _-]?keys?|auth|bearer|signature)(?![a-z])"
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_.-])[A-Za-z0-9+/=_-]{16,512}+(?![A-Za-z0-9+/=_.-])")
_SIXTEEN = re.compile(r"[A-Za-z0-9+/=_-]{16}")  # a line without such a run has no token to check
MAX_CREDENTIAL_WORDS = 256  # per line, looked after by the entropy check (a bound of its work)
NEAR_CHARS = 64  # how far after a credential word a token may start


def _near_credential_entropy(line: str) -> str:
    """Mask random-looking tokens that start within `NEAR_CHARS` after a credential word."""
    if not _SIXTEEN.search(line):
        return line
    edits: list[tuple[int, int]] = []
    for n, word in enumerate(_CREDENTIAL_WORD.finditer(line)):
        if n >= MAX_CREDENTIAL_WORDS:
            break
        for tok in _TOKEN.finditer(line, word.end(), min(len(line), word.end() + NEAR_CHARS + 512)):
            if tok.start() > word.end() + NEAR_CHARS:
                break
            if tok.group() != MASK and looks_random(tok.group().strip("="), "near"):
                edits.append(tok.span())
    return _apply_edits(line, edits)


def _apply_edits(text: str, edits: list[tuple[int, int]], mask: str = MASK) -> str:
    """`text` with each (start, end) span replaced by `mask` (overlapping spans merged)."""
    if not edits:
        return text
    out, pos = [], 0
    for start, end in sorted(edits):
        if end <= pos:
            continue
        out += [text[pos : max(start, pos)], mask]
        pos = end
    return "".join(out) + text[pos:]


_FERNET = re.compile(r"[A-Za-z0-9_-]{43}=")
_USER_PASSWORD = re.compile(r"[^\s:]{1,128}:[^\s]{1,256}")


def _decoded_base64(token: str) -> str | None:
    """`token` decoded from base64 (standard or URL-safe, padding restored) when that gives
    printable UTF-8 text, else None."""
    body = token.rstrip("=")
    if len(body) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if "-" in body or "_" in body else None
        )
        decoded = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    printable = sum(c.isprintable() or c in "\n\t\r" for c in decoded)
    return decoded if decoded and printable >= 0.95 * len(decoded) else None


def _decoded_hex(token: str) -> str | None:
    """`token` decoded from hex (`70617373...`) when it is hex of printable UTF-8 text, else None."""
    if len(token) % 2 or any(c not in _HEX_CHARSET for c in token):
        return None
    try:
        decoded = bytes.fromhex(token).decode("utf-8")
    except ValueError:
        return None
    return decoded if decoded.isprintable() else None


def _secret_token(token: str, context: Context = "alone") -> bool:
    """Whether a long token of the base64 charset, met anywhere, is a secret: a Fernet key; base64 of
    `user:password`, of text holding a secret (JSON with a password or private key) or of one
    password-like word; or, when it does not decode to text, a random-looking token (`looks_random`
    in `context`: "quoted" or "alone")."""
    if _FERNET.fullmatch(token):
        return True
    decoded = _decoded_hex(token) or (_decoded_base64(token) if len(token) % 4 != 1 else None)
    if decoded is None:
        return looks_random(token, context)
    # Base64 of readable text is judged by that text (a persuasion or a payload stays readable to the
    # diagnosis): a secret in it, `user:password`, or one password-like word (3 kinds of character).
    if _USER_PASSWORD.fullmatch(decoded.strip("\x00")) and not decoded.startswith("http"):
        return True
    if _redact_text(_redact_blocks(decoded)) != decoded:
        return True
    kinds = (str.isupper, str.islower, str.isdigit, lambda c: not c.isalnum())
    word = decoded.strip()
    return (
        8 <= len(word) <= 256
        and not any(c.isspace() for c in word)
        and sum(any(kind(c) for c in word) for kind in kinds) >= 3
    )


# Each base64-charset byte as `a`, every other byte as a space: runs of 16 `a` are then found with
# bytes.find (a fast substring search) instead of a regex tried at every position (0.03 s instead of
# 0.5 s over a 10 MB log of words). Latin-1 with `?` for the rest keeps one byte per character.
_TOKEN_CHARS = string.ascii_letters + string.digits + "+/_-"
_TOKEN_BYTES = bytes(0x61 if chr(b) in _TOKEN_CHARS else 0x20 for b in range(256))
_TOKEN_RUN = b"a" * 12
MAX_TOKEN_CHARS = 4096  # a longer run (a whole base64 file) is not looked at as one secret


def _long_token_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of 12 to `MAX_TOKEN_CHARS` base64 characters (`=` padding
    included) that no `.` touches (a host or file name)."""
    flat = text.encode("latin-1", "replace").translate(_TOKEN_BYTES)
    pos = flat.find(_TOKEN_RUN)
    while pos >= 0:
        nxt = flat.find(b" ", pos + len(_TOKEN_RUN))
        end = len(flat) if nxt < 0 else nxt
        while end < len(text) and end - nxt < 2 and text[end] == "=":
            end += 1
        if end - pos <= MAX_TOKEN_CHARS and text[pos - 1 : pos] != "." and text[end : end + 1] != ".":
            yield pos, end
        pos = flat.find(_TOKEN_RUN, end)


def _mixed(token: str) -> bool:
    """Whether `token` mixes cases (or holds no letter), by str methods, fast: 127,000 timestamps
    (`2024-06-17T19`) per 10 MB log are looked at."""
    return not (token.islower() or token.isupper())


def _redact_tokens(text: str) -> str:
    """Mask every long token (12 to 4096 characters of the base64 charset; under 16 only when it
    mixes cases and digits or is padded) that `_secret_token` finds to be a secret, wherever it
    stands."""
    edits = []
    for start, end in _long_token_spans(text):
        token = text[start:end]
        if end - start < 16 and not (_mixed(token) or token.endswith("=")):
            continue  # a word (configuration), a time: short base64 of `user:pw` mixes cases
        before, after = text[start - 1 : start], text[end : end + 1]
        quoted = before in ("'", '"') and after == before
        if _secret_token(text[start:end], "quoted" if quoted else "alone"):
            edits.append((start, end))
    return _apply_edits(text, edits)


# -- 6. values on another line than their key -----------------------------------------------------

# The prefix Airflow puts before a line: Airflow 2's `[time] {file.py:N} LEVEL - ` and the
# doctor's rendering of an Airflow 3 record, `time LEVEL logger - `.
_LOG_PREFIX = re.compile(
    r"(?:\[[^\]\n]{1,64}\][ \t]{1,4}\{[^}\n]{1,200}\}[ \t]{1,4}[A-Z]{1,10}[ \t]{1,4}-[ \t]"
    r"|\d{4}-\d\d-\d\d[T ][0-9:.,+]{1,20}Z?(?:[ \t]{1,4}[A-Z]{1,10})?(?:[ \t]{1,4}[^\s]{1,200})?"
    r"[ \t]{1,4}-[ \t])"
)
_NAME_PART = rf"[A-Za-z0-9_.-]{{0,40}}?{_SENSITIVE_NAMES}[A-Za-z0-9_.-]{{0,40}}"
# A key whose value is not on its line: `password:`, `"password":`, `password =`, `secret: |`.
_KEY_WITHOUT_VALUE = re.compile(
    rf"(?i)(?:^|[^A-Za-z0-9])[\"']?{_NAME_PART}[\"']?[ \t]{{0,8}}(?:=>|:=|=|:)[ \t]{{0,8}}"
    r"(?P<block>[|>][-+]?|\\)?[ \t]{0,8}$"
)
# A name whose value follows: `- name: DB_PASSWORD` (Kubernetes env), `'name': 'API_TOKEN',`.
_SENSITIVE_NAME_FIELD = re.compile(
    rf"(?i)\bname[\"']?[ \t]{{0,4}}[:=][ \t]{{0,4}}[\"']?{_NAME_PART}[\"']?[ \t]{{0,4}},?[ \t]{{0,4}}$"
)
_VALUE_FIELD = re.compile(
    r"(?i)^[ \t{]{0,80}(?:-[ \t]{1,4})?[\"']?value[\"']?[ \t]{0,4}[:=][ \t]{0,4}(?!\*\*\*)"
    r"(" + _QUOTED_VALUE + r"|[^\s,'\"}]{1,1024})"
)
_SINGLE_TOKEN = re.compile(r"^[ \t]{0,80}(?:-[ \t]{1,4})?([\"']?)(?!\*\*\*)([^\s'\"]{1,1024})\1,?[ \t]*$")
# expect(1): a password prompt, then `send "secret\r"` on the same line or the next ones.
_EXPECT_PROMPT = re.compile(r"(?i)\bexpect\b[^\n]{0,200}?(?:assword|passphrase|token|secret|\bpin\b)")
_SEND = re.compile(
    r"(?i)\bsend[ \t]{1,8}(?:--[ \t]{1,8})?(?:\"((?:[^\"\\\n]|\\.){1,1024})\"|\{([^}\n]{1,1024})\})"
)
# A name and its value on a line of their own: `password p` (a .netrc's lines), `password    x`
# (a pandas Series), `password | x` (psql's expanded display).
_NAME_SPACE_VALUE = re.compile(
    rf"(?i)^[ \t│┃|]{{0,40}}[\"']?{_NAME_PART}[\"']?(?:[ \t]{{1,40}}[|│┃]?|[ \t]{{0,40}}[|│┃])[ \t]{{0,8}}"
    r"(?!\*\*\*)([^\s|│┃]{1,1024})[ \t]{0,8}[|│┃]?[ \t]{0,40}$"
)
_NAME_CELL = re.compile(rf"(?i)\W{{0,4}}{_NAME_PART}\W{{0,4}}")
_DELIMITERS = re.compile(r"[|│┃]")
_BORDER = re.compile(r"^[\s\-=+|:─━┼┿╪╤╧═╒╕╘╛├┤┬┴└┘┌┐│┃╞╡]*$")
_CELLS = re.compile(r"\S{1,4096}+(?: \S{1,4096}+){0,64}+")
_FILE_LINE = re.compile(r'^\s{0,16}File "[^"\n]{1,1024}", line \d{1,7}')
_QUOTED = re.compile(r"([\"'])([A-Za-z0-9+/=_.-]{16,512})\1")
_WRAPPED_KEY = re.compile(r"\n(?=[A-Za-z0-9_.-]{1,40}[\"']?[ \t]{0,8}(?:=|:))")
_KEY_HEAD = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_WRAPPED_VALUE = re.compile(
    r"[\"']?[ \t]{0,8}(?:=|:)[ \t]{0,8}(?!\*\*\*)(" + _QUOTED_VALUE + r"|[^\s'\"]{1,1024})"
)
_ACROSS_NEEDLES = ("pass", "pwd", "secret", "token", "key", "credential", "auth", "expect", 'file "')
MAX_FOLLOWING_LINES = 1000  # rows of a table, lines of a YAML block scalar
MAX_LOOKAHEAD = 3  # lines after a name, or a prompt, looked at for its value


def _prefix(line: str) -> tuple[str, str]:
    """(log prefix, rest) of a line; the prefix is empty when the line has none. Two prefixes are
    one (a pod's log line relayed by Airflow's own logger)."""
    end = 0
    for _ in range(2):
        m = _LOG_PREFIX.match(line, end)
        if not m:
            break
        end = m.end()
    return line[:end], line[end:]


def _same_record(header_prefix: str, line: str) -> tuple[bool, str]:
    """Whether `line` continues the record of a line with `header_prefix` (no prefix of its own, or
    the same one but for digits: a text log prints each row with its own time; or the inner one of
    a relayed line's two), and its text."""
    prefix, rest = _prefix(line)
    if not prefix:
        return True, line
    same = re.sub(r"\d", "", header_prefix).endswith(re.sub(r"\d", "", prefix))
    return same, rest


def _table_edits(lines: list[str], i: int) -> list[tuple[int, int, int]]:
    """When line i is the header of a table with a secret column (whitespace-aligned as pandas
    prints, or `|`/box delimited as psql, Spark and tabulate print), the (line, start, end) of the
    column's value in each row below it. Cells are counted from the right, so an index column and
    a log prefix on the left change nothing."""
    prefix, header = _prefix(lines[i])
    delimited = bool(_DELIMITERS.search(header))
    cells = _DELIMITERS.split(header) if delimited else [m.group() for m in _CELLS.finditer(header)]
    if len([c for c in cells if c.strip()]) < 2:
        return []
    names = [k for k, c in enumerate(cells) if c.strip() and _NAME_CELL.fullmatch(c.strip())]
    if not names or (not delimited and re.search(r"\S \S", header.strip()) and len(cells) < 3):
        return []
    from_right = [len(cells) - 1 - k for k in names]
    edits: list[tuple[int, int, int]] = []
    width = None
    for j in range(i + 1, min(len(lines), i + 1 + MAX_FOLLOWING_LINES)):
        same, row = _same_record(prefix, lines[j])
        if not same or not row.strip():
            break
        if _BORDER.match(row):
            continue
        offset = len(lines[j]) - len(row)
        if delimited:
            bounds = [-1] + [m.start() for m in _DELIMITERS.finditer(row)] + [len(row)]
            spans = [(bounds[k] + 1, bounds[k + 1]) for k in range(len(bounds) - 1)]
        else:
            spans = [m.span() for m in _CELLS.finditer(row)]
        if width is None:
            width = len(spans)
            if width not in (len(cells), len(cells) + 1):
                break
        elif len(spans) != width:
            break
        for r in from_right:
            start, end = spans[len(spans) - 1 - r]
            value = row[start:end].strip()
            if value and value != MASK:
                lead = start + len(row[start:end]) - len(row[start:end].lstrip())
                edits.append((j, offset + lead, offset + lead + len(value)))
    return edits


def _value_edits(lines: list[str], i: int, start: int, block: bool) -> list[tuple[int, int, int]]:
    """The value of a key that ended line i: on the next non-empty line (`value: x`, a single
    token, or the indented lines of a YAML block scalar)."""
    prefix, _ = _prefix(lines[i])
    for j in range(i + 1, min(len(lines), i + 1 + MAX_LOOKAHEAD)):
        same, row = _same_record(prefix, lines[j])
        if not same:
            return []
        if not row.strip():
            continue
        offset = len(lines[j]) - len(row)
        if block:
            key_line = _prefix(lines[i])[1]
            indent = len(key_line) - len(key_line.lstrip())
            out = []
            for k in range(j, min(len(lines), j + MAX_FOLLOWING_LINES)):
                same, text = _same_record(prefix, lines[k])
                lead = len(text) - len(text.lstrip())
                if not same or (text.strip() and lead <= indent):
                    break
                if text.strip():
                    shift = len(lines[k]) - len(text)
                    out.append((k, shift + lead, shift + len(text.rstrip())))
            return out
        m = _VALUE_FIELD.match(row) or _SINGLE_TOKEN.match(row)
        if not m:
            return []
        s, e = _inner_span(row, *m.span(m.lastindex or 0))
        return [(j, offset + s, offset + e)]
    return []


def _follow_edits(
    lines: list[str], i: int, col: int, pattern: re.Pattern[str], stop: re.Pattern[str]
) -> list[tuple[int, int, int]]:
    """The first match of `pattern` after column `col` of line i or on the next `MAX_LOOKAHEAD`
    lines (stopping at a line that `stop` finds), as an edit of its first non-empty group."""
    for j in range(i, min(len(lines), i + 1 + MAX_LOOKAHEAD)):
        if j > i and stop.search(lines[j]):
            return []
        start = max(col if j == i else 0, len(lines[j]) - len(_prefix(lines[j])[1]))
        m = pattern.search(lines[j][start:])
        if m:
            m_start = start
            g = next((k for k in range(1, (m.re.groups or 0) + 1) if m.group(k)), 0)
            s, e = _inner_span(lines[j], m_start + m.start(g), m_start + m.end(g))
            return [] if lines[j][s:e] == MASK else [(j, s, e)]
    return []


_NEXT_NAME = re.compile(r"(?i)\bname\b|valuefrom")
_NEXT_EXPECT = re.compile(r"(?i)^\W{0,8}expect\b")
# A command printing a file that holds a secret (`cat /run/secrets/db_password`, `cat ~/.pgpass`):
# the lines after it that are one token each are its content.
_PRINTS_SECRET_FILE = re.compile(
    r"(?i)\b(?:cat|type|head|tail|more|less|get-content|gc|bat)[ \t][^\n]{0,256}?"
    r"(?:password|passwd|secret|token|credential|api[_-]?key|pgpass|netrc|passfile|pwfile)[^\s]{0,80}[ \t]*$"
)
# A key at the end of its line with no separator (`  Password`, `load failed: password`).
_BARE_KEY = re.compile(rf"(?i)(?:^|[ \t])[\"']?{_NAME_PART}[\"']?[ \t]{{0,8}}$")


def _file_content_edits(lines: list[str], i: int) -> list[tuple[int, int, int]]:
    """The one-token lines printed after a command that prints a secret file (at most 20)."""
    prefix, _ = _prefix(lines[i])
    edits = []
    for j in range(i + 1, min(len(lines), i + 21)):
        same, row = _same_record(prefix, lines[j])
        m = _SINGLE_TOKEN.match(row) if same else None
        if not m:
            break
        offset = len(lines[j]) - len(row)
        edits.append((j, offset + m.start(2), offset + m.end(2)))
    return edits


def _line_edits(lines: list[str], i: int, multi: bool = True) -> list[tuple[int, int, int]]:
    """Every edit that line i, a line holding a credential word or a prompt, calls for (tables and
    block scalars only when `multi`)."""
    line = lines[i]
    _, rest = _prefix(line)
    offset = len(line) - len(rest)
    edits: list[tuple[int, int, int]] = []
    m = _KEY_WITHOUT_VALUE.search(rest) or _BARE_KEY.search(rest)
    if m:
        edits += _value_edits(lines, i, m.end(), multi and bool(m.groupdict().get("block")))
    if _SENSITIVE_NAME_FIELD.search(rest):
        edits += _follow_edits(lines, i + 1, 0, _VALUE_FIELD, _NEXT_NAME)
    m = _EXPECT_PROMPT.search(line)
    if m:
        edits += _follow_edits(lines, i, m.end(), _SEND, _NEXT_EXPECT)
    if _PRINTS_SECRET_FILE.search(rest):
        edits += _file_content_edits(lines, i)
    m = _NAME_SPACE_VALUE.match(rest)
    if m and not _KEY_WITHOUT_VALUE.search(rest):
        edits.append((i, offset + m.start(1), offset + m.end(1)))
    if _FILE_LINE.match(rest) and i + 1 < len(lines):
        for q in _QUOTED.finditer(lines[i + 1]):
            if looks_random(q.group(2), "near"):
                edits.append((i + 1, q.start(2), q.end(2)))
    return edits + _table_edits(lines, i) if multi else edits


_KEY_TAIL = re.compile(r"[A-Za-z0-9_.-]{1,40}$")
_NAME = re.compile(rf"(?i){_SENSITIVE_NAMES}")


def _wrapped_key_edits(text: str, lines: list[str], starts: list[int]) -> list[tuple[int, int, int]]:
    """A key cut in two by a line wrap (`...db_pass` / `word=x`): the value on the second line. The
    last `MAX_ACROSS_LINES` lines that start like a key's end and its separator are looked at."""
    edits: list[tuple[int, int, int]] = []
    breaks = [nl.end() for nl in _WRAPPED_KEY.finditer(text)][-MAX_ACROSS_LINES:]
    for at in breaks:
        j = bisect.bisect_right(starts, at) - 1
        if j < 1 or not lines[j - 1][-1:].isalnum():
            continue
        tail = _KEY_TAIL.search(lines[j - 1], max(0, len(lines[j - 1]) - 40))
        head = _KEY_HEAD.match(lines[j])
        if not tail or not head:
            continue
        name = _NAME.search(tail.group() + head.group())
        if not name or not name.start() < len(tail.group()) < name.end():
            continue
        value = _WRAPPED_VALUE.match(lines[j], head.end())
        if value:
            edits.append((j, *_inner_span(lines[j], *value.span(1))))
    return edits


# -- 3. encoded text ------------------------------------------------------------------------------

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_SEPARATORS = re.compile(r"([\s'\"]+)")
# A run of hex or unicode escapes (`\x70\x61...`, `\u0070\u0061...`): four escaped characters or more.
_ESCAPES = re.compile(r"\\(?:x|u00)[0-9A-Fa-f]{2}(?:\\x[0-9A-Fa-f]{2}|\\u00[0-9A-Fa-f]{2}){3,8191}")


def _redact_decoded(tokens: list[str]) -> list[str]:
    """For each token with `%XX` escapes, its decoded, redacted form (newlines as spaces) when that
    holds a secret, else the token. Decoded twice at most (a URI inside a URI); a token with `+` is
    tried again with `+` as a space. All tokens are redacted as one text, one token per run of lines
    (a call per token cost 0.3 s over 10 MB of random bytes, whose `%XX` are everywhere)."""
    out = list(tokens)
    pending = [k for k, t in enumerate(tokens) if _PERCENT.search(t)]
    for unquoted in (unquote, unquote_plus):
        if unquoted is unquote_plus:
            pending = [k for k in pending if "+" in tokens[k]]
        if not pending:
            break
        decoded = []
        for k in pending:
            d = unquoted(tokens[k])
            decoded.append(unquoted(d) if _PERCENT.search(d) else d)
        lines = _redact_text(_redact_blocks("\n".join(decoded))).split("\n")
        still, pos = [], 0
        for k, d in zip(pending, decoded, strict=True):
            n = d.count("\n") + 1
            redacted = "\n".join(lines[pos : pos + n])
            pos += n
            if redacted != d:
                out[k] = redacted.replace("\n", " ")
            else:
                still.append(k)
        pending = still
    return out


def _redact_encoded(text: str) -> str:
    """URL-encoded tokens (`_redact_decoded`) and runs of hex escapes, replaced by their decoded,
    redacted form when that holds a secret."""
    if "%" in text:
        spans: list[tuple[int, int]] = []  # the lines holding an escape
        for m in _PERCENT.finditer(text):
            if spans and m.start() < spans[-1][1]:
                continue
            end = text.find("\n", m.end())
            spans.append((text.rfind("\n", 0, m.start()) + 1, len(text) if end < 0 else end))
        if spans:
            parts = [_SEPARATORS.split(text[s:e]) for s, e in spans]
            flat = _redact_decoded([p for line in parts for p in line])
            out, pos, k = [], 0, 0
            for (start, end), line in zip(spans, parts, strict=True):
                out += [text[pos:start], "".join(flat[k : k + len(line)])]
                k += len(line)
                pos = end
            text = "".join(out) + text[pos:]
    if "\\x" in text or "\\u00" in text:
        text = _ESCAPES.sub(_unescaped, text)
    return text


def _unescaped(m: re.Match[str]) -> str:
    escapes = m.group()
    raw = bytes(int(h, 16) for h in re.findall(r"\\(?:x|u00)([0-9A-Fa-f]{2})", escapes))
    decoded = raw.decode("utf-8", errors="replace") if "\\x" in escapes else raw.decode("latin-1")
    redacted = _redact_text(_redact_blocks(decoded)).replace("\n", " ")
    if redacted != decoded:
        return redacted
    return MASK if looks_random(decoded, "near") else escapes


# -- the entry point ------------------------------------------------------------------------------


def redact(text: str) -> str:
    """Return `text` with secrets replaced by `***`.

    Args:
        text: any log text (already decoded to str); the whole log, before it is cut or windowed,
            so a block whose start or end falls outside the later excerpt is still found.
    Returns:
        the redacted text, bounded by `bound_text` (10 MB tail, 64 KB per line); the number of lines is
        kept (a multi-line block becomes `***` lines), never containing a matched secret.
    """
    if not text:
        return text
    return _redact_bounded(bound_text(text))


def _redact_bounded(text: str) -> str:
    if "\x00" in text:  # UTF-16 read as UTF-8 or Latin-1: p\x00a\x00s\x00s\x00... (as to_text drops NUL)
        text = text.replace("\x00", "")
    text = _redact_blocks(text)
    text = _airflow_mask(text)
    text = _redact_encoded(text)
    return _redact_tokens(_redact_text(text))


def redact_lines(lines: list[str]) -> list[str]:
    """Redact a log given as lines, as one text (a block spanning lines is found), keeping one output
    line per input line so that indices into `lines` stay valid.

    Args:
        lines: the log's lines, each already bounded (`MAX_LINE_CHARS`); their total is not cut here.
    Returns:
        a list of the same length, each line redacted.
    """
    if not lines:
        return lines
    bounded = [ln if len(ln) <= MAX_LINE_CHARS else bound_text(ln) for ln in lines]
    joined = "\n".join(bounded)
    out = _redact_bounded(joined).split("\n")
    if len(out) != len(lines):  # a replacement changed the line count: never expected, stay safe
        log.warning(
            "redaction changed the number of lines (%s -> %s); redacting line by line", len(lines), len(out)
        )
        out = [_redact_bounded(ln).replace("\n", " ") for ln in bounded]
    return out
