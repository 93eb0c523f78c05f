"""The panel's buttons in a real kernel: a click is a comm message, and Stop is processed while a run runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

from genmagic.history import History

TESTS = Path(__file__).parent


def execute(kc: Any, code: str, seen: list[dict[str, Any]] | None = None) -> str:
    """Run ``code`` in the kernel; its stdout (an error in the cell fails the test). ``seen`` collects
    the iopub messages sent meanwhile."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if seen is not None:
            seen.append(msg)
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


def click(kc: Any, comm_id: str) -> None:
    """What the front end sends when an ipywidgets 8 Button is clicked."""
    data = {"method": "custom", "content": {"event": "click"}}
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))


def test_stop_button_stops_a_run_in_a_real_kernel(genmagic_home: Path) -> None:
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})
    try:
        ids = execute(kc, f"""
import sys, time
sys.path.insert(0, {str(TESTS)!r})
from slow_backend import SlowEchoBackend
from genmagic import registry
registry.register_backend("slow", SlowEchoBackend)
SlowEchoBackend.delay = 0.05  # 1000 tokens: 50 s unless stopped
%load_ext genmagic
from genmagic.panel import Panel
p = Panel("text", "go", model="slow:" + "abcdefghij" * 100, options={{"max_new_tokens": 1000, "seed": 1}})
display(p)
print(p.generate_button.model_id, p.stop_button.model_id)
""")
        generate, stop = ids.split()
        click(kc, generate)  # the click handler starts the worker and returns: the kernel stays free
        seen: list[dict[str, Any]] = []
        execute(kc, "while p._sink is None or len(p._sink.texts[0]) < 30: time.sleep(0.2)", seen)
        streamed = [o["data"]["text/html"] for m in seen if m["msg_type"] == "comm_msg"
                    for o in m["content"]["data"].get("state", {}).get("outputs", [])]
        assert any("abcdefghij" * 2 in html for html in streamed)  # the worker's view updates reach the front end mid-run
        click(kc, stop)
        report = execute(kc, "p.wait(); print(p.result.status, len(p.result.text), p.status_text, sep='|')")
        status, length, line = report.strip().split("|")
        assert status == "interrupted" and 30 <= int(length) < 1000
        assert line.startswith("stopped: the partial output is kept")
        assert execute(kc, "print(p.running, p.generate_button.disabled, 6 * 7)").split() == ["False", "False", "42"]

        copy = execute(kc, "print(p.copy_button.model_id)").strip()
        click(kc, copy)  # the cell shows in the panel's box; a click has no reply to carry a next cell
        reply = kc.execute_interactive("print(p.cell_box.value)", timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["payload"] == []
        reply = kc.execute_interactive("_ = p.copy_cell()", timeout=60, output_hook=lambda msg: None)
        (payload,) = reply["content"]["payload"]  # from code in a cell: offered as the next cell
        assert payload["source"] == "set_next_input" and payload["text"].startswith("%%generate -m slow:abc")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    (row,) = History(genmagic_home).list(n=5)
    assert row.status == "interrupted" and len(row.outputs["texts"][0]) == int(length)
