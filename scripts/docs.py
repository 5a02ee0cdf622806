"""Generated blocks of the documentation: tables the code owns, kept current in README.md and docs/*.md.

A block is everything between an opening and a closing marker line:

    <!-- generated:NAME -->
    ...the output of the block's function...
    <!-- /generated:NAME -->

`GENERATORS` names the function that produces each NAME ("module:function", imported lazily, so a
function that does not exist yet gives a clear error instead of an import failure at start-up).
Tables of settings and of the retry-safe catalogue come from the package; the benchmark tables come
from `bench/results/*.json`, each with the date and machine of its figures.

Usage:
    python -m scripts.docs --write   rewrite every block (exit 1 if a block could not be produced)
    python -m scripts.docs --check   exit 1 listing every stale block, unknown name or missing function

Writes only README.md and docs/*.md, and only with --write.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: NAME of a block -> "module:function" that returns its Markdown.
GENERATORS: dict[str, str] = {
    "options": "airflow_doctor.settings:options_markdown",
    "variables": "airflow_doctor.settings:variables_markdown",
    "catalogue": "airflow_doctor.judgement.catalogue:catalogue_markdown",
    "bench-decisions": "scripts.docs:bench_decisions_markdown",
    "bench-decisions-combined": "scripts.docs:bench_decisions_combined_markdown",
    "bench-llm-cost": "scripts.docs:bench_llm_cost_markdown",
    "bench-mttr": "scripts.docs:bench_mttr_markdown",
    "bench-policy": "scripts.docs:bench_policy_markdown",
    "bench-cost": "scripts.docs:bench_cost_markdown",
    "bench-retrieval": "scripts.docs:bench_retrieval_markdown",
    "bench-embed": "scripts.docs:bench_embed_markdown",
    "bench-startup": "scripts.docs:bench_startup_markdown",
    "bench-listener": "scripts.docs:bench_listener_markdown",
    "bench-redact": "scripts.docs:bench_redact_markdown",
}

_BLOCK = re.compile(
    r"^<!-- generated:(?P<name>[\w.-]+) -->\n(?P<body>.*?)^<!-- /generated:(?P=name) -->$",
    re.DOTALL | re.MULTILINE,
)
_OPENING = re.compile(r"^<!-- generated:(?P<name>[\w.-]+) -->$", re.MULTILINE)


class GeneratorMissingError(LookupError):
    """A block's function is not (yet) defined where `GENERATORS` says it is."""


class BlockError(ValueError):
    """A block cannot be produced: an unknown name, or an opening marker without its closing one."""


@dataclass(frozen=True)
class Block:
    """One generated block of one file: its NAME and the text between its marker lines."""

    path: Path
    name: str
    body: str


def doc_files(root: Path = ROOT) -> list[Path]:
    """The files whose blocks are generated: README.md and docs/*.md, in a stable order."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return [f for f in files if f.is_file()]


def find_blocks(path: Path) -> list[Block]:
    """Every generated block of one file.

    Raises:
        BlockError: an opening marker has no closing marker for the same NAME.
    """
    text = path.read_text(encoding="utf-8")
    blocks = [Block(path, m["name"], m["body"]) for m in _BLOCK.finditer(text)]
    if len(blocks) != len(_OPENING.findall(text)):
        closed = {b.name for b in blocks}
        unclosed = sorted({m["name"] for m in _OPENING.finditer(text)} - closed) or ["(a repeated name)"]
        raise BlockError(f"{path.name}: `<!-- generated:{unclosed[0]} -->` has no closing marker")
    return blocks


def generator(name: str) -> Callable[[], str]:
    """The function that produces block NAME, imported now.

    Raises:
        BlockError: NAME is not in `GENERATORS`.
        GeneratorMissingError: its module or function does not exist (yet).
    """
    if name not in GENERATORS:
        raise BlockError(f"unknown generated block {name!r}; known: {', '.join(sorted(GENERATORS))}")
    module_name, function_name = GENERATORS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            missing = f"generated:{name} needs module {module_name}, which is missing"
            raise GeneratorMissingError(missing) from exc
        raise
    function = getattr(module, function_name, None)
    if not callable(function):
        raise GeneratorMissingError(
            f"generated:{name} needs {module_name}.{function_name}(), which does not exist yet"
        )
    return function


def render(name: str) -> str:
    """The whole block NAME as it belongs in a file: opening marker, output (stripped), closing marker."""
    output = str(generator(name)()).strip()
    return f"<!-- generated:{name} -->\n{output}\n<!-- /generated:{name} -->"


def current(block: Block) -> bool:
    """Whether a block in a file holds exactly what its function produces now."""
    written = f"<!-- generated:{block.name} -->\n{block.body}<!-- /generated:{block.name} -->"
    return written == render(block.name)


def check(files: Iterable[Path]) -> list[str]:
    """One line per block that is stale or cannot be produced; empty when every block is current."""
    problems = []
    for path in files:
        try:
            blocks = find_blocks(path)
        except BlockError as exc:
            problems.append(str(exc))
            continue
        for block in blocks:
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: generated:{block.name}"
            try:
                if not current(block):
                    problems.append(f"{where} is stale (python -m scripts.docs --write)")
            except (BlockError, GeneratorMissingError) as exc:
                problems.append(f"{where}: {exc}")
    return problems


def write(files: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Rewrite every block of `files`; a block that cannot be produced is left as it is.

    Returns:
        (the files that changed, one line per block that could not be produced).
    """
    changed, problems = [], []

    def produce(name: str, path: Path, original: str) -> str:
        try:
            return render(name)
        except (BlockError, GeneratorMissingError) as exc:
            problems.append(f"{path.name}: {exc}")
            return original

    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            find_blocks(path)
        except BlockError as exc:
            problems.append(str(exc))
            continue
        new = _BLOCK.sub(lambda m, path=path: produce(m["name"], path, m[0]), text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed, problems


# -- benchmark tables, from bench/results/*.json ----------------------------------------------------


def _result(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def _measured(result: dict) -> str:
    """The line every benchmark table carries: when, on what, with which command."""
    return f"Measured {result['date']} on {result['machine']}: `{result['command']}`."


def _table(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _spread(stats: dict | None, unit: str = "") -> str:
    """p50 / p95 / max of a milestone, or "-"."""
    if not stats:
        return "-"
    return f"{stats['p50']} / {stats['p95']} / {stats['max']}{unit}"


def _decision_rows(rows: list[dict]) -> list[list[object]]:
    out = []
    for r in rows:
        wrong = r["wrong_retries"]
        if r["wrong_after_feedback"] is not None:
            wrong = f"{wrong} ({r['wrong_after_feedback']})"
        out.append(
            [
                r["corpus"],
                r["mode"],
                r["diagnoser"],
                r["n"],
                r["auto_retried"],
                _share(r["precision"]),
                _share(r["recall"]),
                _share(r["healed_share"]),
                wrong,
                _share(r["recall_at_5"]),
                r["seconds"],
            ]
        )
    return out


_DECISION_HEADER = [
    "corpus",
    "mode",
    "diagnoser",
    "failures",
    "auto-retried",
    "precision",
    "recall",
    "recurrences healed",
    "wrong retries (after feedback)",
    "recall@5",
    "seconds",
]


def bench_decisions_markdown() -> str:
    """Every corpus, mode and diagnoser of `bench/results/decisions.json` (`make bench-decisions`)."""
    result = _result("decisions")
    return _measured(result) + "\n\n" + _table(_DECISION_HEADER, _decision_rows(result["summary"]))


def bench_decisions_combined_markdown() -> str:
    """The rows of `decisions.json` for all corpora together, with the two baselines of the cold run."""
    result = _result("decisions")
    combined = result["corpus"]
    rows = [r for r in result["summary"] if r["corpus"] == combined]
    cold = next(r for r in result["runs"] if r["corpus"] == combined and r["mode"] == "cold")
    baselines = [
        f"`{name}` precision {_share(b['auto_retry_precision'])} / recall {_share(b['transient_recall'])}"
        for name, b in cold["baselines"].items()
    ]
    return (
        _measured(result)
        + "\n\n"
        + _table(_DECISION_HEADER, _decision_rows(rows))
        + "\n\nBaselines of the same cold run: "
        + "; ".join(baselines)
        + "."
    )


def bench_llm_cost_markdown() -> str:
    """Tokens and dollars per LLM call and per failure (`bench/results/llm_cost.json`)."""
    r = _result("llm_cost")
    prices = r["prices_usd_per_mtok"]
    row = [
        r["failures"],
        f"{r['llm_calls']} ({r['llm_calls_saved_by_memory']} saved by memory)",
        f"{r['input_tokens_per_call']:,} / {r['cached_tokens_per_call']:,} / {r['output_tokens_per_call']:,}",
        f"{r['usd_per_call']:.4f}",
        f"{r['usd_per_failure']:.4f}",
        f"{prices['input']} / {prices['output']} / {prices['cached']}",
    ]
    header = [
        "failures",
        "LLM calls",
        "tokens per call: input / cache read / output",
        "$ per call",
        "$ per failure",
        "$ per million tokens: input / output / cache read",
    ]
    return _measured(r) + f" Corpus {r['corpus']}.\n\n" + _table(header, [row])


_MILESTONES = [
    ("queued", "doctor run queued"),
    ("claimed", "failure claimed"),
    ("diagnosed", "diagnosis done (gate decided)"),
    ("cleared", "clear issued"),
    ("running", "retried try running"),
    ("succeeded", "retried try succeeded"),
]


def _repeats_markdown(r: dict) -> str:
    """The median-of-repeats table of a bench.mttr result that has a `summary` (`--repeat`)."""
    summary = r["summary"]
    columns = [
        ("offline", "doctor, offline diagnoser"),
        ("llm", f"doctor, LLM (loopback, {r['llm_delay_s']} s answer)"),
        ("baseline", f"Airflow's retry (retry_delay {r['baseline_retry_delay_s']:.0f} s)"),
    ]
    columns = [(p, t) for p, t in columns if p in summary]

    def cell(m: dict | None) -> str:
        if not m or m.get("p50_median") is None:
            return "-"
        return f"{m['p50_median']} ({m['p50_min']}-{m['p50_max']}); p95 {m['p95_median']}"

    rows = [
        [label, *(cell(summary[p]["milestones"].get(key)) for p, _ in columns)] for key, label in _MILESTONES
    ]
    rows.append(
        [
            "healed",
            *(
                " / ".join(
                    f"{h}/{f}" for h, f in zip(summary[p]["healed"], summary[p]["failures"], strict=False)
                )
                for p, _ in columns
            ),
        ]
    )
    for key, label in (
        ("task_processes_per_handled_failure", "task processes per handled failure"),
        ("task_cpu_per_handled_failure_s", "task processes' CPU s per handled failure"),
        ("supervisor_cpu_per_handled_failure_s", "their supervisors' CPU s per handled failure"),
        ("cpu_per_handled_failure_s", "whole stack's CPU s per handled failure, above idle"),
    ):
        rows.append([label, *(_median_cell(summary[p].get(key)) for p, _ in columns)])
    rows.append(["mean load (1 min)", *(_median_cell(summary[p]["load_1m_mean"]) for p, _ in columns)])
    text = (
        _measured(r)
        + f" {r['n']} failures per phase, one every {r['spacing_s']:.0f} s, each phase alone; retry backoff"
        + f" {r['retry_backoff_seconds']} s. Seconds after the failure: the median of {r['repeat']} repeats'"
        + " p50 (their min-max), and the median p95.\n\n"
        + _table(["milestone", *(title for _, title in columns)], rows)
    )
    if "escalation" in summary:
        e = summary["escalation"]
        text += (
            f"\n\nPermanent failures, escalation received (median of the repeats' p50, min-max): email "
            f"{_median_cell(e['email'])} s, Slack {_median_cell(e['slack'])} s; task processes' CPU per "
            f"escalation {_median_cell(e['task_cpu_per_handled_failure_s'])} s."
        )
    return text


def bench_mttr_markdown() -> str:
    """Seconds from a failure to each milestone of its healing (`bench/results/mttr*.json`)."""
    r = _result("mttr")
    if "summary" in r:
        return _repeats_markdown(r)
    phases = r["phases"]
    columns = [
        ("offline", "doctor, offline diagnoser"),
        ("llm", f"doctor, LLM (loopback, {r['llm_delay_s']} s answer)"),
        ("baseline", f"Airflow's retry (retry_delay {r['baseline_retry_delay_s']:.0f} s)"),
    ]
    rows = [
        [label, *(_spread(phases.get(p, {}).get("milestones", {}).get(key)) for p, _ in columns)]
        for key, label in _MILESTONES
    ]
    rows.append(["healed", *(f"{phases[p]['healed']} of {phases[p]['failures']}" for p, _ in columns)])
    rows.append(["mean load (1 min)", *(phases[p]["load_1m"]["mean"] for p, _ in columns)])
    escalation = phases.get("escalation", {})
    text = (
        _measured(r)
        + f" {r['n']} failures per phase, one every {r['spacing_s']:.0f} s; retry backoff"
        + f" {r['retry_backoff_seconds']} s. Seconds after the failure, p50 / p95 / max.\n\n"
        + _table(["milestone", *(title for _, title in columns)], rows)
    )
    if escalation:
        text += (
            f"\n\nPermanent failures ({escalation['email']['n']}), escalation received: email "
            f"{_spread(escalation['email'])} s, Slack {_spread(escalation['slack'])} s (p50 / p95 / max)."
        )
    variants = []
    for name in ("mttr_offline_only", "mttr_backoff1"):
        if (RESULTS / f"{name}.json").is_file():
            v = _result(name)
            offline = v["phases"]["offline"]
            variants.append(
                [
                    f"`bench/results/{name}.json`",
                    v["retry_backoff_seconds"],
                    _spread(offline["milestones"]["running"]),
                    offline["load_1m"]["mean"],
                    v["date"],
                    v["machine"],
                ]
            )
    if variants:
        text += "\n\nEarlier offline runs, kept for comparison (an older doctor; offline phase only):\n\n"
        text += _table(
            ["file", "retry backoff (s)", "retried try running", "mean load", "date", "machine"], variants
        )
    return text


def bench_policy_markdown() -> str:
    """DoctorRetryPolicy against the doctor's loop (`bench/results/policy.json`)."""
    r = _result("policy")
    t, p = r["transient"], r["permanent"]

    def cell(s: dict) -> str:
        return "-" if not s["n"] else f"{s['p50']} / {s['max']} (n={s['n']})"

    text = (
        _measured(r)
        + " Seconds after the failure, p50 / max. A known transient failure, retry_delay"
        + f" {r['retry_delay_s']} s:\n\n"
        + _table(
            ["healed by", "retried try running", "retried try succeeded"],
            [
                [
                    "`DoctorRetryPolicy` (Airflow's retry)",
                    cell(t["policy"]["running"]),
                    cell(t["policy"]["succeeded"]),
                ],
                [
                    "the doctor's loop (asset event, doctor run, clear)",
                    cell(t["doctor_loop"]["running"]),
                    cell(t["doctor_loop"]["succeeded"]),
                ],
            ],
        )
        + f"\n\nA known permanent failure, retries={r['permanent_retries']} with retry_delay "
        + f"{r['permanent_retry_delay_s']} s, from the first failure to the escalation email:\n\n"
        + _table(
            ["", "first failure -> escalation email"],
            [
                ["without the policy (Airflow spends its retries first)", cell(p["without_policy"]["email"])],
                ["with `DoctorRetryPolicy` (failed at the first try)", cell(p["with_policy"]["email"])],
            ],
        )
    )
    return text


def _median_cell(s: dict | None) -> str:
    """A median (min-max) of a bench.mttr summary figure, or "-"."""
    if not s or s.get("median") is None:
        return "-"
    return f"{s['median']} ({s['min']}-{s['max']})"


def _code(r: dict) -> str:
    return f"`{r['commit']}`" if r.get("commit") else f"code {r['doctor_code']}"


def bench_cost_markdown() -> str:
    """What a handled failure costs, before and after the cuts (`bench/results/mttr_before.json`,
    `bench/results/mttr.json`, and the policy's `bench/results/policy.json`)."""
    before, after = _result("mttr_before"), _result("mttr")
    b, a = before["summary"], after["summary"]
    rows = []
    for phase, what in (
        ("offline", "a transient failure, auto-retried (offline diagnoser)"),
        ("escalation", "a permanent failure, escalated"),
    ):
        for key, label in (
            ("task_processes_per_handled_failure", "task processes"),
            ("task_cpu_per_handled_failure_s", "their CPU s"),
            ("supervisor_cpu_per_handled_failure_s", "their supervisors' CPU s"),
        ):
            cells = (_median_cell(r[phase].get(key)) for r in (b, a))
            rows.append([f"{what}: {label}", *cells])
    text = (
        f"Before, at {_code(before)}: {_measured(before)} {before['repeat']} repeats of {before['n']}"
        f" failures and 10 escalations. After, at {_code(after)}: {_measured(after)} Per handled failure,"
        " the median of the repeats (min-max):\n\n" + _table(["per handled failure", "before", "after"], rows)
    )
    phases = ("offline", "escalation")
    tasks = sorted({t for r in (b, a) for p in phases for t in (r[p].get("by_task") or {})} - {"unknown"})

    def task_cell(summary: dict, phase: str, task: str) -> str:
        got = (summary[phase].get("by_task") or {}).get(task)
        return "-" if not got or got.get("cpu_s") is None else f"{got['cpu_s']:.2f} ({got['processes']:g})"

    text += "\n\nTask by task: CPU s per handled failure (task processes); `-`: no process ran\n\n" + _table(
        ["task", "auto-retried, before", "after", "escalated, before", "after"],
        [[t, *(task_cell(r, p, t) for p in phases for r in (b, a))] for t in tasks],
    )
    policy = _result("policy") if (RESULTS / "policy.json").is_file() else None
    if policy and "cpu" in policy["transient"]["policy"]:
        t, p = policy["transient"], policy["permanent"]

        def cpu(c: dict) -> list:
            return [
                c["task_processes_per_handled_failure"],
                c["task_cpu_per_handled_failure_s"],
                c["supervisor_cpu_per_handled_failure_s"],
            ]

        text += (
            f"\n\nA known failure decided inside the task (`DoctorRetryPolicy`). {_measured(policy)}"
            " Per failure:\n\n"
            + _table(
                ["", "task processes", "their CPU s", "their supervisors' CPU s"],
                [
                    ["known transient, retried by the policy", *cpu(t["policy"]["cpu"])],
                    ["known transient, through the doctor's loop", *cpu(t["doctor_loop"]["cpu"])],
                    [
                        f"known permanent, retries={policy['permanent_retries']}, without the policy",
                        *cpu(p["without_policy"]["cpu"]),
                    ],
                    ["known permanent, failed at once by the policy", *cpu(p["with_policy"]["cpu"])],
                ],
            )
        )
    return text


def bench_retrieval_markdown() -> str:
    """The top-5 neighbour query at 10k to 1M cases (`bench/results/retrieval*.json`)."""
    rows, tuned = [], []
    for name in ("retrieval", "retrieval_1m", "retrieval_1m_m16"):
        if not (RESULTS / f"{name}.json").is_file():
            continue
        r = _result(name)
        m = r["settings"]["hnsw"]["m"]
        for size in r["sizes"]:
            sweep = {e["ef_search"]: e for e in size["ef_sweep"]}
            recall = " / ".join(f"{sweep[ef]['recall_at_5']:.3f}" for ef in (40, 80, 160, 320) if ef in sweep)
            concurrent = next((c for c in size["concurrent"] if c["ef_search"] == 40), None)
            one = size["single_client"]
            rows.append(
                [
                    f"{size['n']:,}",
                    m,
                    f"{size['load']['rows_per_s']:,}",
                    size["hnsw_build"]["seconds"],
                    size["sizes_mb"]["hnsw_index"],
                    size["insert_with_index"]["copy_rows_per_s"],
                    f"{one['p50_ms']} / {one['p95_ms']}",
                    concurrent["p95_ms"] if concurrent else None,
                    recall,
                    size["exact"]["p50_ms"],
                    r["date"],
                    r["machine"],
                ]
            )
            big = size["with_shared_buffers"]
            best = {e["ef_search"]: e for e in big["ef_sweep"]}.get(160)
            if best:
                tuned.append(
                    [
                        f"{size['n']:,}",
                        m,
                        big["shared_buffers"],
                        f"{best['recall_at_5']:.3f}",
                        best["p95_ms"],
                        f"{sweep[160]['p95_ms']}" if 160 in sweep else None,
                        r["date"],
                        r["machine"],
                    ]
                )
    header = [
        "cases",
        "HNSW m",
        "COPY rows/s",
        "HNSW build (s)",
        "index (MB)",
        "insert with index (rows/s)",
        "top-5 p50 / p95 (ms), 1 client, ef_search 40",
        "p95 (ms), 8 clients",
        "recall@5 at ef_search 40 / 80 / 160 / 320",
        "exact search p50 (ms)",
        "date",
        "machine",
    ]
    text = _table(header, rows)
    if tuned:
        text += "\n\nAt ef_search 160 (the doctor's), one client, the server restarted with more memory:\n\n"
        header = ["cases", "HNSW m", "shared_buffers", "recall@5", "p95 (ms)", "p95 (ms) at 128MB"]
        text += _table([*header, "date", "machine"], tuned)
    return text


def bench_embed_markdown() -> str:
    """Load, memory and throughput of the embedding model (`bench/results/embed.json`)."""
    r = _result("embed")
    cold = r["cold_load"]
    rows = [
        [
            "model load in a fresh process (import sentence-transformers + torch / build)",
            f"{cold['load_s']:.1f} s ({cold['import_s']:.1f} / {cold['construct_s']:.1f})",
        ],
        ["whole embed process: load, embed one excerpt, exit", f"{cold['process_s']:.1f} s"],
        ["peak RSS of that process", f"{r['peak_rss_mb']} MB"],
    ]
    for t in r["throughput"]:
        rows.append(
            [
                f"excerpts per second at batch {t['batch_size']} (call p50 / p95)",
                f"{t['per_s']:.0f} ({t['call_ms_p50']:.0f} / {t['call_ms_p95']:.0f} ms)",
            ]
        )
    texts = r["texts"]
    return (
        _measured(r)
        + f" {r['model']}, torch {r['torch']}, {r['torch_threads']} threads;"
        + f" {texts['n']} texts of {texts['chars_mean']} characters on average.\n\n"
        + _table(["what", "figure"], rows)
    )


def bench_startup_markdown() -> str:
    """What a doctor task process pays before its stage's first line (`bench/results/startup.json`)."""
    r = _result("startup")
    by_stage: dict[str, dict[str, dict]] = {}
    for piece in r["pieces"].values():
        by_stage.setdefault(piece["stage"], {})[piece["when"]] = piece

    def cost(piece: dict | None) -> str:
        return "-" if piece is None else f"{piece['cpu_s_median']} s CPU, {piece['wall_s_median']} s wall"

    rows = [
        [stage, cost(whens.get("before") or whens.get("both")), cost(whens.get("after") or whens.get("both"))]
        for stage, whens in by_stage.items()
    ]
    calls = r["embed_call_latency"]
    return (
        _measured(r)
        + " Medians of fresh processes that imported `airflow.sdk` first; before = the official API client"
        + " and the model loaded in the task, after = the httpx client and the embedding service.\n\n"
        + _table(["stage", "before", "after"], rows)
        + "\n\nOne embed call with the model already loaded: in the task's process p50 "
        + f"{calls['in_process']['p50_ms']} ms / p95 {calls['in_process']['p95_ms']} ms; through the service "
        + f"p50 {calls['service']['p50_ms']} ms / p95 {calls['service']['p95_ms']} ms."
    )


def bench_listener_markdown() -> str:
    """What the listener adds to tasks that succeed and fail (`bench/results/listener.json`)."""
    r = _result("listener")
    added = r["added_by_the_listener"]
    inside = r["in_process"]
    rows = [
        [
            "per task success (pluggy dispatch; no success hook)",
            f"{added['success_dispatch_ms']['p50'] * 1000:+.1f} µs",
            f"{added['success_dispatch_ms']['p99'] * 1000:+.1f} µs",
        ],
        ["per task start (loading the plugin, cold)", f"+{added['success_plugin_load_ms']} ms", "-"],
        [
            "per task failure, in the task process (post-execute window)",
            f"+{added['failure_in_task_ms']['p50']} ms",
            f"+{added['failure_in_task_ms']['p99']} ms",
        ],
        [
            "the failure hook alone, in process (inbox insert + asset event)",
            f"{inside['failed']['p50']} ms ({inside['inbox_only']['p50']} + {inside['event_only']['p50']})",
            f"{inside['failed']['p99']} ms",
        ],
    ]
    return (
        _measured(r)
        + f" {r['n']} task instances per DAG, parallelism {r['parallelism']}, plugin removed and present.\n\n"
        + _table(["added by the listener", "p50", "p99"], rows)
    )


def bench_redact_markdown() -> str:
    """Seconds per huge or hostile log through the excerpt extraction (`bench/results/redact.json`)."""
    r = _result("redact")
    rows = [
        [
            f"`{name}`",
            v["input_mb"],
            v["seconds_median"],
            v["seconds_max"],
            "yes" if v["secret_leaked"] else "no",
            v["exception_type"],
        ]
        for name, v in r["results"].items()
    ]
    header = ["log", "MB", "seconds (median)", "seconds (max)", "secret leaked", "primary error found"]
    return _measured(r) + f" Median of {r['repeat']} runs.\n\n" + _table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.docs", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite every generated block")
    mode.add_argument("--check", action="store_true", help="exit 1 listing stale blocks")
    args = parser.parse_args(argv)
    files = doc_files()
    if args.check:
        problems = check(files)
        for line in problems:
            print(line)
        if not problems:
            print(f"every generated block is current ({len(files)} files)")
        return 1 if problems else 0
    changed, problems = write(files)
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
