"""What a task process pays to import the doctor: no heavy library at module import time, no import
cycle between embeddings and knowledge, and nothing from scripts/ (a dev-only folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted(
    f"include.doctor.{p.stem}" for p in (ROOT / "include" / "doctor").glob("*.py") if p.stem != "__main__"
)
HEAVY = ("anthropic", "sentence_transformers", "torch", "transformers", "psycopg", "psycopg2", "numpy")
HEAVY += ("airflow_client", "scripts")


def loaded_after(statement: str) -> set[str]:
    """Top-level packages in sys.modules after `statement`, in a fresh interpreter."""
    code = (
        f"import sys, json\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    env_path = f"{ROOT}:{ROOT / 'plugins'}"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", [pytest.param(m, id=m.rsplit(".", 1)[1]) for m in MODULES])
def test_importing_a_doctor_module_loads_nothing_heavy(module):
    assert loaded_after(f"import {module}") & set(HEAVY) == set()


def test_the_listener_plugin_loads_nothing_heavy():
    assert loaded_after("import doctor_listener") & set(HEAVY) == set()


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
    assert "include.doctor.knowledge" in imports_of(ROOT / "include" / "doctor" / "embeddings.py")
    assert not {"include.doctor.embeddings", "include.doctor.embed_service"} & imports_of(
        ROOT / "include" / "doctor" / "knowledge.py"
    )


def test_include_never_imports_scripts():
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imports_of(p) if m.split(".")[0] in {"scripts", "tests", "bench"}
        )
        for p in (ROOT / "include").rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}
