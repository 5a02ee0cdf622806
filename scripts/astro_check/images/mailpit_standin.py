"""A mail catcher standing in for Mailpit: SMTP on 1025, Mailpit's message list on 8025.

Keeps every message in memory and answers GET /api/v1/messages with Mailpit's shape
({"total": n, "messages": [{"ID", "Subject", "From", "To", "Created"}]}).
"""

from __future__ import annotations

import datetime
import email
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

MESSAGES: list[dict] = []
LOCK = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))
        with LOCK:
            MESSAGES.append(
                {
                    "ID": str(len(MESSAGES) + 1),
                    "Subject": str(msg.get("Subject", "")),
                    "From": {"Address": envelope.mail_from},
                    "To": [{"Address": rcpt} for rcpt in envelope.rcpt_tos],
                    "Created": datetime.datetime.now(datetime.UTC).isoformat(),
                    "Snippet": (body.get_content() if body is not None else "")[:400],
                }
            )
        return "250 Message accepted for delivery"


class Api(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's hook name
        if self.path.split("?")[0] not in ("/api/v1/messages", "/"):
            self.send_error(404)
            return
        with LOCK:
            payload = json.dumps({"total": len(MESSAGES), "messages": list(reversed(MESSAGES))})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())


if __name__ == "__main__":
    smtp = Controller(Handler(), hostname="0.0.0.0", port=1025)  # noqa: S104 - a container port
    smtp.start()
    api = ThreadingHTTPServer(("0.0.0.0", 8025), Api)  # noqa: S104 - a container port
    threading.Thread(target=api.serve_forever, daemon=True).start()
    while True:
        time.sleep(3600)
