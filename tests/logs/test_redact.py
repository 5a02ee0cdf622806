"""Redaction and hostile text: no secret leaves a log, and no log text raises or loses the excerpt.

Every secret format below (all fakes, made up for these tests) is embedded in a realistic log line and
checked, for an Airflow 2 text log and an Airflow 3 structured log, in everything that leaves the
doctor: the excerpt from `extract_excerpt` (text, message, causes, context), the LLM prompt
(`diagnosis.user_prompt`), and the email (text and HTML) and Slack (Block Kit) payloads built by
`notify.build_message` / `render_html` / `render_blocks` from the excerpt and a diagnosis that quotes
it. The stored case stores `excerpt["text"]` (`remediation.record_case`), so the assertion on the
excerpt's text covers the knowledge base too.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections import Counter
from urllib.parse import quote

import pytest

from airflow_doctor.judgement.diagnosis import user_prompt
from airflow_doctor.logs.excerpt import MAX_EXCERPT_BYTES, MAX_FIELD_CHARS, excerpt_record, extract_excerpt
from airflow_doctor.logs.redact import redact
from airflow_doctor.models import FailureRef
from airflow_doctor.notifications.messages import (
    build_message,
    render_approval_body,
    render_blocks,
    render_html,
)
from tests.logs.redaction_formats import KEPT, NEW_FORMATS

_SA_PEM = (
    "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDfakeFAKEfake\\n"
    "Zk9yVGVzdGluZ09ubHlOb3RBUmVhbEtleQ==\\n-----END PRIVATE KEY-----\\n"
)
_KEYFILE = (
    '{"type": "service_account", "project_id": "acme-data", "private_key_id": "c0ffee1234deadbeef5678abcdef90',
    '", "private_key": "' + _SA_PEM + '", "client_email": "etl@acme-data.iam.gserviceaccount.com"}',
)
_KEYFILE = "".join(_KEYFILE)
_PLAIN_AUTH = base64.b64encode(b"\x00mailer@acme.io\x00Sm7pMailPw!x").decode()
_KUBE_KEY = base64.b64encode(b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAkubefakekey\n").decode()
_PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGZfakePGPkeyMaterialLine1AAAAAAAAAAAAAA\n"
    "=Qx9Z\n-----END PGP PRIVATE KEY BLOCK-----"
)

# (family, id, a log line holding a fake secret, the secret)
_FORMATS = [
    # key/value in every quoting and separator style
    ("key_value", "kv-equals", "connecting with password=Tr0ub4dor3x host=db", "Tr0ub4dor3x"),
    ("key_value", "kv-colon-space", "db.password: Gr33nApple77", "Gr33nApple77"),
    ("key_value", "kv-spaces-around", "SNOWFLAKE_PASSWORD = Sn0wP4ssw0rd", "Sn0wP4ssw0rd"),
    ("key_value", "kv-python-dict", "conf={'user': 'etl', 'password': 'Blu3Whale!9'}", "Blu3Whale!9"),
    (
        "key_value",
        "kv-json",
        'payload {"api_key":"ak_9d8f7e6a5b4c3d2e1f00","region":"eu"}',
        "ak_9d8f7e6a5b4c3d2e1f00",
    ),
    (
        "key_value",
        "kv-escaped-json",
        'body="{\\"client_secret\\": \\"cs-77aa88bb99cc\\"}"',
        "cs-77aa88bb99cc",
    ),
    ("key_value", "kv-double-quoted-space", 'secret="correct horse battery staple"', "horse battery staple"),
    ("key_value", "kv-comma-in-pw", "password=ab,cd;ef&gh}ij@kl/mn host=x", "cd;ef&gh}ij@kl/mn"),
    ("key_value", "kv-quoted-punct", "password='p,w;d&x}y@z/Q' user=etl", "p,w;d&x}y@z/Q"),
    ("key_value", "kv-kwarg", 'Client(token="tok_5f4e3d2c1b0a99887766")', "tok_5f4e3d2c1b0a99887766"),
    ("key_value", "kv-env-export", "export PGPASSWORD=Pg$ecret2024", "Pg$ecret2024"),
    ("key_value", "kv-yaml", "  access_key_id: AKIAFAKE0000EXAMPLE1", "AKIAFAKE0000EXAMPLE1"),
    ("key_value", "kv-ruby-arrow", ':secret_key => "sk3y-4455-6677-8899"', "sk3y-4455-6677-8899"),
    ("key_value", "kv-walrus", "auth_token := 'aT0k3nV4lue99'", "aT0k3nV4lue99"),
    ("key_value", "kv-xml", "<ns:Password>Xml$ecretPw1</ns:Password>", "Xml$ecretPw1"),
    ("key_value", "kv-sql-identified-by", "CREATE USER etl IDENTIFIED BY 'OraPa55word#1'", "OraPa55word#1"),
    ("key_value", "kv-sql-with-password", "ALTER ROLE loader WITH PASSWORD 'L0ader!Pw'", "L0ader!Pw"),
    ("key_value", "kv-passphrase", "ssh_key_passphrase=OpenS3same", "OpenS3same"),
    # CLI flags
    ("cli", "cli-password-space", "mysqldump --password S3cretDump db > out.sql", "S3cretDump"),
    ("cli", "cli-password-equals", "pg_dump --password=Dump3rPw -h db", "Dump3rPw"),
    ("cli", "cli-mysql-p-quoted", "mysql -u root -p'MyR00t!pw' -e 'select 1'", "MyR00t!pw"),
    ("cli", "cli-mysql-p-attached", "mysql -uroot -pAttached99 warehouse", "Attached99"),
    ("cli", "cli-token-space", "databricks-cli --token DbCliTok3n55 workspace ls", "DbCliTok3n55"),
    ("cli", "cli-curl-u", "curl -sS -u deploy:CurlP4ss! https://nexus.acme.io/repo", "CurlP4ss!"),
    ("cli", "cli-curl-user-long", "curl --user admin:Adm1nPa55 -X POST https://jenkins/job", "Adm1nPa55"),
    ("cli", "cli-sshpass", "sshpass -p 'SshP@ss22' scp out.csv etl@sftp:/in", "SshP@ss22"),
    ("cli", "cli-docker-login", "docker login -u ci -p D0ckerHubPw registry.acme.io", "D0ckerHubPw"),
    (
        "cli",
        "cli-vault-login",
        "vault login hvs.CAESIfakefakefakeVAULT0123456",
        "CAESIfakefakefakeVAULT0123456",
    ),
    ("cli", "cli-vault-login-plain", "+ vault login s.Wf4keV4ultT0ken", "Wf4keV4ultT0ken"),
    ("cli", "cli-twine", "twine upload -u acme -p Tw1neUpl0ad dist/*", "Tw1neUpl0ad"),
    ("cli", "cli-sqlcmd", "sqlcmd -S mssql -U sa -P 'SqlCmdPw#7' -Q \"select 1\"", "SqlCmdPw#7"),
    (
        "cli",
        "cli-client-secret",
        "az login --service-principal -u app --client-secret AzCl1entS3c",
        "AzCl1entS3c",
    ),
    ("cli", "cli-api-key", "datadog-ci --api-key dd0011223344556677 upload", "dd0011223344556677"),
    # user:pw@ and user/pw@ in URIs and DSNs
    ("uri", "uri-postgres", "postgresql://etl_user:Hunt3rPass@db.internal:5432/warehouse", "Hunt3rPass"),
    ("uri", "uri-at-slash-in-pw", "mysql://app:p@ss/w,rd;x@mysql:3306/app", "p@ss/w,rd;x"),
    ("uri", "uri-redis-no-user", "redis://:R3disPw@cache:6379/0", "R3disPw"),
    ("uri", "uri-amqp", "broker_url = amqp://guest:Rabb1tPw@rabbit:5672//", "Rabb1tPw"),
    (
        "uri",
        "uri-airflow-conn",
        "AIRFLOW_CONN_WAREHOUSE='postgres://loader:C0nnUriPw@pg:5432/dwh'",
        "C0nnUriPw",
    ),
    ("uri", "uri-mongodb-srv", "mongodb+srv://svc:M0ng0Atl4s@cluster0.abcd.mongodb.net/db", "M0ng0Atl4s"),
    ("uri", "uri-https-basic", "GET https://bot:HttpB4sic@artifacts.acme.io/file.tgz", "HttpB4sic"),
    ("uri", "uri-oracle-jdbc-thin", "jdbc:oracle:thin:scott/T1gerOra@dbhost:1521:ORCL", "T1gerOra"),
    ("uri", "uri-sqlplus", "sqlplus -s scott/Sqlp1usPw@//ora:1521/PDB1 @run.sql", "Sqlp1usPw"),
    ("uri", "uri-sqlldr-userid", "sqlldr userid=loader/Ldr$Pw2@ORCLPDB control=x.ctl", "Ldr$Pw2"),
    ("uri", "uri-snowflake", "snowflake://jdoe:Sn0wUriPw@acme-xy12345/db/schema?warehouse=wh", "Sn0wUriPw"),
    # URL-encoded and double-encoded
    ("encoded", "enc-password-in-query", "GET /login?user=etl&password%3DEnc0dedPw%21", "Enc0dedPw"),
    ("encoded", "enc-uri-password", "conn=postgres%3A%2F%2Fetl%3AUrlEncPw9%40db%3A5432%2Fdwh", "UrlEncPw9"),
    (
        "encoded",
        "enc-keyfile-dict-in-conn-uri",
        "AIRFLOW_CONN_GCP='google-cloud-platform://?extra__google_cloud_platform__keyfile_dict="
        + quote(_KEYFILE, safe="")
        + "'",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDfakeFAKEfake",
    ),
    (
        "encoded",
        "enc-double-encoded-keyfile",
        "uri=gcp://?keyfile_dict=" + quote(quote(_KEYFILE, safe=""), safe=""),
        "Zk9yVGVzdGluZ09ubHlOb3RBUmVhbEtleQ",
    ),
    ("encoded", "enc-double-token", "redirect=%252Fcb%253Ftoken%253DDblEncT0k3n", "DblEncT0k3n"),
    # vendor tokens
    ("vendor", "aws-access-key-id", "using key AKIAQ3FAKE7EXAMPLE2Z for s3", "AKIAQ3FAKE7EXAMPLE2Z"),
    (
        "vendor",
        "aws-secret-env",
        "AWS_SECRET_ACCESS_KEY=wJalrXFakeKEY/K7MDENG/bPxRfiCYFAKEKEY",
        "wJalrXFakeKEY",
    ),
    ("vendor", "aws-session-token", "aws_session_token: FwoGZXIvYXdzEFAKEDHh4eHh4eHh4", "FwoGZXIvYXdzEFAKE"),
    (
        "vendor",
        "gcp-api-key",
        "maps?key=AIzaSyFakeFake0123456789abcdefghijklmno",
        "AIzaSyFakeFake0123456789abcdefghijklmno",
    ),
    (
        "vendor",
        "slack-bot-token",
        "slack token xoxb-112233445566-778899001122-FakeBotTokenValue1",
        "FakeBotTokenValue1",
    ),
    ("vendor", "slack-user-token", "SLACK xoxp-111-222-333-fakeusertokenabc", "fakeusertokenabc"),
    (
        "vendor",
        "slack-app-token",
        "socket mode with xapp-1-A0FAKE123-4455667788-abcdef0123456789",
        "abcdef0123456789",
    ),
    (
        "vendor",
        "slack-webhook",
        "posting to https://hooks.slack.com/services/T0FAKE000/B0FAKE000/FakeWebhookSecret0123",
        "FakeWebhookSecret0123",
    ),
    (
        "vendor",
        "slack-workflow-trigger",
        "POST https://hooks.slack.com/triggers/T0FAKE111/5566778899/0a1b2c3d4e5f6a7b8c9d0e1f",
        "0a1b2c3d4e5f6a7b8c9d0e1f",
    ),
    (
        "vendor",
        "slack-workflow-webhook",
        "hook https://hooks.slack.com/workflows/T0FAKE/A0FAKE/123456/FakeWorkflowSecret99",
        "FakeWorkflowSecret99",
    ),
    (
        "vendor",
        "sendgrid",
        "sendgrid client SG.fAkEsEnDgRiDkEy012345.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefg",
        "aBcDeFgHiJkLmNoPqRsTuVwXyZ",
    ),
    (
        "vendor",
        "databricks-pat",
        "databricks host=x dapi0123456789abcdef0123456789abcdef-2",
        "0123456789abcdef0123456789abcdef",
    ),
    (
        "vendor",
        "telegram-bot-url",
        "HTTPError for url: https://api.telegram.org/bot123456789:AAFakeTelegramTokenValue_0123456789ab/sendMessage",
        "AAFakeTelegramTokenValue_0123456789ab",
    ),
    (
        "vendor",
        "openai-project-key",
        "openai.AuthenticationError key sk-proj-Ab_Cd-Ef01_fakeProjectKey-xyz_0123456789",
        "fakeProjectKey-xyz_0123456789",
    ),
    (
        "vendor",
        "openai-service-account-key",
        "using sk-svcacct-Fake_Svc-Acct_Key0123456789abcdefABCDEF",
        "Fake_Svc-Acct_Key0123456789abcdefABCDEF",
    ),
    (
        "vendor",
        "openai-legacy-key",
        "OPENAI sk-FakeLegacyKey0123456789abcdefghij",
        "FakeLegacyKey0123456789abcdefghij",
    ),
    (
        "vendor",
        "anthropic-key",
        "x-anthropic sk-ant-api03-FakeAnthropic_Key-0123456789",
        "FakeAnthropic_Key-0123456789",
    ),
    (
        "vendor",
        "github-pat-classic",
        "git clone https://ghp_FakeGithubToken0123456789abcdefABCD@github.com/o/r",
        "ghp_FakeGithubToken0123456789abcdefABCD",
    ),
    (
        "vendor",
        "github-pat-fine-grained",
        "GH github_pat_11FAKE0000_FakeFineGrainedToken0123456789abcdefghij",
        "FakeFineGrainedToken0123456789",
    ),
    ("vendor", "gitlab-pat", "remote: glpat-FakeGitlabTok3n012345 denied", "FakeGitlabTok3n012345"),
    (
        "vendor",
        "stripe-live",
        "stripe.error sk_live_FakeStripeKey0123456789abc",
        "FakeStripeKey0123456789abc",
    ),
    ("vendor", "stripe-restricted", "rk_test_FakeRestrictedKey01234567 used", "FakeRestrictedKey01234567"),
    (
        "vendor",
        "stripe-webhook-secret",
        "verify signature whsec_FakeWebhookSigningSecret0123",
        "FakeWebhookSigningSecret0123",
    ),
    (
        "vendor",
        "twilio-sid",
        "twilio account ACfa4e0000000000000000000000000000fake0",
        "ACfa4e0000000000000000000000000000",
    ),
    (
        "vendor",
        "npm-token",
        "//registry.npmjs.org/:_authToken=npm_FakeNpmToken0123456789abcdefghijklmn",
        "FakeNpmToken0123456789",
    ),
    (
        "vendor",
        "pypi-token",
        "twine using pypi-AgEIcHlwaS5vcmcFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake01",
        "AgEIcHlwaS5vcmcFakeFake",
    ),
    (
        "vendor",
        "azure-storage-key",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=RmFrZUF6dXJlS2V5MDEyMzQ1Njc4OQ==;",
        "RmFrZUF6dXJlS2V5MDEyMzQ1Njc4OQ==",
    ),
    (
        "vendor",
        "azure-sas",
        "https://acct.blob.core.windows.net/c/f?sv=2022-11-02&sig=FakeSasSig0123%2Bxyz%3D",
        "FakeSasSig0123",
    ),
    (
        "vendor",
        "jwt",
        "id_token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmYWtlLXVzZXIifQ.ZmFrZS1zaWduYXR1cmUtdmFsdWU",
        "eyJzdWIiOiJmYWtlLXVzZXIifQ",
    ),
    (
        "vendor",
        "mailchimp",
        "mailchimp key 0123456789abcdef0123456789abcdef-us14 rejected",
        "0123456789abcdef0123456789abcdef",
    ),
    # Airflow, Kubernetes, cookies, SMTP
    (
        "airflow",
        "fernet-key-env",
        "AIRFLOW__CORE__FERNET_KEY=ZmFrZUZlcm5ldEtleUZvclRlc3RzMDEyMzQ1Njc4OTA=",
        "ZmFrZUZlcm5ldEtleUZvclRlc3RzMDEyMzQ1Njc4OTA",
    ),
    (
        "airflow",
        "fernet-key-bare",
        "InvalidToken with key b'Rk9vRmFrZUZlcm5ldEtleTAxMjM0NTY3ODlhYmNkZWY='",
        "Rk9vRmFrZUZlcm5ldEtleTAxMjM0NTY3ODlhYmNkZWY",
    ),
    (
        "airflow",
        "webserver-secret-key",
        "AIRFLOW__API__SECRET_KEY='fake-flask-secret-0099'",
        "fake-flask-secret-0099",
    ),
    ("airflow", "kubeconfig-client-key-data", "    client-key-data: " + _KUBE_KEY, _KUBE_KEY[:30]),
    (
        "airflow",
        "kubeconfig-token",
        "    token: kube-sa-FakeServiceAccountToken01",
        "kube-sa-FakeServiceAccountToken01",
    ),
    (
        "airflow",
        "cookie-header",
        "send: b'Cookie: sessionid=FakeSess10nId; csrftoken=FakeCsrf77'",
        "FakeSess10nId",
    ),
    (
        "airflow",
        "set-cookie",
        "header: Set-Cookie: session=FakeSetCookieVal99; Path=/; HttpOnly",
        "FakeSetCookieVal99",
    ),
    (
        "airflow",
        "cookie-jar",
        "cookies=<RequestsCookieJar[<Cookie auth_sess=FakeJarCookie42 for .acme.io/>]>",
        "FakeJarCookie42",
    ),
    ("airflow", "smtp-auth-plain", f"send: 'AUTH PLAIN {_PLAIN_AUTH}\\r\\n'", _PLAIN_AUTH),
    (
        "airflow",
        "bearer-header",
        "Authorization: Bearer FakeBearerTok3n0123456789",
        "FakeBearerTok3n0123456789",
    ),
    (
        "airflow",
        "basic-header",
        "headers={'Authorization': 'Basic ZmFrZTpiYXNpY3Bhc3M='}",
        "ZmFrZTpiYXNpY3Bhc3M=",
    ),
    ("airflow", "x-api-key-header", "x-api-key: FakeXApiKey0123456789", "FakeXApiKey0123456789"),
    # hard-coded secrets in traceback source lines
    (
        "source",
        "source-kwarg",
        '    conn = psycopg2.connect(host="db", password="S0urceLinePw")',
        "S0urceLinePw",
    ),
    ("source", "source-constant", '    API_TOKEN = "fake-source-token-8877"', "fake-source-token-8877"),
    # multi-line blocks
    (
        "block",
        "pem-rsa",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAfakeRSAkeyLineOne00\nFakeRSAkeyLineTwo11==\n-----END RSA PRIVATE KEY-----",
        "FakeRSAkeyLineTwo11",
    ),
    (
        "block",
        "pem-openssh",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAFakeOpenSSH\n-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAAFakeOpenSSH",
    ),
    (
        "block",
        "pem-truncated",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIFakeTruncatedECkey0123456789",
        "MHcCAQEEIFakeTruncatedECkey",
    ),
    ("block", "pgp-private-key", _PGP, "lQOYBGZfakePGPkeyMaterialLine1"),
    (
        "block",
        "service-account-json-one-line",
        "keyfile " + _KEYFILE,
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDfakeFAKEfake",
    ),
    (
        "block",
        "service-account-json-pretty",
        '{\n  "type": "service_account",\n  "private_key_id": "fa4e00112233445566778899aabbccddeeff0011",\n'
        '  "private_key": "' + _SA_PEM + '",\n  "client_email": "x@y.iam.gserviceaccount.com"\n}',
        "fa4e00112233445566778899aabbccddeeff0011",
    ),
]

_FORMATS += NEW_FORMATS  # issue #23's second pass: values on other lines, tables, flags, entropy...

SECRETS = [pytest.param(line, secret, id=f"{family}:{case_id}") for family, case_id, line, secret in _FORMATS]
REF = FailureRef(dag_id="warehouse_load", run_id="scheduled__2024-06-17", task_id="load", try_number=1)


def test_the_table_covers_at_least_120_formats_in_every_family():
    families = Counter(family for family, *_ in _FORMATS)
    assert len(_FORMATS) >= 120
    assert len({case_id for _, case_id, *_ in _FORMATS}) == len(_FORMATS)
    assert set(families) == {
        "key_value",
        "cli",
        "uri",
        "encoded",
        "vendor",
        "airflow",
        "source",
        "block",
        "next_line",
        "table",
        "locals",
        "headers",
        "signature",
        "escaped",
        "entropy",
    }


def _text_log(line: str) -> str:
    """An Airflow 2 log: the line printed before the failure and again in the exception's message."""
    first, *rest = line.split("\n")
    return "\n".join(
        [
            "[2024-06-17T19:33:10.101+0000] {taskinstance.py:1157} INFO - Dependencies all met",
            f"[2024-06-17T19:33:11.202+0000] {{subprocess.py:93}} INFO - {first}",
            *rest,
            "[2024-06-17T19:33:12.430+0000] {taskinstance.py:2905} ERROR - Task failed with exception",
            "Traceback (most recent call last):",
            '  File "/opt/airflow/dags/warehouse_load.py", line 42, in load',
            "    run(command)",
            f"RuntimeError: load failed: {line}",
            "[2024-06-17T19:33:12.440+0000] {taskinstance.py:1206} INFO - Marking task as FAILED.",
        ]
    )


def _structured_log(line: str) -> list[dict]:
    """An Airflow 3 log: the line as a record and as the failing exception's message."""
    return [
        {"timestamp": "2024-06-17T19:33:11.202Z", "level": "info", "logger": "task.stdout", "event": line},
        {
            "timestamp": "2024-06-17T19:33:12.430Z",
            "level": "error",
            "logger": "task",
            "event": "Task failed with exception",
            "error_detail": [
                {
                    "exc_type": "RuntimeError",
                    "exc_value": f"load failed: {line}",
                    "frames": [
                        {"filename": "/opt/airflow/dags/warehouse_load.py", "lineno": 42, "name": "load"}
                    ],
                    "is_cause": False,
                }
            ],
        },
    ]


def _everything_that_leaves(log) -> dict[str, str]:
    """Each place log text goes, as text: excerpt fields, the prompt, email, Slack and the
    Human-in-the-loop approval body."""
    record = excerpt_record(extract_excerpt(log))
    diagnosis = {  # a model that quotes the log back in every field people read
        "diagnosis": {
            "error_class": "unknown",
            "root_cause": record["message"],
            "transient": False,
            "recommended_action": "escalate",
            "confidence": 0.4,
            "fix_steps": [record["message"], *record["causes"]],
            "evidence": record["text"].splitlines()[-5:],
            "model": "claude-test",
        },
        "diagnoser": "llm",
    }
    msg = build_message(
        REF, record, diagnosis, {"verdict": "escalate", "reasons": ["not retry-safe"]}, None, None, "run-1"
    )
    slack: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            slack.append(node)

    walk(render_blocks(msg))
    return {
        "excerpt text (stored case)": record["text"],
        "excerpt message": record["message"],
        "excerpt causes": "\n".join(record["causes"]),
        "excerpt context": "\n".join(record["context"]),
        "prompt": user_prompt(REF, record, []),
        "email text": msg["subject"] + "\n" + msg["text"],
        "email html": html.unescape(render_html(msg)),
        "slack": "\n".join(slack),
        # As a person reads it: CommonMark backslash escapes (messages.markdown_text) taken out, so
        # that a secret with punctuation cannot hide behind them.
        "approval body": re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", render_approval_body(msg)),
    }


@pytest.mark.parametrize("shape", [_text_log, _structured_log], ids=["airflow2-text", "airflow3-records"])
@pytest.mark.parametrize(("line", "secret"), SECRETS)
def test_no_secret_reaches_the_excerpt_prompt_store_email_or_slack(line, secret, shape):
    places = _everything_that_leaves(shape(line))
    leaks = [place for place, text in places.items() if secret in text]
    assert not leaks, f"{secret!r} leaked into {leaks}"
    assert "***" in places["excerpt text (stored case)"]


@pytest.mark.parametrize(("line", "secret"), SECRETS)
def test_redact_alone_removes_the_secret(line, secret):
    out = redact(line)
    assert secret not in out
    assert "***" in out
    assert out.count("\n") == line.count("\n")  # lines never move: the excerpt's window stays put


def test_a_private_key_longer_than_the_excerpt_window_is_masked_where_the_window_falls():
    body = [base64.b64encode(f"fake key material line {i:04d}".encode() * 2).decode() for i in range(300)]
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----"
    log = _text_log("loading deploy key").replace(
        "INFO - loading deploy key", "INFO - loading deploy key\n" + pem + "\nkey loaded"
    )
    excerpt = extract_excerpt(log)
    assert "Traceback" in excerpt.text
    assert not any(line in excerpt.text for line in body)


def test_a_key_block_without_its_begin_line_in_the_window_is_still_masked():
    body = ["MIIEowIBAAKCAQEAfakefakefake" + f"{i:04d}" * 8 for i in range(60)]
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(body)  # truncated: no END line
    excerpt = extract_excerpt(pem + "\n" + _text_log("stage done"))
    assert not any(line in excerpt.text for line in body)


def test_a_token_straddling_the_message_cut_is_redacted_before_the_cut():
    secret = "sk-proj-StraddleFake_0123456789abcdefghijklmnop"
    line = "x" * 480 + " key " + secret
    for log in (_text_log(line), _structured_log(line)):
        places = _everything_that_leaves(log)
        assert not [p for p, text in places.items() if "StraddleFake" in text]


def test_a_secret_registered_with_airflows_masker_is_masked(monkeypatch):
    import airflow.sdk.log

    monkeypatch.setattr(airflow.sdk.log, "redact", lambda text: text.replace("plain-looking-value", "***"))
    assert "plain-looking-value" not in redact("connected as svc with plain-looking-value")


@pytest.mark.parametrize(
    "line",
    [
        'psycopg2.OperationalError: connection to server at "db", port 5432 failed: Connection refused',
        "KeyError: 'customer_id'",
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443): Read timed out.",
        'password authentication failed for user "etl"',
        "mkdir -p /tmp/staging && psql -h db -p 5432 -U etl",
        "docker run -p 8080:8080 acme/app:1.2",
        "mysql -h db -P 3306 -u etl --protocol=tcp",
        "Uploading s3://bucket/path/part-0001.parquet (12.3 MiB)",
        "airflow.exceptions.AirflowException: Bash command failed. The command returned a non-zero exit code 1.",
        "Marking task as FAILED. dag_id=etl, task_id=load, run_id=scheduled__2024-06-17T00:00:00+00:00",
    ],
)
def test_error_text_without_secrets_is_unchanged(line):
    assert redact(line) == line


def test_context_is_kept():
    assert redact("postgresql://etl:pw12345@db:5432/x") == "postgresql://etl:***@db:5432/x"
    assert redact("password=abc12345 host=db") == "password=*** host=db"
    assert redact("curl -u deploy:pw99 https://x") == "curl -u deploy:*** https://x"
    assert redact("mysql -h db -P 3306 -u etl -pS3cr3t") == "mysql -h db -P 3306 -u etl -p***"


# -- hostile text: linear time and every shape of input -----------------------------------------------


@pytest.mark.parametrize(
    "run",
    [
        "a",
        "=",
        ":",
        "/",
        "%",
        "%41",
        "a-",
        "password=",
        "eyJ-",
        "a://",
        "sk-",
        "-p ",
        "<token>",
        '\\"',
        "LS0tLS1CRUdJT",
    ],
)
def test_a_one_megabyte_line_of_any_run_gives_an_excerpt(run):
    """Every pattern is linear: a 1 MB line of one repeated run is bounded and redacted (timings: bench/redact.py)."""
    line = run * (1_000_000 // len(run))
    start = time.perf_counter()
    excerpt = extract_excerpt(_text_log(line))
    assert excerpt.exception_type == "RuntimeError"
    assert len(excerpt.text.encode()) <= MAX_EXCERPT_BYTES
    assert time.perf_counter() - start < 60  # a stall, not a speed figure: super-linear took hours


def _strings(excerpt) -> list[str]:
    data = excerpt.model_dump()
    return [v for v in data.values() if isinstance(v, str)] + data["causes"] + data["context"]


def _assert_clean(excerpt):
    """Every field is valid UTF-8 without NUL or ESC, and bounded."""
    for value in _strings(excerpt):
        value.encode("utf-8")  # raises on a lone surrogate
        assert "\x00" not in value and "\x1b" not in value
    json.dumps(excerpt.model_dump(), ensure_ascii=False).encode("utf-8")
    assert len(excerpt.text.encode()) <= MAX_EXCERPT_BYTES
    assert len(excerpt.message) <= 600 and len(excerpt.operator or "") <= 300
    assert len(excerpt.exception_type or "") <= 200


def _failure_record(**detail) -> dict:
    return {"level": "error", "logger": "task", "event": "Task failed with exception", "error_detail": detail}


_FRAME = {"filename": "/opt/airflow/dags/etl.py", "lineno": 7, "name": "load"}
_SHAPES = [
    pytest.param(
        [_failure_record(exc_type="ValueError", exc_value="bad row 7", frames=[_FRAME])],
        "ValueError",
        id="dict",
    ),
    pytest.param(
        [{"level": "error", "event": "Task failed with exception", "error_detail": "ValueError: bad row 7"}],
        "ValueError",
        id="string-error-detail",
    ),
    pytest.param(
        [
            {
                "level": "error",
                "event": "boom",
                "exception": 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nValueError: bad row 7',
            }
        ],
        "ValueError",
        id="string-exception",
    ),
    pytest.param(
        [
            {
                "level": "error",
                "event": "Task failed with exception",
                "exception": [{"exc_type": "ValueError", "exc_value": "bad row 7", "frames": []}],
            }
        ],
        "ValueError",
        id="structlog-dict-tracebacks",
    ),
    pytest.param(
        [_failure_record(exc_type="ValueError", exc_value="bad row 7", frames=5)],
        "ValueError",
        id="frames-int",
    ),
    pytest.param(
        [_failure_record(exc_type="ValueError", exc_value="bad row 7", frames=[1, "x", None, [2], _FRAME])],
        "ValueError",
        id="frames-non-dict-items",
    ),
    pytest.param(
        [
            _failure_record(
                exc_type=123, exc_value={"row": 7}, frames=[{"filename": None, "lineno": "x" * 5000}]
            )
        ],
        "123",
        id="non-string-type-and-value",
    ),
    pytest.param(
        [
            _failure_record(
                exc_type="ExceptionGroup",
                exc_value="2 sub-exceptions",
                is_group=True,
                exc_notes="while loading partition 7",
                exceptions={"exc_type": "KeyError", "exc_value": "'customer_id'", "frames": []},
            )
        ],
        "KeyError",
        id="group-members-as-dict-and-note-as-string",
    ),
    pytest.param(
        [_failure_record(exc_type="ValueError", exc_value="bad row " + "9" * 10_000_000, frames=[_FRAME])],
        "ValueError",
        id="ten-megabyte-message",
    ),
    pytest.param(
        [
            _failure_record(
                exc_type="UnicodeDecodeError", exc_value="cannot read /data/caf\udce9.csv", frames=[_FRAME]
            )
        ],
        "UnicodeDecodeError",
        id="lone-surrogate",
    ),
    pytest.param(
        [
            {
                "level": "err\x00or\x1b[31m",
                "logger": "task\x00\x1b]0;pwned\x07",
                "timestamp": "2024\x00",
                "event": "Task failed with exception",
                "error_detail": [
                    {
                        "exc_type": "Value\x00Error",
                        "exc_value": "bad\x00 row\x1b[2J",
                        "frames": [{"filename": "/dags/e\x00tl.py", "lineno": "7\x1b", "name": "lo\x00ad"}],
                    }
                ],
            }
        ],
        "ValueError",
        id="nul-and-esc-in-every-field",
    ),
    pytest.param(
        [None, 5, 3.5, ["nested"], {"no_event": True}, _failure_record(exc_type="ValueError", exc_value="x")],
        "ValueError",
        id="records-of-any-type",
    ),
    pytest.param(
        "[2024-06-17T19:33:12] {taskinstance.py:2905} ERROR - Task failed with exception\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        + "    run("
        + "A" * 5_000_000
        + "Operator"
        + ")\nValueError: bad row 7",
        "ValueError",
        id="five-megabyte-operator-name",
    ),
]


@pytest.mark.parametrize(("log", "exception_type"), _SHAPES)
def test_any_error_detail_shape_gives_a_clean_bounded_excerpt(log, exception_type):
    excerpt = extract_excerpt(log)
    _assert_clean(excerpt)
    assert excerpt.exception_type == exception_type
    assert excerpt.message or exception_type == "123"


def test_a_lone_surrogate_is_replaced_and_the_rest_kept():
    excerpt = extract_excerpt([_failure_record(exc_type="OSError", exc_value="no such file: caf\udce9.csv")])
    assert excerpt.message.startswith("no such file: caf") and excerpt.message.endswith(".csv")
    assert "\ufffd" in excerpt.message


def test_zero_width_and_bidi_characters_are_made_visible():
    excerpt = extract_excerpt("ERROR - Task failed: approve\u202e\u200bretry now")
    assert "\u202e" not in excerpt.message and "\u200b" not in excerpt.message
    assert "\ufffd" in excerpt.message


def test_an_exception_group_renders_its_members_and_notes():
    log = [
        _failure_record(
            exc_type="ExceptionGroup",
            exc_value="load failed (2 sub-exceptions)",
            is_group=True,
            exc_notes=["partition 2024-06-17"],
            exceptions=[
                [{"exc_type": "KeyError", "exc_value": "'customer_id'", "frames": [_FRAME]}],
                [{"exc_type": "TimeoutError", "exc_value": "read timed out", "frames": []}],
            ],
        )
    ]
    excerpt = extract_excerpt(log)
    assert excerpt.exception_type == "KeyError"
    assert "TimeoutError: read timed out" in excerpt.text and "partition 2024-06-17" in excerpt.text


def test_a_ten_megabyte_message_is_bounded_before_it_is_redacted():
    secret = "Tail5ecretPw"
    excerpt = extract_excerpt(
        [_failure_record(exc_type="ValueError", exc_value="x" * 10_000_000 + f" password={secret}")]
    )
    assert secret not in excerpt.text and secret not in excerpt.message
    assert len(excerpt.message) <= MAX_FIELD_CHARS


@pytest.mark.parametrize("log", [None, 5, b"", "", [], {}, b"\xff\xfe\x00\x00"], ids=repr)
def test_degenerate_logs_give_an_excerpt(log):
    _assert_clean(extract_excerpt(log))


def test_a_hundred_megabyte_log_keeps_its_tail():
    noise = ("[2024-06-17T19:33:10] {x.py:1} INFO - row loaded " + "x" * 50 + "\n") * 1_000_000
    excerpt = extract_excerpt(noise + _text_log("token=Hundred0MegTok"))
    assert excerpt.exception_type == "RuntimeError"
    assert "Hundred0MegTok" not in excerpt.text and "Hundred0MegTok" not in excerpt.message


# -- offsets that cannot shift ------------------------------------------------------------------------

# Characters whose case mappings change length or behave unusually: U+0130 (lower() is two code
# points), sharp s and ligatures (upper() grows), final sigma, a combining mark, full-width letters,
# an emoji, a lone replacement character, and plain ASCII around them.
TRICKY = "\u0130\u00df\ufb01\u03c2\u0307\uff30\U0001f600\ufffd" + "abcXYZ09 =:_-/."


def test_fold_keeps_the_length_of_every_code_point():
    from airflow_doctor.logs.redact import fold

    every = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000)
    assert len(fold(every)) == len(every)
    assert fold("PASSWORD \u0130X") == "password ix"


@pytest.mark.parametrize("seed", range(60))
def test_a_secret_below_any_unicode_text_is_never_kept(seed):
    """Random lines of case-changing and other hostile characters, then a credential line: the
    redactor finds keywords on a copy whose offsets match the text, so the value is always masked."""
    import random

    rng = random.Random(seed)  # noqa: S311 - test data
    lines = [
        "".join(rng.choice(TRICKY) for _ in range(rng.randint(0, 120))) for _ in range(rng.randint(1, 30))
    ]
    secret = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789") for _ in range(20))
    where = rng.randint(0, len(lines))
    key = rng.choice(["password", "PASSWORD", "Password", "db_password", "api_key", "secret"])
    lines.insert(where, f"connecting to the warehouse with {key}={secret} (attempt 1)")
    out = redact("\n".join(lines))
    assert secret not in out, (seed, key)


# -- tokens that are not secrets ----------------------------------------------------------------------


@pytest.mark.parametrize("line", KEPT)
def test_hashes_ids_and_paths_without_a_credential_word_near_are_kept(line):
    """The entropy check runs near credential words, and alone only on long mixed-case tokens:
    git SHAs, UUIDs, trace ids, digests, paths, S3 keys and run ids stay readable."""
    assert redact(line) == line


def test_a_random_token_is_masked_near_a_credential_word_and_kept_far_from_one():
    token = "Zx81Kq0Lw7Nv3Mb5Pj"
    assert token not in redact(f"api token: {token}")
    assert redact(f"batch {token} loaded") == f"batch {token} loaded"


# -- values on another line: offsets of the lines around them -------------------------------------------

_MULTI_LINE = [
    "- name: DB_PASSWORD\n  value: {secret}",
    "password:\n  {secret}",
    "  user      password\n0  etl       {secret}",
    " id | token\n----+------\n  1 | {secret}",
    'expect "password:"\nsend "{secret}\\r"',
    "machine h\n  login u\n  password {secret}",
]


@pytest.mark.parametrize("seed", range(40))
def test_a_value_below_its_key_among_any_unicode_text_is_never_kept(seed):
    """Random lines of case-changing and other hostile characters around a key whose value is on a
    later line: the value is masked wherever it falls, and the line count is kept."""
    import random

    rng = random.Random(seed)  # noqa: S311 - test data
    lines = [
        "".join(rng.choice(TRICKY) for _ in range(rng.randint(0, 80))) for _ in range(rng.randint(1, 20))
    ]
    secret = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789") for _ in range(14))
    planted = rng.choice(_MULTI_LINE).format(secret=secret)
    lines.insert(rng.randint(0, len(lines)), planted)
    if rng.random() < 0.5:  # an empty line after it, as a record's end
        lines.append("")
    text = "\n".join(lines)
    out = redact(text)
    assert secret not in out, (seed, planted)
    assert out.count("\n") == text.count("\n")


@pytest.mark.parametrize(
    "run",
    [
        "user  password\n",
        " id | token\n",
        "- name: DB_PASSWORD\n",
        "secret: |\n",
        'expect "password:"\n',
        "+ cat secret\n",
        "pass\nword=x\n",
        "a:1:b:c:d\n",
    ],
)
def test_a_megabyte_of_lines_that_start_cross_line_rules_gives_an_excerpt(run):
    """Every line a table header, a key without its value or a prompt: each line is read as a row
    once, so the work stays linear (timings: bench/redact.py)."""
    start = time.perf_counter()
    excerpt = extract_excerpt(_text_log(run * (1_000_000 // len(run))))
    assert excerpt.exception_type == "RuntimeError"
    assert time.perf_counter() - start < 60  # a stall, not a speed figure: table headers were quadratic
