"""The documentation stays true to the repository (scripts/docs.py writes its generated blocks).

- every generated block in README.md and docs/*.md holds what its function produces now;
- every relative link there points at a file that exists (and a `#section` at a heading it has);
- every repository path, `airflow_doctor.…` name and `[doctor] option` written in code spans there
  exists, and so does every name the text places in a module ("`Name` in `module.py`");
- every `make` target named there is a target of the Makefile;
- every `docs/<name>.md` a tracked file points at exists, and a section it names in quotes is a heading;
- no tracked file points outside the repository at the team's working notes.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from scripts import docs

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = docs.doc_files(ROOT)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks() -> list:
    params = []
    for path in DOC_FILES:
        try:
            blocks = docs.find_blocks(path)
        except docs.BlockError as exc:
            params.append(pytest.param(path, None, str(exc), id=f"{_rel(path)}:unclosed"))
            continue
        params += [pytest.param(path, b, None, id=f"{_rel(path)}:{b.name}") for b in blocks]
    return params


@pytest.mark.parametrize(("path", "block", "error"), _blocks())
def test_every_generated_block_is_current(path, block, error):
    assert error is None, error
    try:
        current = docs.current(block)
    except docs.GeneratorMissingError as exc:
        pytest.skip(str(exc))
    assert current, f"{_rel(path)}: generated:{block.name} is stale; run `python -m scripts.docs --write`"


def test_the_benchmark_blocks_exist_and_carry_their_date_and_machine():
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in [n for n in docs.GENERATORS if n.startswith("bench-")]:
        produced = docs.render(name)
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", produced), f"{name}: no date"
        assert "cores" in produced, f"{name}: no machine"
        if name != "bench-decisions-combined":
            assert f"<!-- generated:{name} -->" in benchmarks, f"docs/benchmarks.md has no block {name}"


# -- links ---------------------------------------------------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks (links and names there are examples)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_prose(path))}


def _links() -> list:
    params = []
    for path in DOC_FILES:
        prose = _prose(path)
        for target in sorted(set(_LINK.findall(prose) + _REFERENCE.findall(prose))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            params.append(pytest.param(path, target, id=f"{_rel(path)}->{target}"))
    return params


@pytest.mark.parametrize(("path", "target"), _links())
def test_every_relative_link_points_at_an_existing_file(path, target):
    file_part, _, fragment = target.partition("#")
    linked = (path.parent / file_part).resolve() if file_part else path
    assert linked.exists(), f"{_rel(path)} links to {target}, which does not exist"
    if fragment and linked.suffix == ".md":
        assert fragment in anchors(linked), f"{_rel(path)} links to {target}: no such heading"


# -- names and paths -------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"^(?:airflow_doctor|include|dags|scripts|tests|bench|docs|plugins)/[\w./*-]*$")
_DOTTED = re.compile(r"^airflow_doctor(?:\.\w+)+(?:\(\))?$")
_MAKE = re.compile(r"(?:^|\s)make ([a-z][\w-]*)", re.MULTILINE)


def _spans(kind: re.Pattern) -> list:
    params = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        found = {s for s in _CODE_SPAN.findall(text) if kind.match(s)}
        params += [pytest.param(path, s, id=f"{_rel(path)}:{s}") for s in sorted(found)]
    return params


@pytest.mark.parametrize(("path", "written"), _spans(_PATH))
def test_every_repository_path_in_the_docs_exists(path, written):
    assert list(ROOT.glob(written.rstrip("/"))), f"{_rel(path)} names `{written}`, which does not exist"


def _top_level_names(module: Path) -> set[str]:
    return _top_level_names_of(ast.parse(module.read_text(encoding="utf-8")).body)


def _top_level_names_of(body: list) -> set[str]:
    names = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize(("path", "written"), _spans(_DOTTED))
def test_every_package_name_in_the_docs_exists(path, written):
    parts = written.removesuffix("()").split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if module.is_file():
            rest = parts[cut:]
            assert not rest or rest[0] in _top_level_names(module), (
                f"{_rel(path)} names `{written}`: {_rel(module)} defines no {rest[0]}"
            )
            return
    pytest.fail(f"{_rel(path)} names `{written}`, which is no module of the package")


_PY = r"`((?:airflow_doctor|bench|scripts|dags|tests)/[\w/]+\.py)`"
_NAME = r"`(\w+(?:\.\w+)?)(?:\(\))?`"
#: "`module.py` (`Name`)", "`Name` (`module.py`)", "`Name` in `module.py`", "`Name` of `module.py`".
_NAME_IN_MODULE = [
    re.compile(_PY + r" \(" + _NAME),
    re.compile(_NAME + r" \(" + _PY),
    re.compile(_NAME + r",? (?:in|of) " + _PY),
]


def _defined(module: Path, name: str) -> bool:
    """Whether `name` (or `Class.attribute`) is defined at the top level of a module."""
    first, _, attribute = name.partition(".")
    if first not in _top_level_names(module):
        return False
    if not attribute:
        return True
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == first:
            return attribute in _top_level_names_of(node.body)
    return True  # an imported or assigned name: its attributes are not ours to check


def _names_in_modules() -> list:
    params = []
    for path in DOC_FILES:
        text = " ".join(path.read_text(encoding="utf-8").split())  # a mention may wrap a line
        found = set()
        for pattern in _NAME_IN_MODULE:
            for match in pattern.finditer(text):
                module, name = match.groups() if match.group(1).endswith(".py") else match.groups()[::-1]
                found.add((module, name))
        params += [pytest.param(path, m, n, id=f"{_rel(path)}:{n}@{m}") for m, n in sorted(found)]
    return params


@pytest.mark.parametrize(("path", "module", "name"), _names_in_modules())
def test_every_name_the_docs_place_in_a_module_is_defined_there(path, module, name):
    assert (ROOT / module).is_file(), f"{_rel(path)} names {module}, which does not exist"
    assert _defined(ROOT / module, name), f"{_rel(path)}: {module} defines no `{name}`"


def _doctor_options() -> set[str]:
    """The `[doctor]` options the package declares (deployment settings, not Variables)."""
    from dataclasses import fields

    from airflow_doctor.settings import DoctorSettings

    return {f.name for f in fields(DoctorSettings) if not f.metadata.get("variable", False)}


@pytest.mark.parametrize(("path", "written"), _spans(re.compile(r"^\[doctor\] \w+$")))
def test_every_doctor_option_in_the_docs_is_declared(path, written):
    name = written.split()[1]
    assert name in _doctor_options(), (
        f"{_rel(path)} names `{written}`, which airflow_doctor.settings does not declare"
    )


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {t for line in re.findall(r"^([\w .-]+):(?!=)", makefile, re.MULTILINE) for t in line.split()}


def _code(path: Path) -> list[str]:
    """The code of a Markdown file: its inline code spans and fenced blocks."""
    text = path.read_text(encoding="utf-8")
    return _CODE_SPAN.findall(_FENCE.sub("", text)) + _FENCE.findall(text)


def test_every_make_target_in_the_docs_exists():
    targets = _make_targets()
    missing = sorted(
        f"{_rel(path)}: make {name}"
        for path in DOC_FILES
        for code in _code(path)
        for name in _MAKE.findall(code)
        if name not in targets
    )
    assert not missing, f"make targets the Makefile does not have: {missing}"


# -- what tracked files say ------------------------------------------------------------------------


def _tracked_texts() -> dict[str, str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    texts = {}
    for name in filter(None, listed.split("\0")):
        try:
            raw = (ROOT / name).read_bytes()
        except OSError:  # deleted in the work tree, not yet in the index
            continue
        if b"\0" not in raw[:8192]:
            texts[name] = raw.decode("utf-8", errors="replace")
    return texts


_DOC_POINTER = re.compile(r"\bdocs/([\w-]+\.md)(?:,\s*\"([^\"\n]+)\")?")


def test_every_docs_page_a_tracked_file_points_at_exists():
    problems = []
    for name, text in _tracked_texts().items():
        for page, section in _DOC_POINTER.findall(text):
            target = ROOT / "docs" / page
            if not target.is_file():
                problems.append(f"{name}: docs/{page} does not exist")
            elif section and slug(section) not in anchors(target):
                problems.append(f'{name}: docs/{page} has no section "{section}"')
    assert not problems, "\n".join(sorted(set(problems)))


#: The team's working notes live beside the repository, not in it; nothing here may point at them.
_OUTSIDE = ["DESIGN" + ".md", "AIRFLOW3" + "_FACTS", "STYLE" + ".md", ".." + "/shared"]
#: The labelled corpora for `eval` do live beside the repository: the benchmarks, the Makefile and the
#: evaluation test read them there, and nothing else may name that folder.
_CORPUS = ".." + "/shared/corpus/"
_CORPUS_READERS = ("bench/", "Makefile", "tests/test_evaluate.py")


def test_no_tracked_file_points_at_the_working_notes_outside_the_repository():
    problems = []
    for name, text in _tracked_texts().items():
        for needle in _OUTSIDE:
            for match in re.finditer(re.escape(needle), text):
                corpus = needle.endswith("shared") and text.startswith(_CORPUS, match.start())
                if corpus and name.startswith(_CORPUS_READERS):
                    continue
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{name}:{line}: {needle}")
    assert not problems, "tracked files point outside the repository:\n" + "\n".join(problems)
