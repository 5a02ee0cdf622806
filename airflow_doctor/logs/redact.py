"""Redaction: secrets out of log text before anything embeds, stores, sends or notifies it.

`redact` runs on a whole log text (before the excerpt is chosen, windowed or cut) in four layers:

1. Multi-line blocks: PEM, PGP, OpenSSH, SSH2 and PuTTY private keys are found by their BEGIN
   marker and masked up to their END marker (or, for a truncated key, over the key-material lines
   after it), wherever the excerpt window later falls. Every newline is kept, so line numbers
   (and the excerpt's choice of lines) do not move.
2. Airflow's own secrets masker: every value Airflow knows to be secret in this process (connection
   passwords, sensitive Variables), masked as `***`.
3. URL-encoded and double-encoded text (a GCP `keyfile_dict` inside an `AIRFLOW_CONN_` URI): a
   whitespace-separated token with `%XX` escapes is decoded (twice at most); when the decoded form
   holds a secret, the token is replaced by its decoded, redacted form.
4. Single-line patterns. Vendor token formats come from detect-secrets 1.5.0
   (https://github.com/Yelp/detect-secrets): the `denylist` regexes of its Stripe, SendGrid, GitHub,
   GitLab, Twilio, Mailchimp, Discord, Square, Azure storage, PyPI, Telegram, Artifactory and AWS
   plugins are used as published (their public class attribute). Its Slack, JWT, basic-auth,
   keyword, npm and OpenAI regexes are not linear-time on long runs (nested or unbounded
   quantifiers that backtrack), so they are rewritten here from the published patterns with
   bounded quantifiers. Its high-entropy detectors are not used: on logs they flag hashes, ids and
   paths. What logs need on top: key/value in every quoting and separator style, CLI flags with
   attached or separate values, `user:pw@` and `user/pw@` in URIs and DSNs, cookies, SMTP AUTH
   lines, vendor tokens detect-secrets does not know (Slack app tokens and workflow URLs,
   Databricks, Telegram bot URLs, OpenAI project keys, Anthropic, Fernet keys, kubeconfig data).

Each pattern masks only the secret part and keeps the context (`password=***`), so the diagnosis
can still see what kind of thing failed.

Linear time: `bound_text` first caps a text (10 MB, keeping the tail) and every line (64 KB,
keeping head and tail); every quantifier is bounded or follows a literal that a match consumes, so
a long run of word characters, `=`, `:`, `/` or `%` costs at most a constant per character. Speed:
most patterns run only on the lines that hold one of their needles (`password`, `token`, `xox`...),
found with `str.find`; a 100 MB log gives its excerpt in about 1 s (bench/redact.py).

Known gaps: a secret with no keyword, no known prefix and no known shape (a bare random password
printed alone) is not found; the Artifactory `AP...` and Telegram bot token formats are looked for
only on lines that name their service or a token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import unquote

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


def _library_patterns() -> list[tuple[str, re.Pattern[str], Replacement, tuple[str, ...] | None]]:
    """detect-secrets plugins whose published regexes run in linear time, with needles (see
    `_PATTERNS`; the Artifactory `AP...` and Telegram formats are looked for only on lines that name
    their service or a token, as `ap` and `:` are on every line). The whole match is
    masked, except for AWS, whose keyword regex captures the secret after its context (GitLab's
    groups capture the prefix, not the secret)."""
    try:
        from detect_secrets.plugins import (
            artifactory,
            aws,
            azure_storage_key,
            discord,
            github_token,
            gitlab_token,
            mailchimp,
            pypi_token,
            sendgrid,
            square_oauth,
            stripe,
            telegram_token,
            twilio,
        )
    except ImportError:  # pragma: no cover - the own patterns below still cover these families
        log.warning("detect-secrets is not installed: its vendor token patterns are not applied")
        return []
    plugins = [
        (aws.AWSKeyDetector, None),
        (artifactory.ArtifactoryDetector, ("akc", "artifactory", "jfrog")),
        (azure_storage_key.AzureStorageKeyDetector, None),
        (discord.DiscordBotTokenDetector, None),
        (github_token.GitHubTokenDetector, None),
        (gitlab_token.GitLabTokenDetector, None),
        (mailchimp.MailchimpDetector, ("-us",)),
        (pypi_token.PypiTokenDetector, None),
        (sendgrid.SendGridDetector, None),
        (square_oauth.SquareOAuthDetector, None),
        (stripe.StripeDetector, None),
        (telegram_token.TelegramBotTokenDetector, ("bot", "telegram", "token")),
        (twilio.TwilioKeyDetector, None),
    ]
    return [
        (
            f"detect-secrets:{plugin.__name__}",
            regex,
            _mask_groups if plugin is aws.AWSKeyDetector else MASK,
            needles,
        )
        for plugin, needles in plugins
        for regex in plugin.denylist
    ]


def _key_value(m: re.Match[str]) -> str:
    value = m.group("value")
    quote_open = value[:2] if value.startswith('\\"') else value[:1] if value[:1] in "\"'" else ""
    quote_close = quote_open if quote_open and value.endswith(quote_open) and len(value) > 1 else ""
    return m.group("key") + m.group("sep") + quote_open + MASK + quote_close


# Names of settings whose value is a secret (matched case-insensitively, as a part of a longer name:
# SNOWFLAKE_PASSWORD, db.password, AIRFLOW__CORE__FERNET_KEY, client-key-data).
_SENSITIVE_NAMES = (
    r"(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"fernet[_-]?key|client[_-]?key|signing[_-]?key|encryption[_-]?key|account[_-]?key|master[_-]?key|"
    r"subscription[_-]?key|credentials?|session[_-]?id|sessid|csrf|cookie|"
    r"(?<![a-z])(?:pass|pwd|pw|auth|sid|sig)(?![a-z]))"
)
_KEY_VALUE_NEEDLES = ("pass", "pwd", "pw", "secret", "token", "key", "credential", "session", "sessid")
_KEY_VALUE_NEEDLES += ("csrf", "cookie", "auth", "sid", "sig")
_SEP = r"(?:\\?[\"'])?[ \t]{0,8}(?:=>|:=|=|:|->)[ \t]{0,8}"
_VALUE = (
    r"(?!\\?[\"']?\*\*\*)"
    r"(?:\\\"(?:[^\"\\\n]|\\[^\"\n]){1,4096}?\\\""  # \"escaped JSON\"
    r"|\"(?:[^\"\\\n]|\\[^\n]){1,4096}\""  # "double quoted"
    r"|'[^'\n]{1,4096}'"  # 'single quoted'
    r"|[^\s'\"<>]{1,4096})"  # unquoted: up to whitespace (so a password may hold , ; & } @ /)
)
_SENSITIVE_FLAGS = (
    r"password|passwd|pass|pwd|passphrase|token|auth-token|access-token|oauth-token|bearer|api-key|apikey|"
    r"secret|client-secret|secret-key|access-key|account-key|sas-token|private-key|key-password|"
    r"storepass|keypass|connection-string"
)
# Commands whose short -p (or -P) flag is a password (elsewhere -p is a port or `mkdir -p`).
_P_IS_PASSWORD = re.compile(
    r"(?i)\b(?:mysql\w*|mariadb\w*|sshpass|login|twine|mongo\w*|sqlcmd|bcp|isql|htpasswd|"
    r"mysqladmin|mysqldump|vertica|vsql|unzip|7z|zip)\b"
)
# Of those, the ones whose password flag is a capital -P (for mysql, -P is the port).
_CAPITAL_P_IS_PASSWORD = re.compile(r"(?i)\b(?:sqlcmd|bcp|isql|unzip|zip)\b")
_SHORT_P = re.compile(
    r"(?<![\w-])(-[pP])([ \t]+|(?=[^\s-]))('[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\"|[^\s'\"]{1,1024})"
)
_SHORT_LOWER_P = re.compile(
    r"(?<![\w-])(-p)([ \t]+|(?=[^\s-]))('[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\"|[^\s'\"]{1,1024})"
)


def _short_p(m: re.Match[str]) -> str:
    return (
        m.group(1) + m.group(2) + (m.group(3)[0] + MASK + m.group(3)[0] if m.group(3)[0] in "'\"" else MASK)
    )


def _cli_short_p(text: str) -> str:
    """`-p secret` / `-psecret` / `-p'secret'` on the lines of commands whose -p is a password."""
    if not _P_IS_PASSWORD.search(text):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if ("-p" in line or "-P" in line) and _P_IS_PASSWORD.search(line):
            pattern = _SHORT_P if _CAPITAL_P_IS_PASSWORD.search(line) else _SHORT_LOWER_P
            lines[i] = pattern.sub(_short_p, line)
    return "\n".join(lines)


def _quoted_mask(m: re.Match[str]) -> str:
    value = m.group("value")
    q = value[0] if value[:1] in "'\"" else ""
    return m.group("pre") + q + MASK + q


# (name, pattern, replacement, needles). Needles are lower-case substrings without which the pattern
# cannot match: only the lines holding one are searched (found with str.find, far faster than a regex
# scan of every line). None: the pattern starts with a literal the regex engine finds fast, or spans
# two lines, and runs on the whole text.
_OWN_PATTERNS: list[tuple[str, re.Pattern[str], Replacement, tuple[str, ...] | None]] = [
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
        None,
    ),
    (
        "telegram_bot_url",
        re.compile(r"(api\.telegram\.org/(?:file/)?bot)[0-9]{3,15}:[A-Za-z0-9_-]{10,128}"),
        r"\1***",
        None,
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
        re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,255}|whsec_[A-Za-z0-9]{16,255}"),
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
    # A Fernet key: 32 bytes, url-safe base64 (AIRFLOW__CORE__FERNET_KEY, cryptography.fernet).
    ("fernet_key", re.compile(r"(?<![A-Za-z0-9_=-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"), MASK, ("=",)),
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
    ("cookie_jar", re.compile(r"(<Cookie [A-Za-z0-9_.-]{1,128}=)[^\s>]{1,4096}"), r"\1***", None),
    # scheme://user:pw@host: the password may hold @ / , ; & } (the last @ of the token ends it).
    (
        "uri_password",
        re.compile(r"(://[^\s/?#@:'\"]{0,256}:)(?!\*\*\*@)[^\s'\"]{1,512}(?=@)"),
        r"\1***",
        None,
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
    # curl -u user:pw, --user user:pw, --proxy-user
    (
        "cli_user_password",
        re.compile(
            r"(?<![\w-])((?:-u|-U|--user|--proxy-user|--basic-auth)(?:[ \t]{1,8}|=)['\"]?[^\s:'\"]{1,256}:)"
            r"(?!\*\*\*)[^\s'\"]{1,1024}"
        ),
        r"\1***",
        ("-u", "--user", "--basic-auth", "--proxy-user"),
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
        "sql_password",
        re.compile(
            r"(?i)(?P<pre>\b(?:identified[ \t]+by|password)[ \t]+)"
            r"(?P<value>'[^'\n]{1,1024}'|\"[^\"\n]{1,1024}\")"
        ),
        _quoted_mask,
        ("identified", "password"),
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
        "key_value",
        re.compile(rf"(?i)(?P<key>{_SENSITIVE_NAMES}[a-z0-9_-]{{0,40}}?)(?P<sep>{_SEP})(?P<value>{_VALUE})"),
        _key_value,
        _KEY_VALUE_NEEDLES,
    ),
]

_PATTERNS = _OWN_PATTERNS + _library_patterns()  # own first: their bounds are wider


_NEEDLES = sorted({n for *_, needles in _PATTERNS for n in needles or ()} | {"-p"})


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


def _candidate_lines(text: str, low: str) -> list[tuple[int, int]]:
    """(start, end) of every line holding a needle of some pattern, in order: the only lines the
    single-line patterns need to see. Found with `str.find`, which is far faster than a regex scan.
    `low` is `fold(text)`: the same length, so its offsets are offsets in `text`."""
    spans: dict[int, int] = {}
    for needle in _NEEDLES:
        i = low.find(needle)
        while i >= 0:
            start = low.rfind("\n", 0, i) + 1
            end = low.find("\n", i)
            end = len(low) if end < 0 else end
            spans[start] = end
            i = low.find(needle, end)
    return sorted(spans.items())


def _apply_patterns(text: str, whole: bool) -> str:
    low = fold(text)
    for _name, pattern, replacement, needles in _PATTERNS:
        if (needles is None) == whole and (whole or any(n in low for n in needles)):
            new = pattern.sub(replacement, text)
            if new is not text:
                text, low = new, fold(new)
    return text


def _redact_line_patterns(text: str) -> str:
    """Apply the whole-text patterns, then the others to the lines that hold one of their needles
    (joined, so each regex runs once over them)."""
    text = _apply_patterns(text, whole=True)
    spans = _candidate_lines(text, fold(text))
    if not spans:
        return text
    lines = [text[s:e] for s, e in spans]
    redacted = _cli_short_p(_apply_patterns("\n".join(lines), whole=False)).split("\n")
    if len(redacted) != len(lines):  # a pattern changed the line count: never expected, stay safe
        redacted = [_cli_short_p(_apply_patterns(ln, whole=False)).replace("\n", " ") for ln in lines]
    out, pos = [], 0
    for (start, end), line in zip(spans, redacted, strict=True):
        out += [text[pos:start], line]
        pos = end
    return "".join(out) + text[pos:]


# -- 3. URL-encoded text --------------------------------------------------------------------------

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_SEPARATORS = re.compile(r"([\s'\"]+)")


def _decoded(token: str) -> str:
    if not _PERCENT.search(token):
        return token
    decoded = unquote(token)
    if _PERCENT.search(decoded):
        decoded = unquote(decoded)  # double-encoded (a URI inside a URI)
    redacted = _redact_line_patterns(_redact_blocks(decoded))
    return token if redacted == decoded else redacted.replace("\n", " ")


def _redact_encoded(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _PERCENT.finditer(text):
        if m.start() < pos:
            continue  # on a line already decoded
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        line = text[start:end]
        out += [text[pos:start], "".join(_decoded(p) if "%" in p else p for p in _SEPARATORS.split(line))]
        pos = end
    return "".join(out) + text[pos:] if out else text


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
    text = _redact_blocks(text)
    text = _airflow_mask(text)
    text = _redact_encoded(text)
    return _redact_line_patterns(text)


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
