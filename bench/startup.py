"""Start-up: what a doctor task process pays before its stage's first line, before and after issue 13.

Every task try is a new Python process (LocalExecutor and Celery alike) that has already imported the
Task SDK; each stage then imports what it needs. For each piece below, in `--runs` fresh processes
that first import `airflow.sdk` (untimed, as the task runner does), this measures the CPU seconds
(`time.process_time`, all threads) and wall seconds of the stage's imports and first use:

- REST client, before: `airflow_client.client` (the official `apache-airflow-client`, still
  installed by requirements-dev.txt for this comparison only) imported and an ApiClient with one API
  class built: what the old `AirflowAPI.call` paid on its first call in every task.
- REST client, after: airflow_doctor/hooks/airflow_api.py and its httpx client built.
- listener report path, before (stdlib urllib) and after (httpx): what a failing task's process
  imports to report the failure.
- embed, before = cold: airflow_doctor/knowledge/embeddings.py embedding one text with the model loaded in the
  process (torch and sentence-transformers imported, model loaded) - the only path before.
- embed, after = warm: the same call with [doctor] embed_url pointing at the embedding service
  (airflow_doctor/knowledge/embed_service.py, started here on a free loopback port).
- diagnose (LLM): airflow_doctor/judgement/diagnosis.py and the Anthropic provider hook (anthropic SDK);
  unchanged by the issue, measured for the table.

Then, in one process with everything loaded, the latency of one `embed([text])` call: in-process
(model warm in that process) vs through the service, `--calls` times each (p50/p95 ms). And one
`python -X importtime` run per piece gives the five top-level imports that cost the most.

Usage: python -m bench.startup [--runs N] [--calls N]; prints a table, writes
bench/results/startup.json. Heavy: run it under the shared lock (flock /tmp/doctor-heavy.lock).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.common import ROOT, machine, percentile, write_result

TEXT = "ConnectionRefusedError: [Errno <n>] Connection refused"
MARK = "@@bench-startup-mark"

# name -> (stage it serves, before|after, code run after the preload). Timed from the first line.
PIECES: dict[str, tuple[str, str, str]] = {
    "api_official_client": (
        "REST client (fetch_logs, gate, clear, notes)",
        "before",
        "import airflow_client.client as ac\n"
        "api = ac.TaskInstanceApi(ac.ApiClient(ac.Configuration(host='http://127.0.0.1:1')))\n",
    ),
    "api_httpx": (
        "REST client (fetch_logs, gate, clear, notes)",
        "after",
        "from airflow_doctor.hooks.airflow_api import AirflowAPI\n"
        "AirflowAPI('http://127.0.0.1:1', 'a', 'b')._http\n",
    ),
    "listener_urllib": (
        "listener report (failing task's process)",
        "before",
        "import airflow_doctor.capture.failures, airflow_doctor.models, urllib.request, json\n",
    ),
    "listener_httpx": (
        "listener report (failing task's process)",
        "after",
        "import airflow_doctor.capture.failures\n"
        "from airflow_doctor.hooks.airflow_api import AirflowAPI\n"
        "AirflowAPI('http://127.0.0.1:1', 'a', 'b')._http\n",
    ),
    "embed_cold": (
        "embed_failure: first embed() in the task",
        "before",
        f"from airflow_doctor import embeddings\nassert len(embeddings.embed([{TEXT!r}])[0]) == 384\n",
    ),
    "embed_warm": (
        "embed_failure: first embed() in the task",
        "after",
        f"from airflow_doctor import embeddings\nassert len(embeddings.embed([{TEXT!r}])[0]) == 384\n",
    ),
    "diagnose_llm": (
        "diagnose (LLM): diagnosis + Anthropic hook",
        "both",
        "import airflow_doctor.judgement.diagnosis\n"
        "from airflow.providers.anthropic.hooks.anthropic import AnthropicHook\n",
    ),
}

CHILD = """
import json, sys, time
import airflow.sdk  # the task runner has imported the Task SDK before the task's code runs
import logging
logging.disable(logging.CRITICAL)
sys.stderr.write({mark!r} + "\\n"); sys.stderr.flush()
c0, w0 = time.process_time(), time.perf_counter()
{code}
print(json.dumps({{"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}}))
"""


def child_env(piece: str, embed_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("DOCTOR_EMBED_URL", None)  # the option's older name, still read when the option is empty
    env.pop("AIRFLOW__DOCTOR__EMBED_URL", None)
    if piece == "embed_warm":
        env["AIRFLOW__DOCTOR__EMBED_URL"] = embed_url or ""
    return env


def run_piece(piece: str, embed_url: str | None, importtime: bool = False) -> dict:
    """One fresh process running a piece; {"cpu": s, "wall": s} or, with importtime, the top imports.

    Raises:
        RuntimeError: the child failed (its stderr's end is in the message).
    """
    code = CHILD.format(mark=MARK, code=PIECES[piece][2])
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    proc = subprocess.run(argv, env=child_env(piece, embed_url), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{piece} failed: {proc.stderr[-1500:]}")
    if not importtime:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    return {"top_imports": top_imports(proc.stderr)}


def top_imports(stderr: str, n: int = 5) -> list[dict]:
    """The n top-level imports after the mark with the largest cumulative time (ms), from -X importtime."""
    after = stderr.split(MARK, 1)[-1].splitlines()
    rows = []
    for line in after:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith("   ") or not cumulative.strip().isdigit():  # nested: counted in its parent
            continue
        if int(cumulative) >= 1000:  # at least 1 ms
            rows.append({"module": name.strip(), "ms": round(int(cumulative) / 1000)})
    return sorted(rows, key=lambda r: -r["ms"])[:n]


def start_service() -> tuple[subprocess.Popen, str]:
    """The embedding service on a free loopback port, once /health answers."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_doctor.knowledge.embed_service", "--port", str(port)],
        env=child_env("service", None),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):  # noqa: S310 - loopback
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the embedding service did not start")


def call_latency(embed_url: str, calls: int) -> dict:
    """Milliseconds per embed([one text]) call, model warm in this process vs through the service."""
    from airflow_doctor.knowledge import embeddings

    os.environ.pop("DOCTOR_EMBED_URL", None)
    os.environ.pop("AIRFLOW__DOCTOR__EMBED_URL", None)
    model = embeddings.load_model()
    embeddings.embed([TEXT])  # first forward pass out of the way
    out = {}
    for name, fn in (
        ("in_process", lambda t: embeddings.encode(model, [t])),
        ("service", lambda t: embeddings.embed_via_service(embed_url, [t])),
    ):
        fn(TEXT)
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            fn(f"{TEXT} #{i}")
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1)}
    return out


def summarise(samples: list[dict]) -> dict:
    return {
        "cpu_s_median": round(statistics.median(s["cpu"] for s in samples), 2),
        "wall_s_median": round(statistics.median(s["wall"] for s in samples), 2),
        "cpu_s_first": round(samples[0]["cpu"], 2),
        "wall_s_first": round(samples[0]["wall"], 2),
        "runs": len(samples),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per piece (default 5)")
    parser.add_argument("--calls", type=int, default=50, help="embed calls per path for latency (default 50)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.calls < 1:
        parser.error("--runs and --calls must be at least 1")

    service, url = start_service()
    try:
        pieces = {}
        for piece in PIECES:
            if piece == "api_official_client":
                try:
                    import importlib.util

                    if importlib.util.find_spec("airflow_client") is None:
                        raise ImportError
                except ImportError:
                    print("  apache-airflow-client is not installed: no 'before' for the REST client")
                    continue
            samples = [run_piece(piece, url) for _ in range(args.runs)]
            pieces[piece] = {
                "stage": PIECES[piece][0],
                "when": PIECES[piece][1],
                **summarise(samples),
                **run_piece(piece, url, importtime=True),
            }
            print(f"  {piece}: {pieces[piece]['cpu_s_median']} s CPU", flush=True)
        latency = call_latency(url, args.calls)
    finally:
        service.terminate()
        service.wait(timeout=30)

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "command": f"python -m bench.startup --runs {args.runs} --calls {args.calls}",
        "method": "fresh process per run after `import airflow.sdk` (untimed); medians over runs; "
        "CPU = time.process_time (all threads)",
        "pieces": pieces,
        "embed_call_latency": latency,
    }
    print()
    print(f"Per-task start-up ({result['machine']}; {result['date']}; median of {args.runs} fresh processes)")
    print(f"{'stage':46} {'piece':20} {'when':6} {'CPU s':>6} {'wall s':>7}")
    for name, p in pieces.items():
        print(f"{p['stage']:46} {name:20} {p['when']:6} {p['cpu_s_median']:6.2f} {p['wall_s_median']:7.2f}")
    print()
    print("One embed([text]) call with the model already loaded (ms):")
    for name, v in latency.items():
        print(f"  {name:11} p50 {v['p50_ms']:7.1f}   p95 {v['p95_ms']:7.1f}")
    print()
    print("Largest top-level imports per piece (ms, one -X importtime run):")
    for name, p in pieces.items():
        print(f"  {name:20} " + ", ".join(f"{r['module']} {r['ms']}" for r in p["top_imports"]))
    write_result("startup", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
