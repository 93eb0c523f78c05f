"""examples/02_imagine.ipynb runs headless in a real kernel (nbclient).

It uses the default ``tiny-image`` alias; until the embedded model is built, a project
``genmagic.toml`` in the working directory points that alias at the tiny pipeline built here.
"""

from __future__ import annotations

from pathlib import Path

from image_fixtures import *  # noqa: F403


def test_imagine_notebook_runs(tiny_image_dir: Path) -> None:
    nb = run_image_example("02_imagine.ipynb", tiny_image_dir)  # noqa: F405
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]

    def result_of(marker: str) -> dict:
        cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
        (out,) = [o for o in cell.outputs if o.get("output_type") in ("execute_result", "display_data")]
        return dict(out["data"])

    grid = result_of("--out pics")["text/html"]
    assert grid.count("data:image/png;base64,") == 4
    assert all(f"seed {s}" in grid for s in (7, 8, 9, 10))
    assert result_of("third.images[0].tobytes()")["text/plain"] == "True"
    assert result_of("again.images[0].tobytes()")["text/plain"] == "True"
    assert "Steps: 20, Sampler:" in next(c for c in nb.cells if c.cell_type == "code" and "read_metadata" in c.source).outputs[0]["text"]
    assert "1 image(s)" in result_of("%genmagic history")["text/plain"]


def test_kernel_interrupt_keeps_marked_preview_and_pipeline(tiny_image_dir: Path, genmagic_home: Path) -> None:
    """A real kernel: the live view shows previews in place; interrupting stops at the next
    step, leaves the last preview marked "interrupted", records it, and the model stays usable."""
    import os

    from conftest import kernel_execute
    from jupyter_client.manager import start_new_kernel

    from genmagic.history import History

    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})

    def execute(code: str, interrupt_after_preview: bool = False) -> tuple[dict, list[dict]]:
        return kernel_execute(km, kc, code, "data:image/png" if interrupt_after_preview else "")

    try:
        assert execute("%load_ext genmagic")[0]["status"] == "ok"
        code = f"%%imagine -m {tiny_image_dir} --steps 400 --seed 1 --preview 2 --out r\na red circle"
        reply, msgs = execute(code, interrupt_after_preview=True)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        updates = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
        assert updates[0]["msg_type"] == "display_data" and len(updates) > 2  # one output, updated in place
        last = updates[-1]["content"]["data"]
        assert "interrupted" in last["text/html"] and "data:image/png" in last["text/html"]
        reply, msgs = execute("print(r.status, len(r.images), r.images[0].size, r.history_id)")
        printed = "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")
        status, count, _, _, rid = printed.split()
        assert (status, count) == ("interrupted", "1")
        assert History(genmagic_home).get(int(rid)).status == "interrupted"
        reply, msgs = execute(f"%%imagine -m {tiny_image_dir} --steps 2 --seed 1 --out again\na red circle")
        assert reply["status"] == "ok"
        reply, msgs = execute("print(again.status)")
        assert "ok" in "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
