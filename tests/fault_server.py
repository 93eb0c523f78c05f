"""A small OpenAI-compatible endpoint that misbehaves on cue, for the remote backend's fault tests
(the real engine is tests/conftest_engines.py). Each POST takes the next scripted behaviour
(none left: "ok", the text "fine"; "ok" answers a streamed request as an event stream)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = {"object": "list", "data": [{"id": "m1", "object": "model", "owned_by": "test"},
                                     {"id": "m2", "object": "model", "owned_by": "test"}]}


def chat_answer(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "m1",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


def chunk(text: str | None, finish: str | None = None) -> bytes:
    """One SSE event; ``text=None`` leaves ``delta`` out (a final chunk of some servers)."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if text is not None:
        choice["delta"] = {"content": text} if text else {}
    data = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m1", "choices": [choice]}
    return f"data: {json.dumps(data)}\n\n".encode()


class FaultServer:
    def __init__(self) -> None:
        self.script: deque[tuple[Any, ...]] = deque()
        self.seen: list[dict[str, Any]] = []  # each POST: time, path, headers, body
        self.gets: list[str] = []  # each GET's path
        # what GET /models answers: (status, content type, body), or a function giving it; None: MODELS
        self.models: tuple[int, str, bytes] | Callable[[], tuple[int, str, bytes]] | None = None
        self.disconnected = threading.Event()  # set when a client closed a stream before its end
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                     content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                server.gets.append(self.path)
                if server.models is None:
                    self.send(200, json.dumps(MODELS).encode())
                else:
                    status, content_type, body = server.models() if callable(server.models) else server.models
                    self.send(status, body, content_type=content_type)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.seen.append({"time": time.monotonic(), "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body})
                what, *args = server.script.popleft() if server.script else ("ok", "fine")
                if what == "ok" and body.get("stream"):  # a streamed request gets the text as one SSE piece
                    what, args = "stream", [[args[0]]]
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
                elif what == "html":  # a web UI or a login page answering a streamed request
                    self.send(200, b"<html><body>Sign in</body></html>", content_type="text/html")
                elif what == "cut":  # SSE pieces in a body that ends when the connection closes: no end marker
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for piece in args[0]:
                        self.wfile.write(chunk(piece))
                    self.wfile.flush()
                    self.close_connection = True
                elif what in ("stream", "drop", "garble", "nodelta", "slowstream"):
                    # SSE pieces, then a final chunk and [DONE] / a cut / bad JSON / a final chunk
                    # without `delta` / pieces (args[1]) s apart until the client hangs up
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        for piece in args[0]:
                            self.chunked(chunk(piece))
                            if what == "slowstream":
                                time.sleep(args[1])
                    except (BrokenPipeError, ConnectionResetError):
                        server.disconnected.set()
                        self.close_connection = True
                        return
                    if what == "drop":
                        self.wfile.flush()
                        self.connection.shutdown(2)  # mid-stream, no final chunk: the server "died"
                        self.close_connection = True
                        return
                    if what == "garble":
                        self.chunked(b"data: {not json\n\n")
                    else:
                        self.chunked(chunk(None if what == "nodelta" else "", finish="stop"))
                        self.chunked(b"data: [DONE]\n\n")
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
