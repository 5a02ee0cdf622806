"""Curated runbook entries (include/knowledge/*.yaml) and seeding them into the knowledge base.

Each entry describes a failure class: title, error_class, transient, action, fix_steps and a few
typical error lines (`examples`). Each example becomes one `kind = 'runbook'` case whose embedding
is made from the same normalised signature as an observed failure's (`embedding_text`).

Nothing here imports the embedding model: `ensure_seeded` takes the embedding function, and
airflow_doctor/knowledge/embeddings.py imports this module (one direction, no cycle).
"""

from __future__ import annotations

import logging
import re
from functools import cache

import yaml

from airflow_doctor.logs.fingerprint import fingerprint, normalise, signature
from airflow_doctor.models import Action
from airflow_doctor.resources import data_dir

log = logging.getLogger(__name__)

KNOWLEDGE_DIR = data_dir("knowledge")
_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s*(?P<msg>.*))?$", re.S)


def split_example(example: str) -> tuple[str | None, str]:
    """(exception type, message) of an example line `Type: message`; no type when it has no colon."""
    m = _EXC.match(example.strip())
    if m and (m.group("msg") is not None or example.strip() in {"MemoryError"}):
        return m.group("type"), (m.group("msg") or "").strip()
    return None, example.strip()


def embedding_text(signature: str, excerpt_text: str = "", max_chars: int = 600) -> str:
    """The text that represents a failure in vector space: its normalised error signature, or,
    when the log had no recognisable error line, the normalised last lines of the excerpt.
    Cut to `max_chars` (MiniLM reads about 256 word pieces)."""
    text = signature.strip() or normalise("\n".join(excerpt_text.splitlines()[-6:]))
    return text[:max_chars]


@cache
def load_runbooks() -> list[dict]:
    """Every runbook example as a row for `KnowledgeBase.upsert_runbooks`.

    Returns:
        dicts with runbook_id (`<entry id>#<n>`), title, error_class, transient,
        recommended_action, fix_steps, fingerprint, excerpt (the example), signature.
    Raises:
        ValueError: an entry lacks a field or names an action outside the closed set.
    """
    rows = []
    for path in sorted(KNOWLEDGE_DIR.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            missing = {"id", "title", "error_class", "transient", "action", "fix_steps", "examples"} - set(
                entry
            )
            if missing:
                raise ValueError(f"{path.name}: runbook {entry.get('id')!r} lacks {sorted(missing)}")
            action = Action(entry["action"])
            if not all(isinstance(x, str) for x in [*entry["fix_steps"], *entry["examples"]]):
                raise ValueError(f"{path.name}: runbook {entry['id']!r}: fix_steps and examples must be text")
            for n, example in enumerate(entry["examples"]):
                exc_type, message = split_example(example)
                rows.append(
                    {
                        "runbook_id": f"{entry['id']}#{n}",
                        "title": entry["title"],
                        "error_class": entry["error_class"],
                        "transient": bool(entry["transient"]),
                        "recommended_action": action.value,
                        "fix_steps": list(entry["fix_steps"]),
                        "fingerprint": fingerprint(exc_type, message),
                        "excerpt": example,
                        "signature": signature(exc_type, message),
                    }
                )
    return rows


def ensure_seeded(kb, embed_fn, model: str) -> int:
    """Seed or refresh the runbook cases whose entry (text, class, transience, action, fix steps) or
    embedding model changed.

    Args:
        kb: a KnowledgeBase.
        embed_fn: texts -> list of 384-d vectors.
        model: the embedding model's name (recorded, and a change re-embeds everything).
    Returns:
        how many runbook cases were written (0 when all are current). Entries removed from the
        files are removed from the knowledge base.
    """
    all_rows = load_runbooks()
    current = kb.runbook_entries()
    if set(current) - {r["runbook_id"] for r in all_rows}:
        kb.delete_runbooks_except([r["runbook_id"] for r in all_rows])
    stored = ("title", "error_class", "transient", "recommended_action", "fix_steps", "excerpt")
    rows = [
        r
        for r in all_rows
        if (had := current.get(r["runbook_id"])) is None
        or had["embedding_model"] != model
        or any(had[k] != r[k] for k in stored)
    ]
    if not rows:
        return 0
    vectors = embed_fn([embedding_text(r["signature"]) for r in rows])
    kb.upsert_runbooks([{k: v for k, v in r.items() if k != "signature"} for r in rows], vectors, model)
    log.info("Seeded %d runbook case(s) into the knowledge base", len(rows))
    return len(rows)
