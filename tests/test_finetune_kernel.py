"""%%finetune in a real Jupyter kernel: the live view updates in place, the Stop button's click
(a comm message sent while the cell runs) ends training at the next step, and so does a kernel
interrupt; both keep a loadable adapter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")
pytest.importorskip("ipywidgets")
pytest.importorskip("jupyter_ui_poll")

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_stop_button_and_interrupt_in_a_kernel(tiny_text_dir: Path, genmagic_home: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})

    def execute(code: str, *, click_after: int = 0, interrupt_after: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        msg_id = kc.execute(code)
        seen: list[dict[str, Any]] = []
        button, updates, acted = None, 0, False
        while True:
            msg = kc.get_iopub_msg(timeout=180)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen.append(msg)
            data = msg["content"].get("data", {})
            if WIDGET in data:
                button = data[WIDGET]["model_id"]
            if msg["msg_type"] == "update_display_data" and "step " in data.get("text/plain", ""):
                updates += 1
                if click_after and not acted and updates >= click_after and button:
                    click = kc.session.msg("comm_msg", {"comm_id": button, "data": {
                        "method": "custom", "content": {"event": "click"}}})
                    kc.shell_channel.send(click)
                    acted = True
                if interrupt_after and not acted and updates >= interrupt_after:
                    km.interrupt_kernel()
                    acted = True
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = kc.get_shell_msg(timeout=180)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], seen

    def printed(msgs: list[dict[str, Any]]) -> str:
        return "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")

    try:
        assert execute("%load_ext genmagic\nimport genmagic")[0]["status"] == "ok"
        corpus = "\n".join(f"The fox reads books about the {w}." for w in ("stars", "sea", "sky", "moon") * 4)
        code = f"%%finetune fox --base {tiny_text_dir} --steps 100000 --samples 0\n{corpus}"
        reply, msgs = execute(code, click_after=3)
        assert reply["status"] == "ok", reply
        kinds = [m["msg_type"] for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
        assert kinds.count("update_display_data") >= 3  # the view is updated in place
        final = next(m for m in msgs if m["msg_type"] == "execute_result")["content"]["data"]["text/plain"]
        assert "(stopped)" in final
        reply, msgs = execute("r = _\nprint(r.stopped, r.metrics['steps'] < 100000, r.card['stopped'])\n"
                              "print(genmagic.generate('The fox', model='fox', seed=1, max_new_tokens=4, raw=True).ok)")
        assert printed(msgs).split() == ["stopped", "True", "True", "True"], printed(msgs)
        code = f"%%finetune fox2 --base {tiny_text_dir} --steps 100000 --samples 0\n{corpus}"
        reply, msgs = execute(code, interrupt_after=3)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert "the adapter after" in printed(msgs)
        reply, msgs = execute("print(genmagic.generate('The fox', model='fox2', seed=1, max_new_tokens=4, raw=True).ok)")
        assert printed(msgs).split() == ["True"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert (genmagic_home / "adapters" / "fox" / "adapter_model.safetensors").is_file()
