"""Cost per diagnosis of the LLM path, on the loopback Messages API server's token counts.

Runs `eval --diagnoser llm` (cold) over a corpus with the loopback server answering every call
with a valid diagnosis, and reports the tokens and dollars per LLM call and per failure, and how
many calls memory saved. The loopback server counts tokens as characters / 4 and reports the
cacheable prefix (system prompt + tool) as cache reads after the first call, like the real API;
real token counts differ by the tokenizer, so treat the figures as an estimate of the prompt's size.

Usage: python -m bench.llm_cost [--corpus FILE] ; writes bench/results/llm_cost.json
"""

from __future__ import annotations

import json
import os
import time

from bench.common import corpus_cases, header, write_result


def main() -> int:
    from airflow_doctor.cli import embedded_database
    from airflow_doctor.evaluate import Prices, run_eval
    from airflow_doctor.knowledge.store import KnowledgeBase
    from tests.fakes.anthropic_server import AnthropicLoopback, tool_message

    corpus, cases = corpus_cases(__doc__.splitlines()[0])
    # An answer of a realistic size: two sentences of root cause, three fix steps, two evidence lines.
    answer = tool_message(
        {
            "error_class": "db_connection_refused",
            "root_cause": "The warehouse database refused the TCP connection while the task loaded data. "
            "The server was most likely restarting or failing over; the task and its input are not at fault.",
            "transient": True,
            "recommended_action": "retry",
            "confidence": 0.55,
            "fix_steps": [
                "Check that the warehouse accepts connections on the configured host and port.",
                "If refusals persist, check the Airflow connection's host and port and any firewall change.",
                "Consider a pool or retries with backoff on this task if the warehouse restarts often.",
            ],
            "evidence": [
                'psycopg2.OperationalError: connection to server at "10.0.0.5", port 5432 failed: '
                "Connection refused",
                "Is the server running on that host and accepting TCP/IP connections?",
            ],
        }
    )
    prices = Prices()
    with AnthropicLoopback() as server, embedded_database() as dsn:
        server.script(answer)
        os.environ["AIRFLOW_CONN_DOCTOR_LLM"] = json.dumps(
            {"conn_type": "anthropic", "host": server.base_url, "password": "sk-ant-loopback"}
        )
        kb = KnowledgeBase(dsn=dsn)
        kb.migrate()
        t0 = time.monotonic()
        report = run_eval(cases, kb, replay=False, diagnoser="llm", prices=prices)
        seconds = time.monotonic() - t0
    calls = report["llm_calls"] or 1
    result = {
        **header("python -m bench.llm_cost", corpus),
        "failures": report["n"],
        "llm_calls": report["llm_calls"],
        "llm_calls_saved_by_memory": report["llm_calls_saved"],
        "input_tokens_per_call": round(report["input_tokens"] / calls),
        "cached_tokens_per_call": round(report["cached_tokens"] / calls),
        "output_tokens_per_call": round(report["output_tokens"] / calls),
        "usd_per_call": round(report["cost_usd"] / calls, 6),
        "usd_per_failure": round(report["cost_usd"] / max(1, report["n"]), 6),
        "prices_usd_per_mtok": {"input": prices.input, "output": prices.output, "cached": prices.cached},
        "seconds": round(seconds, 1),
    }
    print(f"{'failures':<28}{result['failures']}")
    for key in (
        "llm_calls",
        "llm_calls_saved_by_memory",
        "input_tokens_per_call",
        "cached_tokens_per_call",
        "output_tokens_per_call",
        "usd_per_call",
        "usd_per_failure",
    ):
        print(f"{key:<28}{result[key]}")
    write_result("llm_cost", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
