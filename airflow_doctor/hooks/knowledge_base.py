"""The knowledge base's connection as a hook: a libpq DSN for the doctor's Postgres with pgvector.

`KnowledgeBaseHook` reads the connection `doctor_db` (type `postgres`: host, port, login,
password, schema = database, extras such as `sslmode`) as the Postgres provider's `PostgresHook`
reads it, so a connection that works for PostgresHook works for the doctor. The knowledge base
(airflow_doctor/knowledge/store.py) connects with psycopg2, which takes a libpq DSN;
`PostgresHook.get_uri()` is a SQLAlchemy URI instead (`postgresql+psycopg://...` when psycopg 3 is
installed), so the DSN is built from the connection's parts.

A connection with the AWS IAM option (extra `iam`) goes through `PostgresHook` itself, which swaps
in a token. Any other is read with Airflow's `BaseHook.get_connection` and the provider's rules
(`IGNORED_EXTRA_OPTIONS`, `sqlalchemy_query`) without importing the provider's hook: that import
(psycopg 3, common.sql, sqlparse: about 0.07 s of CPU, measured 2026-12-08) was the largest single
cost of each task process that touched the knowledge base, the failing task's own listener
included. A test keeps the two paths' DSNs and the option list equal to the provider's. Writes
nothing.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from airflow_doctor.settings import DB_CONN_ID

if TYPE_CHECKING:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

#: The database when the connection names none (the server's default database).
DEFAULT_DATABASE = "postgres"

#: `PostgresHook.ignored_extra_options` of apache-airflow-providers-postgres 6.x: extras that are the
#: hook's own options, not libpq parameters (tests/hooks/test_knowledge_base.py keeps it equal).
IGNORED_EXTRA_OPTIONS = frozenset(
    {
        "iam",
        "redshift",
        "redshift-serverless",
        "cursor",
        "cluster-identifier",
        "workgroup-name",
        "aws_conn_id",
        "sqlalchemy_scheme",
        "sqlalchemy_query",
        "azure_conn_id",
    }
)


class KnowledgeBaseHook(BaseHook):
    """The doctor's Postgres with pgvector, as a libpq DSN built from an Airflow connection.

    Args:
        doctor_conn_id: the Postgres connection to read (default `doctor_db`).
    """

    conn_name_attr = "doctor_conn_id"
    default_conn_name = DB_CONN_ID
    conn_type = "postgres"
    hook_name = "Doctor knowledge base (Postgres + pgvector)"

    def __init__(self, doctor_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.doctor_conn_id = doctor_conn_id

    @cached_property
    def postgres_hook(self) -> PostgresHook:
        """The Postgres provider's hook for the same connection, built on first use (~70 ms import)."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=self.doctor_conn_id)

    def get_dsn(self) -> str:
        """A libpq connection string for `psycopg2.connect`, e.g.
        "host=127.0.0.1 port=5432 user=doctor password=... dbname=doctor sslmode=require".

        Host, port, login, password and database are the connection's (for an AWS IAM connection,
        from `PostgresHook.sqlalchemy_url`, with the token swapped in); the `sqlalchemy_query`
        extra's items and the other extras are passed on as libpq parameters exactly as
        `PostgresHook.get_conn` passes them (all but `IGNORED_EXTRA_OPTIONS`). The database
        defaults to `postgres`.

        Returns:
            the DSN (it holds the password: hand it to psycopg2, never to a log).
        Raises:
            airflow.exceptions.AirflowNotFoundException: the connection does not exist.
            TypeError: the `sqlalchemy_query` extra is not a mapping.
        """
        conn = self.get_connection(self.doctor_conn_id)
        extras = conn.extra_dejson
        if extras.get("iam", False):
            return self._dsn_through_postgres_hook()
        query = extras.get("sqlalchemy_query", {})
        if not isinstance(query, dict):
            raise TypeError("The parameter 'sqlalchemy_query' must be of type dict!")
        fields = (conn.host, conn.port, conn.login, conn.password, conn.schema)
        return _libpq_dsn(*fields, query, extras, IGNORED_EXTRA_OPTIONS)

    def _dsn_through_postgres_hook(self) -> str:
        """get_dsn() through the provider's `PostgresHook` (which fetches an IAM token)."""
        hook = self.postgres_hook
        url = hook.sqlalchemy_url
        fields = (url.host, url.port, url.username, url.password, url.database)
        return _libpq_dsn(*fields, url.query, hook.connection.extra_dejson, hook.ignored_extra_options)

    def get_conn(self):
        """A new psycopg2 connection to the knowledge base (the caller closes it).

        Raises:
            psycopg2.OperationalError: the database cannot be reached.
            airflow.exceptions.AirflowNotFoundException: the connection does not exist.
        """
        import psycopg2

        return psycopg2.connect(self.get_dsn())


def _libpq_dsn(host, port, user, password, database, query, extras: dict, ignored) -> str:
    """The libpq DSN of a connection's parts: its fields (the database defaulting to
    DEFAULT_DATABASE), then the `sqlalchemy_query` items, then the extras not in `ignored`; empty
    values left out."""
    from psycopg2.extensions import make_dsn

    params: dict = {"host": host, "port": port, "user": user, "password": password}
    params["dbname"] = database or DEFAULT_DATABASE
    params.update(query)
    params.update({k: v for k, v in extras.items() if k not in ignored})
    return make_dsn(**{k: v for k, v in params.items() if v not in (None, "")})
