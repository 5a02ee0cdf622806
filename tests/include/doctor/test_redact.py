"""Redaction: each secret format is removed and its context kept."""

from __future__ import annotations

import pytest

from include.doctor.redact import redact

# (log line containing a secret, the secret) — every secret here is fake.
SECRETS = [
    pytest.param(
        "Authorization: Bearer abcdEFGH1234ijklMNOP5678", "abcdEFGH1234ijklMNOP5678", id="bearer-header"
    ),
    pytest.param(
        "headers={'Authorization': 'Basic dXNlcjpwYXNzd29yZA=='}", "dXNlcjpwYXNzd29yZA==", id="basic-auth"
    ),
    pytest.param(
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        id="jwt",
    ),
    pytest.param("using key AKIAIOSFODNN7EXAMPLE for s3", "AKIAIOSFODNN7EXAMPLE", id="aws-access-key-id"),
    pytest.param(
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG",
        id="aws-secret-key",
    ),
    pytest.param(
        "AWS_SESSION_TOKEN: FwoGZXIvYXdzEBYaDHh4eHh4eHh4eHh4eHh4", "FwoGZXIvYXdzEBYaDHh4", id="aws-session"
    ),
    pytest.param(
        "key=AIzaSyA1234567890abcdefghijklmnopqrstu0 in url",
        "AIzaSyA1234567890abcdefghijklmnopqrstu0",
        id="gcp-api-key",
    ),
    pytest.param(
        '{"type": "service_account", "private_key_id": "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"}',
        "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
        id="gcp-private-key-id",
    ),
    pytest.param(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==;",
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==",
        id="azure-storage-key",
    ),
    pytest.param(
        "https://acct.blob.core.windows.net/c?sv=2022&sig=abcDEF123%2Bxyz%3D",
        "abcDEF123%2Bxyz%3D",
        id="azure-sas-signature",
    ),
    pytest.param(
        "slack token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AbCdEfGhIjKlMnOpQrStUvWx",
        id="slack-bot-token",
    ),
    pytest.param(
        "posting to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "XXXXXXXXXXXXXXXXXXXXXXXX",
        id="slack-webhook",
    ),
    pytest.param(
        "git clone https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        id="github-token",
    ),
    pytest.param(
        "GITHUB_TOKEN github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "github_pat_11ABCDEFG0123456789",
        id="github-fine-grained",
    ),
    pytest.param(
        "x-api-key: sk-ant-api03-AbCdEf0123456789-XyZ", "sk-ant-api03-AbCdEf0123456789", id="anthropic-key"
    ),
    pytest.param(
        "OPENAI key sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "abcdefghijklmnopqrstuvwxyz012345",
        id="openai-key",
    ),
    pytest.param("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", id="stripe-key"),
    pytest.param(
        "postgresql://etl_user:Hunter2Pass@db.internal:5432/warehouse", "Hunter2Pass", id="postgres-uri"
    ),
    pytest.param("mysql+pymysql://root:my$ecretPw@mysql:3306/app", "my$ecretPw", id="mysql-uri"),
    pytest.param("redis://:redisPassw0rd@cache:6379/0", "redisPassw0rd", id="redis-uri-no-user"),
    pytest.param("amqp://guest:RabbitPw99@rabbit:5672//", "RabbitPw99", id="amqp-uri"),
    pytest.param("connecting with password=SuperSecret42 to host", "SuperSecret42", id="password-kv"),
    pytest.param("config: {'api_key': 'abcd1234efgh5678'}", "abcd1234efgh5678", id="api-key-dict"),
    pytest.param("client_secret: 9f8e7d6c5b4a3210", "9f8e7d6c5b4a3210", id="client-secret"),
    pytest.param("SNOWFLAKE_PASSWORD=Sn0wfl@keP4ss", "Sn0wfl@keP4ss", id="env-password"),
    pytest.param("token=ghs_0123456789abcdefghijABCDEFGHIJ0123", "ghs_0123456789abcdefghij", id="token-kv"),
    pytest.param(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x9\nabc123\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEA7x9",
        id="private-key-pem",
    ),
    pytest.param(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        "b3BlbnNzaC1rZXktdjEAAAAA",
        id="truncated-private-key",
    ),
    pytest.param(
        "Proxy-Authorization: Digest username=x, response=6629fae49393a05397450978507c4ef1",
        "6629fae49393a05397450978507c4ef1",
        id="proxy-auth",
    ),
]


@pytest.mark.parametrize(("line", "secret"), SECRETS)
def test_secret_is_removed(line, secret):
    out = redact(line)
    assert secret not in out
    assert "***" in out


@pytest.mark.parametrize(
    "line",
    [
        'psycopg2.OperationalError: connection to server at "db", port 5432 failed: Connection refused',
        "KeyError: 'customer_id'",
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443): Read timed out.",
        'password authentication failed for user "etl"',
    ],
)
def test_error_text_without_secrets_is_unchanged(line):
    assert redact(line) == line


def test_context_is_kept():
    assert redact("postgresql://etl:pw12345@db:5432/x") == "postgresql://etl:***@db:5432/x"
    assert redact("password=abc12345 host=db") == "password=*** host=db"
