"""What a task process pays to import the doctor: no heavy library at module import time, no import
cycle between embeddings and knowledge, and nothing from scripts/ (a dev-only folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_doctor"
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if p.stem != "__main__"
)
HEAVY = ("anthropic", "sentence_transformers", "torch", "transformers", "psycopg", "psycopg2", "numpy")
HEAVY += ("airflow_client", "scripts")
# detect-secrets imports `requests`: the redaction imports its detectors on the first redaction, so a
# stage that only reads an excerpt (the gate, the rules) does not pay it.
HEAVY += ("detect_secrets", "requests")
HEAVY = set(HEAVY)


def loaded_after(statement: str) -> set[str]:
    """Top-level packages in sys.modules after `statement`, in a fresh interpreter."""
    code = (
        f"import sys, json\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    env_path = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", [pytest.param(m, id=m.removeprefix("airflow_doctor.")) for m in MODULES])
def test_importing_a_doctor_module_loads_nothing_heavy(module):
    assert loaded_after(f"import {module}") & HEAVY == set()


def test_the_plugins_load_nothing_heavy():
    """Every task process loads the plugins (entry point `airflow.plugins`): no FastAPI app is built there."""
    assert loaded_after("import airflow_doctor.plugins") & (HEAVY | {"fastapi"}) == set()


def imports_of(path: Path) -> set[str]:
    """Modules a file imports anywhere (module level or inside functions), from its syntax tree."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_knowledge_never_imports_embeddings():
    """embeddings -> knowledge only, not even inside a function: no cycle."""
    assert "airflow_doctor.knowledge.runbooks" in imports_of(PACKAGE / "knowledge" / "embeddings.py")
    assert not {"airflow_doctor.knowledge.embeddings", "airflow_doctor.knowledge.embed_service"} & imports_of(
        PACKAGE / "knowledge" / "runbooks.py"
    )


def test_the_package_never_imports_scripts():
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imports_of(p) if m.split(".")[0] in {"scripts", "tests", "bench"}
        )
        for p in PACKAGE.rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}
