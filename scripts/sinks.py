"""Loopback sinks that stand in for a mail server and Slack during the demo and the tests.

An aiosmtpd SMTP server and an HTTP receiver for Slack incoming webhooks, both on 127.0.0.1.
Each message received is appended as one JSON line to `OUT/mail.jsonl` or `OUT/slack.jsonl`:
mail as {"mail_from", "rcpt_tos", "subject", "text", "html"}, Slack as {"path", "body"}.
The Slack receiver answers like Slack ("ok", 200); a path containing "fail" answers 500, which
the tests use to check that a dead channel does not stop the other.

Usage: python -m scripts.sinks --smtp-port 8025 --slack-port 8026 --out DIR
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_write_lock = threading.Lock()


def _append(path: Path, record: dict) -> None:
    with _write_lock, path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


class _VisibleText(HTMLParser):
    """The text a reader sees in an HTML body: tags dropped, entities decoded, one line per block."""

    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table", "ul", "ol", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in {"style", "script", "head"}
        if tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag):
        self.hidden -= tag in {"style", "script", "head"} and self.hidden > 0
        if tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            self.out.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.out).splitlines())
        return "\n".join(line for line in lines if line)


def visible_text(html: str) -> str:
    """The text of an HTML body as a mail client shows it (see _VisibleText)."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.text()


def parse_mail(raw: bytes) -> dict:
    """Split a raw RFC 5322 message into subject, plain-text part and HTML part.

    The SMTP provider sends HTML only: `text` is then the HTML's visible text (what a reader sees).

    Returns:
        dict with keys subject, text, html (each str, "" when absent).
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = {"text/plain": "", "text/html": ""}
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in parts and not part.is_multipart():
            parts[ctype] += part.get_content()
    text = parts["text/plain"] or visible_text(parts["text/html"])
    return {"subject": str(msg.get("Subject", "")), "text": text, "html": parts["text/html"]}


class MailHandler:
    """aiosmtpd handler that records each accepted message."""

    def __init__(self, out: Path) -> None:
        self.out = out

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        record = {
            "received_at": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            **parse_mail(envelope.original_content),
        }
        _append(self.out, record)
        return "250 Message accepted for delivery"


def make_slack_handler(out: Path) -> type[BaseHTTPRequestHandler]:
    class SlackWebhookHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode("utf-8", "replace")
            failing = "fail" in self.path
            _append(
                out,
                {
                    "received_at": time.time(),
                    "path": self.path,
                    "body": payload,
                    "answered": 500 if failing else 200,
                },
            )
            reply = b"internal_error" if failing else b"ok"
            self.send_response(500 if failing else 200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, fmt, *args) -> None:
            pass

    return SlackWebhookHandler


def main() -> None:
    from aiosmtpd.controller import Controller

    parser = argparse.ArgumentParser(description="SMTP and Slack-webhook sinks on loopback")
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--slack-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    controller = Controller(MailHandler(args.out / "mail.jsonl"), hostname="127.0.0.1", port=args.smtp_port)
    controller.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", args.slack_port), make_slack_handler(args.out / "slack.jsonl"))
    try:
        httpd.serve_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
