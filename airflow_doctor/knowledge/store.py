"""The knowledge base in Postgres + pgvector: migrations, the inbox, cases, neighbours, outcomes.

Owns schema `doctor` (include/sql/0*.sql) and every read and write of it. SQL lives in files
under include/sql/ (resolved from this module's location) and takes bound parameters only.
The connection comes from the Airflow connection `doctor_db` (host, port, login, password,
schema = database) unless a DSN is given, which the CLI and tests may do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_doctor.models import FailureRef, Neighbour
from airflow_doctor.resources import data_dir
from airflow_doctor.settings import DB_CONN_ID

if TYPE_CHECKING:
    from airflow_doctor.judgement.reading import Reading

log = logging.getLogger(__name__)

SQL_DIR = data_dir("sql")
MIGRATION_LOCK_ID = 7_344_211  # arbitrary, constant: pg_advisory_xact_lock key for migrations


HNSW_EF_SEARCH = 160  # bench/retrieval: recall@5 vs exact search per ef_search (README "Memory at scale")


@cache
def sql(name: str) -> str:
    """The text of include/sql/queries/<name>.sql.

    Raises:
        FileNotFoundError: no such query file.
    """
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def migration_files() -> list[Path]:
    """Migrations in the order they apply: include/sql/NNN_*.sql sorted by name."""
    return sorted(p for p in SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def _dicts(cursor) -> list[dict]:
    """The cursor's remaining rows as dicts keyed by column name."""
    cols = [c.name for c in cursor.description]
    return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]


def vector_literal(embedding: Sequence[float] | None) -> str | None:
    """pgvector's text form `[x,y,...]` of a vector, or None."""
    if embedding is None:
        return None
    return "[" + ",".join(f"{float(x):.7g}" for x in embedding) + "]"


class KnowledgeBase:
    """Access to the doctor's schema.

    Args:
        dsn: a libpq connection string; None means the Airflow connection `conn_id`.
        conn_id: Airflow connection id of the Postgres with pgvector (default `doctor_db`).
        connect_timeout: seconds to wait for the server before `psycopg2.OperationalError`.
    """

    def __init__(self, dsn: str | None = None, conn_id: str = DB_CONN_ID, connect_timeout: int = 5) -> None:
        self.dsn = dsn
        self.conn_id = conn_id
        self.connect_timeout = connect_timeout

    @cached_property
    def connect_kwargs(self) -> dict:
        """psycopg2.connect keyword arguments from the Airflow connection (secrets stay in it), as
        `KnowledgeBaseHook` builds its libpq DSN through the Postgres provider."""
        from psycopg2.extensions import parse_dsn

        from airflow_doctor.hooks.knowledge_base import KnowledgeBaseHook

        return parse_dsn(KnowledgeBaseHook(self.conn_id).get_dsn())

    @contextmanager
    def connection(self) -> Iterator:
        """A psycopg2 connection in a transaction: committed on success, rolled back on error.

        Raises:
            psycopg2.OperationalError: the database cannot be reached.
            airflow.exceptions.AirflowNotFoundException: no `doctor_db` connection and no dsn.
        """
        import psycopg2

        if self.dsn:
            conn = psycopg2.connect(self.dsn, connect_timeout=self.connect_timeout)
        else:
            conn = psycopg2.connect(connect_timeout=self.connect_timeout, **self.connect_kwargs)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every migration not yet applied, each once, in file order, under an advisory lock.

        Returns:
            the names of the migrations applied now (empty when up to date).
        """
        applied_now = []
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
            cur.execute("CREATE SCHEMA IF NOT EXISTS doctor")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS doctor.schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM doctor.schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            for path in migration_files():
                if path.name in done:
                    continue
                cur.execute(path.read_text(encoding="utf-8"))
                cur.execute("INSERT INTO doctor.schema_migrations (version) VALUES (%s)", (path.name,))
                applied_now.append(path.name)
        if applied_now:
            log.info("Applied migrations: %s", ", ".join(applied_now))
        return applied_now

    # -- inbox ------------------------------------------------------------------------------

    def record_failures(self, refs: Iterable[FailureRef | dict]) -> int:
        """Put failures in the inbox; a failure already there (same try) is left as it is.

        Each ref is validated again (a FailureRef may have been built without validation, e.g.
        `model_construct`, or arrive as a dict) and written in a savepoint of its own, so one bad
        ref (a NUL in an id, an integer beyond Postgres' range) is logged with its field error and
        skipped while every good one of the batch is written.

        Args:
            refs: FailureRefs or their dicts.
        Returns:
            how many were new.
        Raises:
            psycopg2.OperationalError: the database cannot be reached (nothing is written).
        """
        import psycopg2
        from pydantic import ValidationError

        from airflow_doctor.models import describe_errors

        valid = []
        for n, ref in enumerate(refs):
            data = dict(ref) if isinstance(ref, FailureRef) else ref  # the fields as given, unserialised
            try:
                valid.append(FailureRef.model_validate(data))
            except ValidationError as exc:
                log.error(
                    "Not recording failure %d of the batch (%.200r) in the inbox: %s",
                    n,
                    data.get("task_id") if isinstance(data, dict) else type(data).__name__,
                    describe_errors(exc),
                )
        new = 0
        with self.connection() as conn, conn.cursor() as cur:
            for ref in valid:
                cur.execute("SAVEPOINT record_inbox")
                try:
                    cur.execute(sql("record_inbox"), ref.model_dump())
                except (psycopg2.DataError, psycopg2.IntegrityError) as exc:  # refused: skip this one only
                    cur.execute("ROLLBACK TO SAVEPOINT record_inbox")
                    log.error("Not recording %.300r in the inbox: %s", ref.label, str(exc).strip()[:300])
                    continue
                new += cur.rowcount
                cur.execute("RELEASE SAVEPOINT record_inbox")
        return new

    def record_notifications(
        self, refs: Iterable[FailureRef | dict], kind: str, subject: str, result: dict
    ) -> int:
        """Record one message sent about each of `refs` (006_notifications.sql).

        Args:
            kind: "message" (one failure), "digest" (a group) or "approval_request".
            subject: the message's subject (cut to 300 characters).
            result: deliver()'s {"email": str, "slack": str}.
        Returns:
            rows written.
        Raises:
            psycopg2.OperationalError: the database cannot be reached.
        """
        rows = [FailureRef.model_validate(r).model_dump() for r in refs]
        with self.connection() as conn, conn.cursor() as cur:
            for row in rows:
                cur.execute(
                    sql("insert_notification"),
                    {
                        **row,
                        "kind": kind,
                        "subject": str(subject)[:300],
                        "email": str(result.get("email", ""))[:300],
                        "slack": str(result.get("slack", ""))[:300],
                    },
                )
        return len(rows)

    def count_unclaimed(self) -> int:
        """How many failures wait in the inbox, claimed by no doctor run."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("count_unclaimed"))
            return int(cur.fetchone()[0])

    def claim_failures(self, doctor_run_id: str, limit: int = 500) -> list[FailureRef]:
        """Claim every unclaimed failure for one doctor DAG run (each failure is claimed once ever).

        Returns:
            the claimed failures, oldest first.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("claim_failures"), {"doctor_run_id": doctor_run_id, "limit": limit})
            rows = _dicts(cur)
        refs = [FailureRef(**row) for row in rows]
        return sorted(refs, key=lambda r: (r.failed_at is None, r.failed_at or 0, r.key))

    # -- cases ------------------------------------------------------------------------------

    def _neighbours(self, query: str, params: dict) -> list[Neighbour]:
        with self.connection() as conn, conn.cursor() as cur:
            # pgvector's default ef_search (40) finds ~0.92 of the true top 5 at 1M cases; 160
            # finds 0.96 in 9 ms p95 with the m=24 index (bench/retrieval, 003_hnsw_m24.sql).
            cur.execute("SET LOCAL hnsw.ef_search = %s", (HNSW_EF_SEARCH,))
            cur.execute(query, params)
            rows = _dicts(cur)
        out = []
        for row in rows:
            row["case_id"] = row.pop("id")
            row["similarity"] = float(row["similarity"])
            row["outcome"] = row["outcome"] or "none"
            row["fix_steps"] = row["fix_steps"] or []
            out.append(Neighbour(**row))
        return out

    def search_similar(
        self, embedding: Sequence[float], ref: FailureRef | None, k: int = 5
    ) -> list[Neighbour]:
        """Top-k cases by cosine similarity (HNSW), excluding the failure itself.

        Args:
            embedding: normalised vector, length 384.
            ref: the failure being diagnosed (its own case, if recorded, is excluded), or None.
            k: number of neighbours.
        Returns:
            up to k neighbours, most similar first, similarity in [-1, 1].
        """
        return self._neighbours(
            sql("search_similar"), {"embedding": vector_literal(embedding), "k": k, **self._self_filter(ref)}
        )

    def find_by_fingerprint(self, fingerprint: str, ref: FailureRef | None) -> list[Neighbour]:
        """Earlier cases with exactly this fingerprint (similarity reported as 1.0), newest first."""
        return self._neighbours(
            sql("find_by_fingerprint"), {"fingerprint": fingerprint, **self._self_filter(ref)}
        )

    @staticmethod
    def _self_filter(ref: FailureRef | None) -> dict:
        keys = ("dag_id", "run_id", "task_id", "map_index", "try_number")
        return dict(zip(keys, ref.key, strict=True)) if ref else dict.fromkeys(keys)

    def embedding_for_fingerprint(self, fingerprint: str, model: str) -> list[float] | None:
        """The stored vector of any case with this fingerprint made by `model`, or None."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("get_embedding_by_fingerprint"), {"fingerprint": fingerprint, "model": model})
            row = cur.fetchone()
        return [float(x) for x in row[0].strip("[]").split(",")] if row and row[0] else None

    def count_doctor_clears(self, ref: FailureRef) -> int:
        """Doctor-initiated clears of this task instance so far, over all its tries."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("count_doctor_clears"),
                {
                    "dag_id": ref.dag_id,
                    "run_id": ref.run_id,
                    "task_id": ref.task_id,
                    "map_index": ref.map_index,
                },
            )
            return int(cur.fetchone()[0])

    def record_clear(self, ref: FailureRef, doctor_run_id: str) -> bool:
        """Note that the doctor is about to clear this failed try.

        Returns:
            True the first time for this try; False if a clear of it was already recorded.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("record_clear"), {**self._self_filter(ref), "doctor_run_id": doctor_run_id})
            return cur.fetchone() is not None

    def upsert_runbooks(self, entries: list[dict], embeddings: list[list[float]], model: str) -> int:
        """Seed or refresh curated runbook entries with their embeddings.

        Args:
            entries: dicts with runbook_id, title, error_class, transient, recommended_action,
                fix_steps (list[str]), fingerprint, excerpt.
            embeddings: one vector (length 384) per entry.
            model: the embedding model's name.
        Returns:
            number of entries written.
        """
        with self.connection() as conn, conn.cursor() as cur:
            for entry, emb in zip(entries, embeddings, strict=True):
                cur.execute(
                    sql("upsert_runbook"),
                    {
                        **entry,
                        "fix_steps": json.dumps(entry["fix_steps"]),
                        "embedding": vector_literal(emb),
                        "embedding_model": model,
                    },
                )
        return len(entries)

    def delete_observed_cases(self) -> int:
        """Delete every observed case (with its diagnoses and remediations), keeping runbooks.

        For `eval`, which must start from a knowledge base holding only the runbooks.
        Returns:
            how many cases were deleted.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM doctor.failure_cases WHERE kind = 'observed'")
            deleted = cur.rowcount
            cur.execute("DELETE FROM doctor.clears")
            return deleted

    def delete_runbooks_except(self, runbook_ids: list[str]) -> int:
        """Remove runbook cases no longer in include/knowledge/. Returns how many were removed."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "DELETE FROM doctor.failure_cases WHERE kind = 'runbook' AND NOT (runbook_id = ANY(%s))",
                (list(runbook_ids),),
            )
            return cur.rowcount

    def runbook_entries(self) -> dict[str, dict]:
        """runbook_id -> what is stored of each seeded runbook entry: embedding_model, title,
        error_class, transient, recommended_action, fix_steps (list[str]) and excerpt."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT runbook_id, embedding_model, title, error_class, transient, recommended_action, "
                "fix_steps, excerpt FROM doctor.failure_cases WHERE kind = 'runbook'"
            )
            names = [d.name for d in cur.description]
            rows = {}
            for values in cur.fetchall():
                row = dict(zip(names, values, strict=True))
                if isinstance(row["fix_steps"], str):
                    row["fix_steps"] = json.loads(row["fix_steps"])
                rows[row.pop("runbook_id")] = row
            return rows

    def record_case(
        self,
        *,
        ref: FailureRef,
        case: dict,
        diagnosis: dict | None,
        decision: dict,
        cleared: bool,
        doctor_run_id: str,
        outcome: str | None = None,
        actor: str = "doctor",
    ) -> int:
        """Write the case, its diagnosis and its remediation in one transaction.

        Args:
            ref: the failure.
            case: operator, fingerprint, excerpt, embedding (list[float] | None), embedding_model.
            diagnosis: a Diagnosis as dict plus optional usage keys, or None when none was made.
            decision: a Decision as dict.
            cleared: whether the doctor cleared the task instance.
            doctor_run_id: the doctor DAG run that handled it.
            outcome: the remediation's outcome; None means "pending" if cleared, else "escalated".
            actor: who acted: "doctor", "human" (a person's label, e.g. in `eval --replay`) or
                "airflow" (Airflow's own retry, airflow_doctor/knowledge/airflow_retries.py: the
                diagnosis's error_class, transient, recommended_action, root_cause and fix_steps go
                on the case, and no `doctor.diagnoses` row is written, since no diagnoser ran).
        Returns:
            the case id.
        """
        diag = diagnosis or {}
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("upsert_case"),
                {
                    **dict(
                        zip(("dag_id", "run_id", "task_id", "map_index", "try_number"), ref.key, strict=True)
                    ),
                    "operator": case.get("operator"),
                    "title": diag.get("root_cause"),
                    "error_class": diag.get("error_class"),
                    "transient": diag.get("transient"),
                    "recommended_action": diag.get("recommended_action"),
                    "fix_steps": json.dumps(diag.get("fix_steps", [])),
                    "fingerprint": case.get("fingerprint"),
                    "excerpt": case.get("excerpt"),
                    "embedding": vector_literal(case.get("embedding")),
                    "embedding_model": case.get("embedding_model"),
                    "doctor_run_id": doctor_run_id,
                },
            )
            case_id = cur.fetchone()[0]
            if diagnosis and actor != "airflow":
                cur.execute(
                    sql("insert_diagnosis"),
                    {
                        "case_id": case_id,
                        "diagnoser": diag.get("diagnoser", "offline"),
                        "model": diag.get("model"),
                        "error_class": diag["error_class"],
                        "root_cause": diag.get("root_cause"),
                        "transient": diag["transient"],
                        "recommended_action": diag["recommended_action"],
                        "confidence": diag["confidence"],
                        "fix_steps": json.dumps(diag.get("fix_steps", [])),
                        "evidence": json.dumps(diag.get("evidence", [])),
                        **{
                            k: diag.get(k)
                            for k in ("input_tokens", "output_tokens", "cached_tokens", "latency_ms")
                        },
                    },
                )
            verdict = decision["verdict"]
            cur.execute(
                sql("insert_remediation"),
                {
                    "case_id": case_id,
                    "decision": verdict,
                    "reasons": json.dumps(decision.get("reasons", [])),
                    "similarity": decision.get("similarity"),
                    "actor": actor,
                    "cleared": cleared,
                    "outcome": outcome or ("pending" if cleared else "escalated"),
                    "dag_id": ref.dag_id,
                    "run_id": ref.run_id,
                    "task_id": ref.task_id,
                    "map_index": ref.map_index,
                    "retry_class": decision.get("retry_class"),
                },
            )
        return case_id

    def set_outcome(self, ref: FailureRef, outcome: str) -> int:
        """Record the verified outcome of the latest remediation of this failure's case.

        Args:
            ref: the failure that was cleared (its try_number is the failed try).
            outcome: "succeeded" | "failed" | "unverified" (verify_retry gave up waiting).
        Returns:
            rows updated (0 when the case was not recorded).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("set_outcome"),
                {
                    **self._self_filter(ref),
                    "outcome": outcome if outcome in {"succeeded", "failed"} else "unverified",
                },
            )
            return cur.rowcount

    def class_outcomes(self, retry_class: str) -> dict:
        """Verified outcomes of the doctor's auto-retries of one retry-safe class (30 days, since a
        person last acted on that class; include/sql/queries/count_class_outcomes.sql).

        Returns:
            {"retry_class": str, "succeeded": int, "failed": int}.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("count_class_outcomes"), {"retry_class": retry_class})
            succeeded, failed = cur.fetchone()
        return {"retry_class": retry_class, "succeeded": int(succeeded), "failed": int(failed)}

    def cases_of_run(self, doctor_run_id: str) -> list[dict]:
        """The cases one doctor DAG run recorded, with their latest diagnosis and decision."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("get_cases_of_run"), {"doctor_run_id": doctor_run_id})
            return _dicts(cur)

    def case_report(self, dag_id: str) -> list[dict]:
        """Every observed case of one DAG with its latest diagnosis and remediation (for the demo)."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("get_case_report"), {"dag_id": dag_id})
            return _dicts(cur)

    def escalated_cases(self, since, limit: int = 200) -> list[dict]:
        """Escalated cases no person's outcome is recorded for yet (queries/list_escalated_cases.sql).

        Args:
            since: a timezone-aware datetime: only cases created since then.
            limit: at most this many cases.
        Returns:
            newest first, dicts with case_id, dag_id, run_id, task_id, map_index, try_number,
            decision, escalated_at (datetime) and later_doctor_clears (int).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("list_escalated_cases"), {"since": since, "limit": limit})
            return _dicts(cur)

    def record_human_outcome(
        self,
        case_id: int,
        *,
        decision: str,
        cleared: bool,
        outcome: str,
        transient: bool | None,
        reasons: list[str],
    ) -> bool:
        """Record what a person did about a case, once (queries/record_human_outcome.sql).

        Args:
            case_id: the case.
            decision: the gate's decision the person acted after ("escalate" | "approval").
            cleared: whether the person cleared the task instance.
            outcome: "succeeded" | "failed" | "escalated" (left failed).
            transient: the case's new `transient`, or None to leave it.
            reasons: what was observed, in words.
        Returns:
            True if written; False when the case already had a person's outcome (or does not exist).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("record_human_outcome"),
                {
                    "case_id": case_id,
                    "decision": decision,
                    "reasons": json.dumps(reasons),
                    "cleared": cleared,
                    "outcome": outcome,
                    "transient": transient,
                },
            )
            return cur.fetchone() is not None

    # -- Airflow's own retries (airflow_doctor/knowledge/airflow_retries.py) ----------------------

    def record_retried_tries(self, refs: Iterable[FailureRef | dict], source: str) -> int:
        """Note tries Airflow retried, for the sweeper to judge once their next try has ended
        (queries/insert_retried_try.sql; table `doctor.retried_tries`, 007_deployment_record.sql).

        A try already noted, or one the doctor was told about as a final failure (the inbox, or a
        case of its own), is left as it is.

        Args:
            refs: the failed tries: FailureRefs or dicts with dag_id, run_id, task_id, map_index
                (default -1), try_number and failed_at (datetime or None).
            source: "listener" (a try going to up_for_retry) or "history" (the history import).
        Returns:
            how many were new.
        Raises:
            psycopg2.Error: the database cannot be reached or refused a row (nothing is written).
        """
        new = 0
        with self.connection() as conn, conn.cursor() as cur:
            for ref in refs:
                row = ref.model_dump() if isinstance(ref, FailureRef) else dict(ref)
                cur.execute(
                    sql("insert_retried_try"),
                    {
                        "dag_id": row["dag_id"],
                        "run_id": row["run_id"],
                        "task_id": row["task_id"],
                        "map_index": int(row.get("map_index", -1)),
                        "try_number": int(row["try_number"]),
                        "source": source,
                        "failed_at": row.get("failed_at"),
                    },
                )
                new += cur.rowcount
        return new

    def unlearnt_retried_tries(self, limit: int = 50) -> list[dict]:
        """Retried tries not judged yet (queries/list_unlearnt_retried_tries.sql).

        Args:
            limit: at most this many.
        Returns:
            those looked at least often first, then oldest first: dicts with dag_id, run_id, task_id,
            map_index, try_number, source, failed_at and received_at (datetimes), looked_at (int),
            doctor_case (bool: the doctor's own record covers this try) and recorded (bool: Airflow's
            retry of it is recorded already).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("list_unlearnt_retried_tries"), {"limit": limit})
            return _dicts(cur)

    def mark_retried_try(self, row: dict, verdict: str | None) -> bool:
        """Record that the sweeper looked at a retried try (queries/mark_retried_try.sql).

        Args:
            row: the try's dag_id, run_id, task_id, map_index and try_number.
            verdict: what was learnt ("succeeded", "other", "doctor_case", ...): the row is then
                learnt for good; None: nothing yet (its `looked_at` grows, it is looked at again).
        Returns:
            True if the row was updated (False: no such unlearnt row).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("mark_retried_try"),
                {k: row[k] for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")}
                | {"verdict": verdict},
            )
            return cur.rowcount > 0

    def open_history_import(self, since) -> dict:
        """The history import to work on: the newest unfinished one, else a new one from `since`
        (queries/open_history_import.sql; table `doctor.history_imports`).

        Args:
            since: a timezone-aware datetime: a new import reads task instances that ended since then.
        Returns:
            {"id", "since", "started_at", "cursor" (datetime | None: the end_date of the last task
            instance read), "finished_at", "task_instances", "tries"}.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("open_history_import"), {"since": since})
            return _dicts(cur)[0]

    def update_history_import(
        self, import_id: int, *, cursor, task_instances: int = 0, tries: int = 0, finished: bool = False
    ) -> None:
        """Record a history import's progress (queries/update_history_import.sql).

        Args:
            import_id: the import's id.
            cursor: the end_date of the last task instance read (a datetime; None or an earlier
                time leaves the stored cursor).
            task_instances, tries: task instances read and retried tries found since the last update.
            finished: the import has read its whole window.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("update_history_import"),
                {
                    "id": import_id,
                    "cursor": cursor,
                    "task_instances": task_instances,
                    "tries": tries,
                    "finished": finished,
                },
            )

    def history_import_finished(self) -> bool:
        """Whether any history import has read its whole window (queries/history_import_finished.sql)."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("history_import_finished"))
            return bool(cur.fetchone()[0])


def memory_of(
    ref: FailureRef,
    excerpt: dict,
    vector: list[float] | None,
    *,
    kb: KnowledgeBase,
    k: int,
    reading: Reading,
) -> dict:
    """The knowledge base's memory of one failure: neighbours by cosine similarity, cases with the
    same fingerprint, the retry budget used and the class's verified retries.

    Args:
        ref: the failed try.
        excerpt: its excerpt (its fingerprint is looked up).
        vector: its embedding (384 floats), or None: the fingerprint alone.
        k: how many neighbours (`[doctor] neighbours`).
        reading: the rules' reading of `excerpt`: the class whose doctor retries are counted for
            demotion is `reading.outcome_class`.
    Returns:
        {"neighbours": [Neighbour dict], "fingerprint_matches": [Neighbour dict], "doctor_clears": int,
        "class_outcomes": {"retry_class", "succeeded", "failed"} | None, "error": str | None}. With a
        dead database: empty lists, doctor_clears and class_outcomes None, and the error. Never raises.
    """
    out: dict = {
        "neighbours": [],
        "fingerprint_matches": [],
        "doctor_clears": None,
        "class_outcomes": None,
        "error": None,
    }
    try:
        if vector:
            out["neighbours"] = [n.model_dump(mode="json") for n in kb.search_similar(vector, ref, k)]
        if excerpt.get("fingerprint") and (excerpt.get("exception_type") or excerpt.get("message")):
            out["fingerprint_matches"] = [
                n.model_dump(mode="json") for n in kb.find_by_fingerprint(excerpt["fingerprint"], ref)
            ]
        out["doctor_clears"] = kb.count_doctor_clears(ref)
        if reading.outcome_class is not None:
            out["class_outcomes"] = kb.class_outcomes(reading.outcome_class)
    except Exception as exc:  # noqa: BLE001 - no memory means no auto-retry, not a crash
        out["error"] = f"knowledge base unavailable: {type(exc).__name__}: {exc}"[:500]
        log.error("%s", out["error"])
    return out


# -- the Doctor UI (airflow_doctor/ui/): people's answers and what the views read ---------


class UIStore(KnowledgeBase):
    """The knowledge base as the Doctor tab and dashboard read and write it.

    Adds people's answers (table `doctor.answers`, include/sql/005_answers.sql) and the reads of the
    views. Same constructor as `KnowledgeBase`.
    """

    def record_answer(
        self,
        case_id: int,
        *,
        answer: str,
        user_name: str,
        error_class: str | None = None,
        cleared: bool = False,
    ) -> dict | None:
        """Store a person's answer on a case (queries/insert_answer.sql), retiring the earlier one of
        its family.

        Args:
            case_id: an observed case.
            answer: "transient" | "permanent" | "wrong_class".
            user_name: the Airflow user who answered (1-256 characters).
            error_class: the right class, for "wrong_class" only (None otherwise).
            cleared: whether the person's clear of the try was accepted by Airflow.
        Returns:
            the stored row (id, case_id, answer, error_class, actor, user_name, answered_at, cleared),
            or None when no observed case has this id.
        Raises:
            psycopg2.IntegrityError: a field breaks the table's checks (e.g. wrong_class without class).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("insert_answer"),
                {
                    "case_id": case_id,
                    "answer": answer,
                    "error_class": error_class,
                    "user_name": user_name,
                    "cleared": cleared,
                },
            )
            rows = _dicts(cur)
        return rows[0] if rows else None

    def undo_answer(self, case_id: int, *, user_name: str) -> dict | None:
        """Undo the newest active answer on a case (queries/undo_answer.sql).

        Returns:
            the undone row, or None when the case has no active answer.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("undo_answer"), {"case_id": case_id, "user_name": user_name})
            rows = _dicts(cur)
        return rows[0] if rows else None

    def answers_of(self, case_id: int) -> list[dict]:
        """Every answer people gave on a case, newest first (queries/list_answers.sql)."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("list_answers"), {"case_id": case_id})
            return _dicts(cur)

    def delivery_failures(self, *, since, dag_ids: list[str]) -> dict:
        """How many messages about these DAGs' failures were sent since `since`, and how many failed
        to go out by email or Slack (queries/count_delivery_failures.sql; doctor.notifications).

        Returns:
            {"messages": int, "email_failed": int, "slack_failed": int, "last_failure": datetime | None}.
        Raises:
            psycopg2.OperationalError: the database cannot be reached.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("count_delivery_failures"), {"since": since, "dag_ids": list(dag_ids)})
            return _dicts(cur)[0]

    def task_instance_cases(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict:
        """What the doctor holds about one task instance.

        Returns:
            {"cases": [case row with inbox and clear times, oldest try first]
            (queries/get_task_instance_cases.sql), "inbox": [inbox row, oldest try first],
            "notifications": [message sent, oldest first] (get_task_instance_notifications.sql)}.
        """
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("get_task_instance_cases"), params)
            cases = _dicts(cur)
            cur.execute(sql("get_task_instance_inbox"), params)
            inbox = _dicts(cur)
            cur.execute(sql("get_task_instance_notifications"), params)
            notifications = _dicts(cur)
        return {"cases": cases, "inbox": inbox, "notifications": notifications}

    def case_details(self, case_id: int, k: int = 5) -> dict:
        """A case's diagnoses (newest first), remediations (oldest first), answers (newest first) and
        its k most similar cases (queries/search_similar_cases.sql; HNSW at `HNSW_EF_SEARCH`).

        Returns:
            {"diagnoses": [...], "remediations": [...], "answers": [...], "similar": [...]}.
        """
        with self.connection() as conn, conn.cursor() as cur:
            out = {}
            for key, name in (
                ("diagnoses", "list_case_diagnoses"),
                ("remediations", "list_case_remediations"),
                ("answers", "list_answers"),
            ):
                cur.execute(sql(name), {"case_id": case_id})
                out[key] = _dicts(cur)
            cur.execute("SET LOCAL hnsw.ef_search = %s", (HNSW_EF_SEARCH,))
            cur.execute(sql("search_similar_cases"), {"case_id": case_id, "k": k})
            out["similar"] = _dicts(cur)
        return out

    def dashboard_cases(self, *, since, until, dag_ids: list[str], limit: int = 20_000) -> list[dict]:
        """The observed cases the dashboard aggregates (queries/list_dashboard_cases.sql).

        Args:
            since, until: timezone-aware datetimes; cases created in [since, until).
            dag_ids: only cases of these DAGs (the user's readable DAGs, narrowed by the filters).
            limit: at most this many cases, newest first.
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("list_dashboard_cases"),
                {"since": since, "until": until, "dag_ids": list(dag_ids), "limit": limit},
            )
            return _dicts(cur)

    # -- reads of the Doctor tab and dashboard (issue 24) ------------------------------------------

    #: The table of the task's DoctorRetryPolicy decisions (include/sql/008_policy_decisions.sql).
    POLICY_TABLE = "doctor.policy_decisions"

    def _has_policy_table(self, cur) -> bool:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (self.POLICY_TABLE,))
        return bool(cur.fetchone()[0])

    def policy_decisions_of(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict]:
        """The DoctorRetryPolicy's decisions about one task instance, oldest first
        (queries/list_policy_decisions_of_task_instance.sql).

        The hook for the policy's table: while `doctor.policy_decisions` does not exist (migration
        008 not applied), there are none and [] is returned.

        Returns:
            [{"dag_id", "run_id", "task_id", "map_index", "try_number", "fingerprint", "action",
            "reason", "decided_at", "verdict" (the sweeper's verdict on Airflow's retry of that try,
            or None)}].
        Raises:
            psycopg2.OperationalError: the database cannot be reached.
        """
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
        with self.connection() as conn, conn.cursor() as cur:
            if not self._has_policy_table(cur):
                return []
            cur.execute(sql("list_policy_decisions_of_task_instance"), params)
            return _dicts(cur)

    def policy_decisions(self, *, since, until, dag_ids: list[str], limit: int = 20_000) -> list[dict]:
        """The DoctorRetryPolicy's decisions the dashboard counts (queries/list_policy_decisions.sql);
        [] while `doctor.policy_decisions` does not exist.

        Returns:
            newest first: dicts with the table's columns and "healed" (bool: Airflow retried the try
            and the next try succeeded).
        """
        with self.connection() as conn, conn.cursor() as cur:
            if not self._has_policy_table(cur):
                return []
            cur.execute(
                sql("list_policy_decisions"),
                {"since": since, "until": until, "dag_ids": list(dag_ids), "limit": limit},
            )
            return _dicts(cur)

    def open_escalations(self, *, since, until, dag_ids: list[str], limit: int = 200) -> list[dict]:
        """Escalations no person has acted on yet, oldest first (queries/list_open_escalations.sql).

        Returns:
            dicts with id, dag_id, run_id, task_id, map_index, try_number, error_class, decision and
            escalated_at (datetime).
        """
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql("list_open_escalations"),
                {"since": since, "until": until, "dag_ids": list(dag_ids), "limit": limit},
            )
            return _dicts(cur)

    def cases_by_id(self, ids: list[int]) -> list[dict]:
        """Observed cases by id with their redacted excerpt (queries/get_cases_by_id.sql)."""
        if not ids:
            return []
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("get_cases_by_id"), {"ids": list(ids)})
            return _dicts(cur)

    def latest_answer_of(self, dag_id: str, run_id: str, task_id: str, map_index: int, user_name: str):
        """The newest answer `user_name` gave on any case of the task instance
        (queries/get_latest_answer_of_user.sql): {"id", "case_id", "answer", "undone_at"}, or None."""
        params = {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "user_name": user_name,
        }
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql("get_latest_answer_of_user"), params)
            rows = _dicts(cur)
        return rows[0] if rows else None
