"""A loopback HTTP server that speaks the Anthropic Messages API (`POST /v1/messages`).

Scripted: each request takes the next reply from a queue (or repeats the last one). A reply is a
dict: {"status": int, "json": dict, "headers": dict, "delay": seconds}, or a callable that takes
the request body and returns such a dict (an answer that depends on the prompt). Helpers build
the shapes the real API returns: a tool_use message, an error body, a refusal, a max_tokens cut-off.
Every request body is kept in `requests` so tests can check the prompt that was sent.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def estimate_tokens(body: dict) -> int:
    """A rough token count of a request (4 characters per token), for the usage fields."""
    return max(1, len(json.dumps(body)) // 4)


def _message(content: list[dict], stop_reason: str) -> dict:
    """A Messages API reply; the server fills in `usage` from the request and the content."""
    return {
        "status": 200,
        "json": {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-5-5",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {},
        },
    }


def tool_message(tool_input: dict, *, name: str = "record_diagnosis", stop_reason: str = "tool_use") -> dict:
    return _message(
        [{"type": "tool_use", "id": "toolu_loopback", "name": name, "input": tool_input}], stop_reason
    )


def text_message(text: str, stop_reason: str = "end_turn") -> dict:
    return _message([{"type": "text", "text": text}], stop_reason)


def error(status: int, error_type: str, message: str = "scripted error", headers: dict | None = None) -> dict:
    return {
        "status": status,
        "headers": headers or {},
        "json": {"type": "error", "error": {"type": error_type, "message": message}},
    }


class AnthropicLoopback:
    """Run with `with AnthropicLoopback() as server:`; `server.base_url` goes into `doctor_llm`'s host."""

    def __init__(self) -> None:
        self.replies: list[dict] = []
        self.requests: list[dict] = []
        self.cached_prefixes: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    reply = (
                        server.replies.pop(0)
                        if len(server.replies) > 1
                        else (
                            server.replies[0]
                            if server.replies
                            else error(500, "api_error", "no reply scripted")
                        )
                    )
                if callable(reply):
                    reply = reply(body)
                time.sleep(reply.get("delay", 0))
                payload = dict(reply.get("json") or {})
                if payload.get("type") == "message":
                    payload["usage"] = dict(payload.get("usage") or {})
                    server._fill_usage(body, payload["usage"])
                    payload["usage"]["output_tokens"] = max(1, len(json.dumps(payload.get("content"))) // 4)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.get("status", 200))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("request-id", "req_loopback")
                    for key, value in (reply.get("headers") or {}).items():
                        self.send_header(key, str(value))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def log_message(self, fmt, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _fill_usage(self, body: dict, usage: dict) -> None:
        """Token counts like the API's (output: the reply's characters / 4): the cacheable prefix (system + tools) is read from cache
        after the first request that marked it with cache_control."""
        prefix = json.dumps({"system": body.get("system"), "tools": body.get("tools")}, sort_keys=True)
        prefix_tokens = estimate_tokens({"p": prefix})
        total = estimate_tokens(body)
        if prefix in self.cached_prefixes:
            usage.update(
                input_tokens=total - prefix_tokens,
                cache_read_input_tokens=prefix_tokens,
                cache_creation_input_tokens=0,
            )
        else:
            self.cached_prefixes.add(prefix)
            usage.update(
                input_tokens=total - prefix_tokens,
                cache_creation_input_tokens=prefix_tokens,
                cache_read_input_tokens=0,
            )

    def script(self, *replies: dict) -> None:
        with self._lock:
            self.replies = list(replies)

    def __enter__(self) -> AnthropicLoopback:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
