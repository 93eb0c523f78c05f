"""``--compare``: grid shape and labels (text and image, one and two axes), style comparisons,
the grid PNG that re-runs any cell exactly, the CLI, a blocked cell and an interrupt, and errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from fake_backend import EchoBackend
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

import genmagic
from genmagic import presets, registry
from genmagic.compare import CompareResult
from genmagic.errors import OptionError
from genmagic.request import Request
from genmagic.results import Verdict


def test_text_one_axis_gives_one_labelled_column_per_value(ip: Any) -> None:
    grid = run(ip, "%%generate -m echo: --compare max_new_tokens=2,4,6 --seed 1 --out t_grid\nabcdefgh")
    assert isinstance(grid, CompareResult) and ip.user_ns["t_grid"] is grid
    assert grid.shape == (3, 1) and len(grid) == 3
    assert [cell.text for cell in grid] == ["ab", "abcd", "abcdef"]
    assert grid.labels() == (["max_new_tokens=2", "max_new_tokens=4", "max_new_tokens=6"], [""])
    assert grid[1].request.options.max_new_tokens == 4 and grid.at(max_new_tokens=6).text == "abcdef"
    assert all(cell.request.options.seed == 1 for cell in grid)
    assert "--- max_new_tokens=4 ---\nabcd" in grid.plain()
    html = grid._repr_mimebundle_()["text/html"]
    assert html.count("<th style") == 3 and "max_new_tokens=6" in html
    rows = genmagic._magics.engine.history.list(n=10)
    assert len(rows) == 3  # one history row per cell


def test_text_two_axes_rows_and_columns_and_a_tone_axis(ip: Any) -> None:
    grid = run(ip, "%%generate -m echo: --compare max_new_tokens=1,3 --compare tone=formal,playful\nxyz")
    assert grid.shape == (2, 2)
    assert grid.labels() == (["max_new_tokens=1", "max_new_tokens=3"], ["tone=formal", "tone=playful"])
    assert grid[0, 0].text == "x" and grid[1, 1].text == "xyz"
    assert grid[1, 0].request.options.system == presets.get("text", "formal").addition
    assert grid[1, 1].request.options.system == presets.get("text", "playful").addition
    assert grid[0, 1].result.info["preset"] == "tone playful"
    seeds = {cell.request.options.seed for cell in grid}
    assert len(seeds) == 1  # one seed drawn for the grid: the cells differ only by their axes
    html = grid.html()
    assert "tone=playful" in html and "<th>tone</th>" in html
    with pytest.raises(IndexError, match="outside the grid of 2 columns and 2 rows"):
        grid[2, 0]


def test_image_two_axes_grid_and_its_labelled_picture(img_ip: Any) -> None:
    grid = run(img_ip, "%%imagine -m tiny-img --compare seed=1,2,3 --compare steps=1,2\na red circle")
    assert grid.shape == (3, 2)
    assert [(c.request.options.seed, c.request.options.steps) for c in grid] == [
        (1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]
    picture = grid.grid()
    width, height = grid[0, 0].image.size
    assert picture.width > 3 * max(width, 128) and picture.height > 2 * max(height, 128)
    assert grid[0, 0].image.tobytes() != grid[1, 0].image.tobytes()
    html = grid._repr_mimebundle_()["text/html"]
    assert html.count("<img") == 6 and "seed=3" in html and "steps=2" in html
    assert len(genmagic._magics.engine.history.list(n=20, kind="image")) == 6


def test_a_cell_the_model_refuses_at_load_keeps_the_others(img_ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    grid = run(img_ip, "%%imagine -m tiny-img --steps 1 --seed 2 --compare width=64,60\na cat")
    assert [cell.status for cell in grid] == ["ok", "error"]
    assert grid[1].result is None and "--width 60 does not fit" in grid[1].error
    assert "cell width=60: error: --width 60 does not fit" in capsys.readouterr().err
    with pytest.raises(UsageError, match=r"--width (60|44) does not fit") as err:  # every cell fails: one line
        run(img_ip, "%%imagine -m tiny-img --steps 1 --seed 2 --compare width=60,44\na cat")
    assert "\n" not in str(err.value)


def test_stop_values_take_escapes(ip: Any) -> None:
    grid = run(ip, "%%generate -m echo: --seed 1 --compare 'stop=\\n,b'\na\nbc")
    assert [cell.request.options.stop for cell in grid] == [("\n",), ("b",)]
    assert [cell.text for cell in grid] == ["a", "a\n"]


def test_style_comparison_runs_each_style_template(img_ip: Any) -> None:
    grid = run(img_ip, "%%imagine -m tiny-img --steps 1 --seed 4 --compare style=photo,pixel-art\na cat")
    photo, pixel = presets.get("image", "photo"), presets.get("image", "pixel-art")
    assert [c.request.prompt for c in grid] == [photo.fill("a cat"), pixel.fill("a cat")]
    assert [c.request.options.guidance for c in grid] == [photo.options["guidance"], pixel.options["guidance"]]
    assert grid.labels()[0] == ["style=photo", "style=pixel-art"]


def test_the_grid_png_re_runs_any_cell_exactly(img_ip: Any, tmp_path: Path) -> None:
    import numpy as np

    grid = run(img_ip, "%%imagine -m tiny-img --compare seed=5,6 --compare guidance=2,9 --steps 2\na blue square")
    path = grid.save(tmp_path / "grid.png")
    again = run(img_ip, f"%%imagine --from {path} --cell 2,2 --no-cache")
    assert again.request.key() == grid[1, 1].request.key()
    assert np.array_equal(np.asarray(again.image), np.asarray(grid[1, 1].image))
    assert again.request.options.seed == 6 and again.request.options.guidance == 9
    with pytest.raises(UsageError, match=r"--cell 3,1: out of range; the grid has 2 columns and 2 rows"):
        run(img_ip, f"%imagine --from {path} --cell 3,1")
    with pytest.raises(UsageError, match=r"this PNG is a comparison grid of 2 columns and 2 rows; .*--cell X,Y"):
        run(img_ip, f"%imagine --from {path}")
    with pytest.raises(UsageError, match=r"--cell x: give the column and the row"):
        run(img_ip, f"%imagine --from {path} --cell x")
    single = grid[0, 0].result.save(tmp_path / "single")[0]
    with pytest.raises(UsageError, match="is a single image, not a comparison grid; drop --cell"):
        run(img_ip, f"%imagine --from {single} --cell 1,1")
    with pytest.raises(UsageError, match=r"--cell 1,1 picks a cell of a comparison grid: add --from GRID\.png"):
        run(img_ip, "%imagine --cell 1,1 a cat")


def test_cli_writes_one_labelled_grid_png_and_prints_text_blocks(tiny_image_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "genmagic.cli", *args], capture_output=True, text=True,
                              env=os.environ.copy(), timeout=300)

    out = tmp_path / "grid.png"
    made = cli("imagine", "-m", str(tiny_image_dir), "a red circle", "--compare", "seed=1,2", "--compare",
               "steps=1,2", "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == [str(out)] and "cell 4 of 4" in made.stderr
    meta = genmagic.read_metadata(out, cell="1,2")
    assert meta["request"]["options"]["seed"] == 1 and meta["request"]["options"]["steps"] == 2
    again = cli("imagine", "--from", str(out), "--cell", "2,1", "--no-cache", "-o", str(tmp_path / "cell.png"))
    assert again.returncode == 0, again.stderr
    with Image.open(tmp_path / "cell.png") as im:
        assert im.size == (64, 64)
    assert cli("imagine", "--from", str(out), "--cell", "1,3").returncode == 2


def test_cli_generate_compare_prints_labelled_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic.cli import main

    assert main(["generate", "-m", "echo:hello", "--compare", "max_new_tokens=2,5", "--seed", "1", "x"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "--- max_new_tokens=2 ---\nhe\n\n--- max_new_tokens=5 ---\nhello\n"
    assert "cell 2 of 2: max_new_tokens=5" in captured.err
    assert main(["generate", "-m", "echo:hello", "--compare", "top_p=2", "x"]) == 2
    assert "--compare top_p=2: must be between 0 and 1, got 2" in capsys.readouterr().err


class _Block:
    """A check that blocks any prompt containing ``word``."""

    name = "word"

    def __init__(self, word: str) -> None:
        self.word = word

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        if stage == "prompt" and self.word in text:
            return [Verdict(self.name, "privacy", 1.0, "block", stage=stage, reason=f"contains {self.word}")]
        return []


def test_a_blocked_cell_shows_its_reason_and_the_others_still_run(ip: Any) -> None:
    Path("genmagic.toml").write_text('[presets.tone.bad]\ntemplate = "{prompt} FORBIDDEN"\n')
    genmagic._magics.engine.checks = [_Block("FORBIDDEN")]
    grid = run(ip, "%%generate -m echo: --seed 1 --compare tone=formal,bad,playful\nhello")
    assert [cell.status for cell in grid] == ["ok", "blocked", "ok"]
    assert grid[0].text == "hello" and grid[2].text == "hello"
    blocked_row = genmagic._magics.engine.history.list(n=10)
    blocked_id = next(r.id for r in blocked_row if r.status == "blocked")
    assert grid[1].result is None and "blocked" in grid[1].text and f"history #{blocked_id}" in grid[1].text
    assert "blocked" in grid.html()


class _WithholdOutput(_Block):
    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        if stage == "output" and self.word in text:
            return [Verdict(self.name, "privacy", 1.0, "block", stage=stage, target="output 1", reason="says it")]
        return []


def test_a_withheld_cell_shows_its_stand_in_and_reason(ip: Any) -> None:
    genmagic._magics.engine.checks = [_WithholdOutput("SECRET")]
    grid = run(ip, "%%generate -m echo: --seed 1 --compare max_new_tokens=4,20\nabc SECRET")
    assert grid[0].text == "abc " and grid[0].status == "ok"
    assert grid[1].result is not None and grid[1].result.status == "blocked"
    assert grid[1].text == "[withheld by a safety check: says it]" and "SECRET" not in grid.html()
    assert "SECRET" not in grid.plain()


class _Stops(EchoBackend):
    """Echo, but the run with seed 2 is interrupted (a KeyboardInterrupt out of the backend)."""

    def detect(self, source: str) -> str | None:
        return "text" if source.startswith("stops:") else None

    def load(self, spec: Any, options: Any) -> Any:
        loaded = super().load(spec, options)
        loaded.model = ""  # answer with the prompt
        return loaded

    def generate(self, loaded: Any, request: Any, sink: Any) -> Any:
        if request.options.seed == 2:
            raise KeyboardInterrupt
        return super().generate(loaded, request, sink)


def test_an_interrupt_keeps_the_finished_cells(ip: Any) -> None:
    registry.register_backend("stops", _Stops)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(ip, "%%generate -m stops: --compare seed=1,2,3 --out t_stopped\nabc")
    finally:
        genmagic._magics.engine.models.unload()  # while its backend is still there to unload it
        registry.unregister_backend("stops")
    grid = ip.user_ns["t_stopped"]
    assert grid.status == "interrupted"
    # the backend raised instead of returning its partial result: like a single run, no row for cell 2
    assert grid[0].text == "abc" and grid[1].result is None and grid[2].result is None
    assert [cell.status for cell in grid] == ["ok", "pending", "pending"]
    assert "interrupted: 1 of 3 cells done" in grid.html()


@pytest.mark.parametrize(("line", "message"), [
    ("--compare sed=1,2", r"--compare sed=1,2: 'sed' is not something to compare for text; did you mean seed\? valid axes: .*temperature"),
    ("--compare temperature=0.2,hot", r"--compare temperature=hot: expected a number between 0 and 5, got 'hot'"),
    ("--compare temperature=0.2,7", r"--compare temperature=7: must be between 0 and 5, got 7"),
    ("--compare seed=1,2 --compare top_k=1,2 --compare top_p=0.5,1", r"--compare takes at most 2 axes"),
    ("--compare seed=1,2 --compare seed=3", r"seed is already an axis"),
    ("--compare seed=1,,2", r"--compare seed=1,,2: an empty value"),
    ("--compare seed=1,1", r"a value is repeated"),
    ("--compare seed", r"--compare seed: write AXIS=V1,V2"),
    ("--seed 3 --compare seed=1,2", r"--seed is also given; drop one"),
    ("-n 2 --compare seed=1,2", r"-n and --compare: a comparison shows one output per cell"),
    ("--compare num=1,2", r"'num' is not something to compare"),
    ("--compare style=photo", r"'style' is not something to compare for text; did you mean tone\?"),
    ("--compare model=echo:,nosuchmodel", r"--compare cell model=nosuchmodel: .*nosuchmodel"),
    ("--compare raw=true,maybe", r"--compare raw=maybe: expected true or false"),
])
def test_comparison_errors_are_one_line(ip: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        run(ip, f"%%generate -m echo: {line}\nhi")
    assert "\n" not in str(err.value)
    assert genmagic._magics.engine.history.list(n=5) == []  # nothing ran


def test_python_api_comparison_and_model_axis() -> None:
    grid = genmagic.comparison("hey", "model=echo:one,echo:two", kind="text", seed=1)
    assert [cell.text for cell in grid] == ["one", "two"]
    assert [cell.request.model for cell in grid] == ["echo:one", "echo:two"]
    with pytest.raises(OptionError, match="kind='audio'"):
        genmagic.comparison("hey", "seed=1,2", kind="audio")


def test_kernel_interrupt_keeps_the_finished_cells(genmagic_home: Path) -> None:
    """A real kernel: interrupting during cell 2 of 3 keeps cell 1, the partial cell 2 and the grid
    bound to --out; the grid is shown and history has both runs."""
    from conftest import kernel_execute
    from jupyter_client.manager import start_new_kernel

    from genmagic.history import History

    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})

    def execute(code: str, interrupt_on: str = "") -> tuple[dict, list[dict]]:
        return kernel_execute(km, kc, code, interrupt_on, delay=0.5)

    try:
        assert execute("%load_ext genmagic")[0]["status"] == "ok"
        # the embedded tiny-image: slow enough per step for the interrupt to land inside cell 2
        code = "%%imagine -m tiny-image --seed 1 --compare steps=2,400,3 --out g\na red circle"
        reply, msgs = execute(code, interrupt_on="cell 2 of 3")
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        shown = [m["content"]["data"]["text/html"] for m in msgs if m["msg_type"] == "display_data"
                 and "genmagic-compare" in m["content"].get("data", {}).get("text/html", "")]
        assert shown and "interrupted: 2 of 3 cells done" in shown[-1]
        reply, msgs = execute("print(g.status, [c.status for c in g], g[0].result.history_id, g[1].result.history_id)")
        printed = "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")
        assert printed.startswith("interrupted ['ok', 'interrupted', 'pending']"), printed
        first, second = (int(x) for x in printed.split()[-2:])
        assert History(genmagic_home).get(first).status == "ok"
        assert History(genmagic_home).get(second).status == "interrupted"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
