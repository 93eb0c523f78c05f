"""A small OpenAI-compatible endpoint that misbehaves on cue, for the remote backend's fault tests
(the real engine is tests/conftest_engines.py). Each POST takes the next scripted behaviour."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = {"object": "list", "data": [{"id": "m1", "object": "model", "owned_by": "test"},
                                     {"id": "m2", "object": "model", "owned_by": "test"}]}


def chat_answer(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "m1",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


def chunk(text: str) -> bytes:
    data = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m1",
            "choices": [{"index": 0, "finish_reason": None, "delta": {"content": text}}]}
    return f"data: {json.dumps(data)}\n\n".encode()


class FaultServer:
    def __init__(self) -> None:
        self.script: deque[tuple[Any, ...]] = deque()
        self.seen: list[dict[str, Any]] = []  # each POST: time, path, headers, body
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self.send(200, json.dumps(MODELS).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.seen.append({"time": time.monotonic(), "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body})
                what, *args = server.script.popleft() if server.script else ("ok", "fine")
                if what == "ok":
                    self.send(200, json.dumps(chat_answer(args[0])).encode())
                elif what == "status":  # (status, headers, body)
                    self.send(args[0], json.dumps(args[2] if len(args) > 2 else {"error": {"message": "no"}}).encode(),
                              args[1] if len(args) > 1 else {})
                elif what == "malformed":
                    self.send(200, b'{"choices": [not json')
                elif what == "slow":
                    time.sleep(args[0])
                    try:
                        self.send(200, json.dumps(chat_answer("late")).encode())
                    except BrokenPipeError:  # the client gave up waiting, as it should
                        pass
                elif what in ("stream", "drop", "garble"):  # SSE pieces, then [DONE] / a cut / bad JSON
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in args[0]:
                        self.chunked(chunk(piece))
                    if what == "drop":
                        self.wfile.flush()
                        self.connection.shutdown(2)  # mid-stream, no final chunk: the server "died"
                        self.close_connection = True
                        return
                    self.chunked(b"data: {not json\n\n" if what == "garble" else b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                elif what == "image":
                    self.send(200, json.dumps({"created": 0, "data": [{"b64_json": args[0]}]}).encode())

            def chunked(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def then(self, *behaviour: Any) -> FaultServer:
        self.script.append(behaviour)
        return self


@contextmanager
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
