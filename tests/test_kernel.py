"""%%generate inside a real Jupyter kernel (nbclient): live display, result, history location."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from genmagic.history import History


def test_streams_into_display_then_shows_result(tiny_text_dir: Path, genmagic_home: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext genmagic"),
        nbformat.v4.new_code_cell(f"%%generate -m {tiny_text_dir} --seed 1 --max-new-tokens 30 --out r\nThe fox"),
        nbformat.v4.new_code_cell("print(r.status, len(r.texts), r.history_id)"),
        nbformat.v4.new_code_cell(f"%%generate -m {tiny_text_dir} --seed 1 --max-new-tokens 500\nThe fox"),
    ]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute(env={**os.environ})
    gen = nb.cells[1].outputs
    (result,) = gen  # the live view became the result: one output, no emptied view before it
    assert result["output_type"] == "display_data"
    assert "seed 1" in result["data"]["text/html"] and "tok/s" in result["data"]["text/html"]
    assert nb.cells[2].outputs[0]["text"].startswith("ok 1 ")
    (error,) = nb.cells[3].outputs  # IPython shows a UsageError as one line on stderr, no traceback
    assert error["output_type"] == "stream" and error["name"] == "stderr"
    assert error["text"].strip().startswith("UsageError: --max-new-tokens 500 does not fit")
    assert error["text"].strip().count("\n") == 0
    assert History(genmagic_home).list(n=5)[-1].status == "ok"


def test_history_records_notebook_path_and_cell_id(tiny_text_dir: Path, genmagic_home: Path) -> None:
    """JupyterLab sends the cell id in the request metadata; jupyter_server sets JPY_SESSION_NAME."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "JPY_SESSION_NAME": "/work/notebooks/story.ipynb"}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        for code in ("%load_ext genmagic", f"%%generate -m {tiny_text_dir} --seed 1 --max-new-tokens 5\nHi"):
            content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                       "allow_stdin": False, "stop_on_error": True}
            msg = kc.session.msg("execute_request", content, metadata={"cellId": "cell-42"})
            kc.shell_channel.send(msg)
            while True:
                reply = kc.get_shell_msg(timeout=120)
                if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                    break
            assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    rec = History(genmagic_home).list(n=1)[0]
    assert rec.cell_id == "cell-42" and rec.notebook == "/work/notebooks/story.ipynb"
