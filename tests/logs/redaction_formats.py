"""Secret formats of issue #23's second pass, for tests/logs/test_redact.py's table.

(family, id, a log line (or lines) holding a fake secret, the secret). Every value is invented for
these tests; none is copied from a real log. Families: values on another line than their key
(`next_line`), tables and data frames (`table`), rich traceback locals (`locals`), raw HTTP header
tuples (`headers`), presigned URL signatures (`signature`), password flags of common CLIs (`cli`),
newer vendor prefixes (`vendor`), hex, base64 and UTF-16 wrapping (`escaped`), random-looking tokens
near a credential word or long and alone (`entropy`), source lines (`source`), key/value shapes
(`key_value`) and encoded connection URIs (`encoded`).
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus


def _hex_escaped(text: str) -> str:
    return "".join(f"\\x{b:02x}" for b in text.encode())


_B64_USER_PW = base64.b64encode(b"svc_loader:Qz8vLmN3pRt").decode()
_B64_JSON = base64.b64encode(json.dumps({"user": "etl", "password": "Jx4mWq9Lz"}).encode()).decode()
_B64_KEYFILE = base64.b64encode(
    json.dumps({"type": "service_account", "private_key": "Mk3yMaterialFakeZq77"}).encode()
).decode()
_OAUTH_KEYFILE = json.dumps(
    {"installed": {"client_id": "4411-fakeclient.apps.example.com", "client_secret": "GoCl1entSecr3tFake"}}
)

NEW_FORMATS = [
    # values on another line than their key
    (
        "next_line",
        "k8s-env-next-line",
        "env:\n- name: DB_PASSWORD\n  value: KubeEnvPw71",
        "KubeEnvPw71",
    ),
    (
        "next_line",
        "k8s-env-quoted-next-line",
        '        - name: STRIPE_API_TOKEN\n          value: "k8sQuotedTok44"',
        "k8sQuotedTok44",
    ),
    ("next_line", "yaml-key-then-value", "warehouse:\n  password:\n    Yv9NextLinePw", "Yv9NextLinePw"),
    (
        "next_line",
        "yaml-block-scalar",
        "client_secret: |\n  BlockScalarS3cret\nregion: eu",
        "BlockScalarS3cret",
    ),
    ("next_line", "wrapped-value", "connecting with db_password=\nWr4ppedValuePw", "Wr4ppedValuePw"),
    (
        "next_line",
        "wrapped-key",
        "settings: host=db port=5432 user=etl db_pass\nword=Sp1itKeyPw9",
        "Sp1itKeyPw9",
    ),
    ("next_line", "netrc-lines", "machine api.acme.test\n  login etl\n  password NetrcLin3Pw", "NetrcLin3Pw"),
    (
        "next_line",
        "expect-send",
        'expect "Password:"\nsend "Exp3ctSendPw\\r"\nexpect eof',
        "Exp3ctSendPw",
    ),
    (
        "next_line",
        "pprint-env-dict",
        "{'env': [{'name': 'SNOWFLAKE_PASSWORD',\n          'value': 'PprintEnvPw33',",
        "PprintEnvPw33",
    ),
    ("next_line", "cat-secret-file", "+ cat /run/secrets/db_password\nCatSecretF1le", "CatSecretF1le"),
    ("next_line", "key-alone-on-its-line", "  Password\n  KeyAloneVal7", "KeyAloneVal7"),
    (
        "next_line",
        "expect-regex-prompt",
        'expect -re "(P|p)assword:"\nsend -- "ExpRegexPw\\r"',
        "ExpRegexPw",
    ),
    (
        "next_line",
        "json-env-pretty",
        '{\n  "name": "WAREHOUSE_SECRET",\n  "value": "JsonPrettyS3c"\n}',
        "JsonPrettyS3c",
    ),
    ("next_line", "pgpass-line", "db.internal:5432:warehouse:etl:PgPassL1ne", "PgPassL1ne"),
    (
        "next_line",
        "k8s-env-every-line-prefixed",
        "[2024-06-17T19:33:11.202+0000] {pod_manager.py:490} INFO -       - name: API_SECRET\n"
        "[2024-06-17T19:33:11.202+0000] {pod_manager.py:490} INFO -         value: PrefixedK8sS3c",
        "PrefixedK8sS3c",
    ),
    # tables and data frames with a secret column
    (
        "table",
        "pandas-frame",
        "   user       password   host\n0  etl        PdFrameP1  db1\n1  loader     PdFrameP2  db2",
        "PdFrameP2",
    ),
    (
        "table",
        "psql-table",
        " id | username |   api_token\n----+----------+---------------\n  1 | etl      | PsqlColTok771",
        "PsqlColTok771",
    ),
    (
        "table",
        "spark-show",
        "+---+-------+-------------+\n| id|user   |secret       |\n+---+-------+-------------+\n"
        "|  1|etl    |SparkShowS3c |\n+---+-------+-------------+",
        "SparkShowS3c",
    ),
    ("table", "psql-expanded", "-[ RECORD 1 ]--\nusername | etl\npassword | PsqlExpandPw5", "PsqlExpandPw5"),
    (
        "table",
        "pandas-series",
        "user              etl\npassword          SeriesPw8812\ndtype: object",
        "SeriesPw8812",
    ),
    # rich tracebacks' locals
    ("locals", "rich-locals-password", "│ │ password = 'R1chL0calPw'              │ │", "R1chL0calPw"),
    ("locals", "rich-locals-token", "│   token = 'RichTok3nVal'  │\n│   retries = 3  │", "RichTok3nVal"),
    ("locals", "rich-locals-dict", "│ conf = {'user': 'etl', 'api_key': 'R1chDictKey'} │", "R1chDictKey"),
    # raw HTTP header tuples
    (
        "headers",
        "h11-authorization",
        "headers=[(b'authorization', b'Bearer H11BearerTok99')]",
        "H11BearerTok99",
    ),
    (
        "headers",
        "tuple-x-api-key",
        "sending [('X-Api-Key', 'TupleXApiKey77'), ('Accept', '*/*')]",
        "TupleXApiKey77",
    ),
    ("headers", "tuple-dd-app-key", "[('DD-APPLICATION-KEY', 'DdAppKeyTup55')]", "DdAppKeyTup55"),
    # presigned URLs
    (
        "signature",
        "s3-presigned",
        "GET https://b.s3.amazonaws.com/k.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=f4e3d2c1b0a9fake88",
        "f4e3d2c1b0a9fake88",
    ),
    (
        "signature",
        "s3-security-token",
        "url=...&X-Amz-Security-Token=IQoJFakeSessionTok3n&X-Amz-Expires=900",
        "IQoJFakeSessionTok3n",
    ),
    (
        "signature",
        "gcs-signed-url",
        "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature=9a8bFakeGoogSig",
        "9a8bFakeGoogSig",
    ),
    (
        "signature",
        "cloudfront-signature",
        "https://d1.cloudfront.net/v.mp4?Expires=1700000000&Signature=CfFakeSig~abc-&Key-Pair-Id=K2F",
        "CfFakeSig~abc-",
    ),
    (
        "signature",
        "json-escaped-ampersand",
        '{"url": "https://b.s3.amazonaws.com/k?X-Amz-Date=1\\u0026X-Amz-Signature=9c8bJsonEscSig"}',
        "9c8bJsonEscSig",
    ),
    # password flags of common CLIs, and query engines
    ("cli", "redis-cli-a", "redis-cli -h cache -p 6379 -a R3disCliPw info", "R3disCliPw"),
    ("cli", "ldapsearch-w", "ldapsearch -x -D cn=admin,dc=acme -w LdapB1ndPw -b dc=acme", "LdapB1ndPw"),
    (
        "cli",
        "ldapsearch-y",
        "ldapmodify -D cn=admin -y /run/secrets/LdapPwF1le -f x.ldif",
        "/run/secrets/LdapPwF1le",
    ),
    (
        "cli",
        "aws-configure-set",
        "aws configure set aws_secret_access_key CfgS3tSecret9 --profile etl",
        "CfgS3tSecret9",
    ),
    ("cli", "duckdb-set", "D SET s3_secret_access_key='DuckS3tSecr3t';", "DuckS3tSecr3t"),
    (
        "cli",
        "duckdb-create-secret",
        "CREATE SECRET s3c (TYPE S3, KEY_ID 'kid01', SECRET 'DuckCreat3Sec', REGION 'eu-west-1')",
        "DuckCreat3Sec",
    ),
    ("cli", "smbclient-percent", "smbclient //fs/share -U etl%SmbPerc3ntPw -c ls", "SmbPerc3ntPw"),
    ("cli", "openssl-passin", "openssl pkcs12 -in c.p12 -passin pass:OsslPassIn7 -nodes", "OsslPassIn7"),
    ("cli", "datadog-app-key", "datadog-ci --app-key DdAppKeyCli42 --api-key DdApiKeyCli43", "DdAppKeyCli42"),
    ("cli", "spark-s3a-secret", "--conf spark.hadoop.fs.s3a.secret.key=S3aSecretKey91", "S3aSecretKey91"),
    (
        "cli",
        "password-stdin",
        'echo "D0ckStd1nPw" | docker login -u ci --password-stdin reg.acme.test',
        "D0ckStd1nPw",
    ),
    ("cli", "chpasswd", "echo 'etl:ChpasswdPw3' | sudo chpasswd", "ChpasswdPw3"),
    ("cli", "htpasswd-batch", "htpasswd -bc /etc/nginx/.htpasswd admin HtBatchPw4", "HtBatchPw4"),
    ("cli", "rabbitmqctl-add-user", "rabbitmqctl add_user etl RabbitAddPw5", "RabbitAddPw5"),
    # newer vendor prefixes
    (
        "vendor",
        "hugging-face",
        "HfHubHTTPError using hf_FakeHuggingFaceTok3n0123456789ab",
        "FakeHuggingFaceTok3n",
    ),
    ("vendor", "digitalocean", "doctl auth init -t dop_v1_" + "f4ke" * 16, "f4kef4kef4ke"),
    ("vendor", "shopify", "shop token shpat_" + "0a1b2c3d" * 4, "0a1b2c3d0a1b2c3d"),
    ("vendor", "linear", "LINEAR lin_api_FakeLinearKey0123456789abcdefABCDEFghij", "FakeLinearKey0123456789"),
    (
        "vendor",
        "slack-refresh",
        "rotated xoxe.xoxp-1-FakeSlackRefresh0123456789",
        "FakeSlackRefresh0123456789",
    ),
    (
        "vendor",
        "gitlab-long",
        "remote: glpat-FakeGitlabTok3nLongerThanFifty0123456789abcdefghijXYZtail",
        "XYZtail",
    ),
    ("vendor", "stripe-restricted-long", "rk_live_FakeRestricted0123456789abcdefTAILfake99", "TAILfake99"),
    (
        "vendor",
        "google-client-secret",
        "client_id=x GOCSPX-FakeGoogleCl1entSecretAbC",
        "FakeGoogleCl1entSecretAbC",
    ),
    ("vendor", "npm-long", "npm ERR! token npm_FakeNpmTok3n0123456789abcdefghijklmnTAIL77", "TAIL77"),
    # hex, base64 and UTF-16 wrapping
    ("escaped", "hex-escaped", "payload b'" + _hex_escaped("password=HexEsc4pedPw") + "'", "HexEsc4pedPw"),
    ("escaped", "base64-user-password", "creds " + _B64_USER_PW + " loaded", _B64_USER_PW),
    ("escaped", "base64-json-password", "conf_b64=" + _B64_JSON, _B64_JSON),
    ("escaped", "base64-json-private-key", "SA " + _B64_KEYFILE, _B64_KEYFILE),
    ("escaped", "utf16-text", "\x00".join("api_key=Utf16KeyVal8") + "\x00", "Utf16KeyVal8"),
    ("escaped", "odbc-braces", "DRIVER={ODBC Driver 18};SERVER=db;UID=etl;PWD={my pass;w0rd}", "pass;w0rd"),
    ("escaped", "hex-encoded-text", "payload " + b"password=HexPl41nPw".hex(), b"HexPl41nPw".hex()),
    # random-looking tokens near a credential word, or long and alone
    ("entropy", "near-key-word", "using access key q7Rt2Lm9Xv4Kp8Zw for upload", "q7Rt2Lm9Xv4Kp8Zw"),
    ("entropy", "near-token-word", "refreshed token for svc: Zx81Kq0Lw7Nv3Mb5Pj", "Zx81Kq0Lw7Nv3Mb5Pj"),
    ("entropy", "near-secret-hex", "rotated secret (hex) 9f3ab27c0d41e58b6a7c", "9f3ab27c0d41e58b6a7c"),
    (
        "entropy",
        "bare-long-token",
        "retrying with Hq7Zr2Lx9Kv4Mw8Nb3Pt6Yc1Jd5Gf0Sa2 now",
        "Hq7Zr2Lx9Kv4Mw8Nb3Pt6Yc1Jd5Gf0Sa2",
    ),
    ("entropy", "near-key-uuid", "HEROKU_API_KEY is 0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "4b5a-6978-8a9b"),
    # source lines
    (
        "source",
        "source-auth-tuple",
        '    r = requests.get(url, auth=("etl", "Src4uthTupl3"))',
        "Src4uthTupl3",
    ),
    ("source", "source-basic-auth", '    auth = HTTPBasicAuth("svc", "BasicAuthP4ss")', "BasicAuthP4ss"),
    (
        "source",
        "source-bare-token",
        'Traceback (most recent call last):\n  File "/opt/airflow/dags/x.py", line 9, in f\n'
        '    client = Client("Wq3Lk8Zp1Xv6Nb2M")',
        "Wq3Lk8Zp1Xv6Nb2M",
    ),
    (
        "source",
        "source-k8s-env-var",
        "    env_vars=[V1EnvVar(name='API_TOKEN', value='EnvVarTok3n5')],",
        "EnvVarTok3n5",
    ),
    ("source", "source-quoted-bare-token", '    api = VendorApi("Rk4Tz8Qm2Wx7Lp5Nc")', "Rk4Tz8Qm2Wx7Lp5Nc"),
    # key/value and connection URIs
    ("key_value", "netrc-one-line", "machine api.acme.test login etl password Netrc0neLine", "Netrc0neLine"),
    ("key_value", "dd-app-key", "DD_API_KEY=*** DD_APP_KEY=DdAppKeyEnv61", "DdAppKeyEnv61"),
    ("key_value", "application-key", "{'api_key': '***', 'application_key': 'AppKeyDict62'}", "AppKeyDict62"),
    (
        "encoded",
        "enc-oauth-keyfile-plus",
        "AIRFLOW_CONN_GDRIVE='google-cloud-platform://?keyfile_dict=" + quote_plus(_OAUTH_KEYFILE) + "'",
        "GoCl1entSecr3tFake",
    ),
    (
        "encoded",
        "enc-oauth-keyfile-client-id",
        "conn=gcp://?extra=" + quote(_OAUTH_KEYFILE, safe=""),
        "GoCl1entSecr3tFake",
    ),
]

# Tokens that are not secrets and must survive when no credential word is near them.
KEPT = [
    "checked out 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 at HEAD",
    "request 123e4567-e89b-12d3-a456-426614174000 finished",
    "reading /opt/airflow/dags/warehouse/loaders/PartitionedLoaderV2.py",
    "uploaded s3://acme-lake/raw/events/2024/06/17/part-00001-4f3e2d1c.snappy.parquet",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "image sha256:9b2c4f1e7a3d5b6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d pulled",
    "run_id=scheduled__2024-06-17T00:00:00+00:00 dag_id=warehouse_load",
    "pod airflow-worker-7d9f8b6c5-x2k9p OOMKilled after 312 s",
    # base64 of readable text is judged by the text: a message or a payload stays readable
    "payload " + base64.b64encode(b"the nightly export retries at 03:10 UTC, leave it").decode(),
]
