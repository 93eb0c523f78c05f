"""What a run shows while it runs and when it ends: the live views stream in the style the
result ends in, say when a model loads, show seeds from the start; plain text stays as the
model wrote it (``-f auto``); every colour follows the notebook's theme."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import run

from genmagic import display, text_run
from genmagic.options import TextControls, TextOptions
from genmagic.request import Event, ListSink, Request
from genmagic.sinks import CellImageSink, CellTextSink, LoadingClock, StreamSink, TerminalImageSink

STORY = "\tOnce upon a time there was a fox.\nIt lived in a wood.\n\n\tThe end."


def engine() -> Any:
    import genmagic

    return genmagic._magics.engine


def request(seed: int | None = 5, num: int = 1) -> Request:
    return engine().request("text", "Hi", TextOptions(seed=seed, num=num, max_new_tokens=8), model="echo:")


# --------------------------------------------------------------------------- -f auto


def test_plain_text_keeps_its_tabs_and_line_breaks() -> None:
    """Markdown made a leading tab an indented code block and joined single lines into one paragraph."""
    shown = display.render_text(STORY, "auto")
    assert "<pre" not in shown and "<code" not in shown and "<p>" not in shown
    assert "white-space: pre-wrap" in shown and ">\tOnce upon a time there was a fox.\nIt lived in a wood.\n\n\tThe end.<" in shown
    assert display.render_text("a <b>bold</b> & claim", "auto").count("&lt;b&gt;") == 1  # escaped, never HTML


@pytest.mark.parametrize("text", [
    "# Title\n\nBody", "Steps:\n- one\n- two", "1. first\n2. second\n", "```python\nx = 1\n```",
    "This is **important**.", "Use `pip install` here.", "See [the docs](https://example.org).",
    "| a | b |\n|---|---|\n| 1 | 2 |", "It is *really* so.",
])
def test_markdown_is_detected_and_rendered(text: str) -> None:
    assert display.looks_like_markdown(text)
    assert "genmagic-text" not in display.render_text(text, "auto")


@pytest.mark.parametrize("text", [
    STORY, "- just one dash line", "2 * 3 * 4 = 24", "snake_case_name and other_name", "#hashtag", "a | b",
    "He said: *sigh*... no", "    indented four spaces", "5 > 3 and 2 < 4",
])
def test_plain_text_is_not_mistaken_for_markdown(text: str) -> None:
    if text == "He said: *sigh*... no":  # emphasis is emphasis, even in a story
        assert display.looks_like_markdown(text)
        return
    assert not display.looks_like_markdown(text)
    assert "genmagic-text" in display.render_text(text, "auto")


def test_explicit_formats_still_apply() -> None:
    assert "<pre><code>" in display.render_text(STORY, "markdown")  # CommonMark: the tab is a code block
    assert "genmagic-text" in display.render_text("# not a heading", "text")
    assert display.render_text('{"a": 1}', "json") == '<pre>{\n  &quot;a&quot;: 1\n}</pre>'
    assert display.render_text("<b>x</b><script>1</script>", "html") == "<b>x</b>"


def test_auto_is_the_default_format(ip: Any) -> None:
    assert TextControls().format == "auto"
    result = run(ip, f"%%generate -m echo: --no-cache\n{STORY}")
    assert result.format == "auto" and "<pre" not in result._repr_mimebundle_()["text/html"]


# --------------------------------------------------------------------------- streaming in the final style


@pytest.mark.parametrize("fmt", ["auto", "text", "markdown", "code", "html"])
def test_streamed_text_is_shown_as_the_result_will_be(ip: Any, fmt: str) -> None:
    """The live view streamed a monospace <pre>, then the result replaced it in another font."""
    pieces = ("\tOnce upon a time **there**", "\nwas a fox.\n", "The end.")
    sink = CellTextSink(fmt=fmt)
    sink.emit(Event("start", request()))
    for piece in pieces:
        sink.emit(Event("token", piece))
    live = sink.bundle()["text/html"]
    result = run(ip, f"%%generate -m echo: -f {fmt} --no-cache --no-stream\n{''.join(pieces)}")
    assert result.text == "".join(pieces)
    final = result._repr_mimebundle_()["text/html"]
    body = display.render_text(result.text, fmt)
    assert live.startswith(body) and final.startswith(body)


def test_n_samples_show_their_seeds_from_the_start() -> None:
    sink = CellTextSink(num=3)
    sink.emit(Event("start", request(seed=40, num=3)))
    sink.emit(Event("token", "a", 0))
    html = sink.bundle()["text/html"]
    assert [int(s) for s in re.findall(r"seed (\d+)</small>", html)] == [40, 41, 42]
    images = CellImageSink(num=3)
    images.emit(Event("start", request(seed=7, num=3)))
    from PIL import Image

    images.emit(Event("preview", Image.new("RGB", (8, 8), "red"), 1))
    assert "<figcaption" in images.bundle()["text/html"] and ">seed 8</figcaption>" in images.bundle()["text/html"]


def test_progress_updates_do_not_encode_the_previews_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    encoded: list[Any] = []
    real = display.png_bytes
    monkeypatch.setattr(display, "png_bytes", lambda image: encoded.append(image) or real(image))
    images = CellImageSink(num=1, interval=0.0)
    images.emit(Event("start", request(seed=7, num=1)))
    images.emit(Event("preview", Image.new("RGB", (8, 8), "red"), 0))
    for step in range(1, 6):
        images.emit(Event("progress", (step, 10), 0))
    assert len(encoded) == 1 and "step 5/10" in images.bundle()["text/html"]
    images.emit(Event("preview", Image.new("RGB", (8, 8), "blue"), 0))
    assert len(encoded) == 2


# --------------------------------------------------------------------------- loading


def test_a_cold_load_is_announced_once(ip: Any) -> None:
    engine().models.unload()
    events = ListSink()
    text_run.run(engine(), "Hi", TextOptions(seed=1, max_new_tokens=3), TextControls(cache=False), model="tiny",
                 sink=events)
    kinds = [e.type for e in events.events]
    assert kinds[:3] == ["start", "loading", "loaded"] and set(kinds[3:]) == {"token"}
    assert events.events[0].data.seed == 1 and events.events[1].data == "tiny"
    assert isinstance(events.events[2].data, float)
    warm = ListSink()
    text_run.run(engine(), "Hi", TextOptions(seed=1, max_new_tokens=3), TextControls(cache=False), model="tiny",
                 sink=warm)
    assert "loading" not in [e.type for e in warm.events]


def test_the_loading_notice_shows_the_elapsed_time_while_it_loads() -> None:
    ticked = threading.Event()
    clock = LoadingClock(ticked.set, every=0.01)
    clock.handle(Event("loading", "big-model"))
    assert ticked.wait(60), "the clock ticks on its own thread while the main thread is busy loading"
    assert re.fullmatch(r"loading big-model… \d+ s", clock.text())
    clock.handle(Event("loaded", 1.0))
    assert not clock.loading and clock.text() == ""
    sink = CellTextSink()
    sink.emit(Event("loading", "big-model"))
    assert "loading big-model…" in sink.bundle()["text/html"]
    sink.emit(Event("loaded", 0.1))
    sink.emit(Event("token", "Hello"))
    assert "loading" not in sink.bundle()["text/html"]
    image = CellImageSink()
    image.emit(Event("loading", "pictures"))
    assert "loading pictures…" in image.bundle()["text/plain"]
    for s in (sink, image):
        s.close(False, "failed")


def test_the_terminal_says_which_model_loads_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    sink = StreamSink(out, errors=err)
    for event in (Event("loading", "tiny"), Event("loaded", 0.2), Event("token", "Hi")):
        sink.emit(event)
    sink.close(True)
    assert out.getvalue() == "Hi\n" and re.fullmatch(r"loading tiny… \d+\.\d s\n", err.getvalue())
    images = io.StringIO()
    bar = TerminalImageSink(stream=images)
    bar.emit(Event("loading", "pics"))
    bar.close(False, "failed")
    assert images.getvalue().startswith("loading pics…") and images.getvalue().endswith("\n")


def test_the_cli_announces_a_cold_load(tiny_text_dir: Path) -> None:
    from test_cli import cli

    out = cli("generate", "-m", str(tiny_text_dir), "--seed", "2", "--max-new-tokens", "4", "Once")
    assert out.returncode == 0, out.stderr
    assert re.search(rf"loading {re.escape(str(tiny_text_dir))}… \d+\.\d s", out.stderr), out.stderr
    assert "loading" not in out.stdout


# --------------------------------------------------------------------------- theme colours


def _colours(html: str) -> list[str]:
    return re.findall(r"color:\s*([^;\"']+)", html)


def test_every_colour_follows_the_theme(ip: Any) -> None:
    """A fixed #888 footer has low contrast on light themes and vanishes on dark ones."""
    from PIL import Image

    result = run(ip, "%%generate -m echo:hello -n 2 --seed 3 --no-cache\nhi")
    shown = [result._repr_mimebundle_()["text/html"]]
    sink = CellTextSink(num=2)
    sink.emit(Event("start", result.request))
    sink.emit(Event("token", "x"))
    shown += [sink.bundle()["text/html"], sink.bundle("interrupted")["text/html"]]
    images = CellImageSink(num=1)
    images.emit(Event("progress", (1, 2)))
    images.emit(Event("preview", Image.new("RGB", (8, 8))))
    shown += [images.bundle()["text/html"], images.bundle("interrupted")["text/html"]]
    shown += [display.grid_html([Image.new("RGB", (8, 8))], ["seed 1"], "a note")]
    shown += [display.table_bundle(["a"], [["b"]], "a legend")["text/html"]]
    colours = [c for html in shown for c in _colours(html)]
    assert colours and all(c.startswith("var(--jp-") for c in colours), colours
    assert display.MUTED.startswith("var(--jp-ui-font-color2, #")


# --------------------------------------------------------------------------- %genmagic models


def test_models_table_has_a_legend_and_short_paths(ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "mine").mkdir(parents=True)
    run(ip, f"%genmagic register mine {tmp_path / 'models' / 'mine'} --kind text --backend transformers")
    table = run(ip, "%genmagic models")
    text = repr(table)
    sources = {row[0].rstrip("*"): row[3] for row in table.rows}
    assert sources["tiny-text"] == "<genmagic>/models/tiny-text" and sources["mine"] == "~/models/mine"
    assert text.splitlines()[-1].startswith("* the default model")
    assert "* the default model" in table._repr_mimebundle_()["text/html"]
    assert display.short_path("gpt2") == "gpt2" and display.short_path("/opt/m") == "/opt/m"


def test_cli_models_table_has_the_legend_and_short_paths() -> None:
    from test_cli import cli

    out = cli("models")
    assert out.returncode == 0, out.stderr
    assert "<genmagic>/models/tiny-text" in out.stdout and str(Path.home()) not in out.stdout
    assert out.stdout.rstrip().splitlines()[-1].startswith("* the default model")
