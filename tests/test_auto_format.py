"""``-f auto``: markdown only where the model wrote markdown on purpose. Code-like text (dunder
names, subscripts called, ``**kwargs``) stays text; and when an output is markdown, the names
in it still show as written."""

from __future__ import annotations

import html

import pytest

from genmagic import display

MARKDOWN = [
    "# Title\n\nBody",
    "Steps:\n- one\n- two",
    "1. first\n2. second\n",
    "```python\nx = 1\n```",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "This is **important**.",
    "This is __very important__.",
    "It is *really* so.",
    "It is _really_ so.",
    "Use `pip install` here.",
    "See [the docs](https://example.org).",
    "See [the guide](docs/guide.md) and [below](#usage).",
    "Read [the notes](notes.md).",
    "![a fox](https://example.org/fox.png)",
]

TEXT = [
    "Call __init__ and then __repr__",
    "Put it in __init__.py, next to __main__.py.",
    "handlers[name](event)",
    "result = callbacks[0](obj.run)",
    "x = [a](b)",
    "a**2 + b**2 = c**2",
    "def f(*args, **kwargs): pass",
    "Match *.py and *.txt files.",
    "snake_case_name and _private and other_name_",
    "2 * 3 * 4 = 24",
]


@pytest.mark.parametrize("text", MARKDOWN)
def test_markdown_on_purpose_is_markdown(text: str) -> None:
    assert display.looks_like_markdown(text)
    assert display.resolve_format(text, "auto") == "markdown"
    assert "genmagic-text" not in display.render_text(text, "auto")


@pytest.mark.parametrize("text", TEXT)
def test_code_like_text_stays_text_as_written(text: str) -> None:
    assert not display.looks_like_markdown(text)
    shown = display.render_text(text, "auto")
    assert "genmagic-text" in shown and f">{html.escape(text)}<" in shown


def test_names_in_a_markdown_output_show_as_written() -> None:
    text = "# Notes\n\nCall __init__ and then __repr__; edit __init__.py or `__main__.py`, **not** __my_var__."
    shown = display.render_text(text, "auto")
    assert "<h1>Notes</h1>" in shown and "<strong>not</strong>" in shown
    assert "Call __init__ and then __repr__; edit __init__.py or <code>__main__.py</code>" in shown
    assert "__my_var__" in shown and shown.count("<strong>") == 1
    assert "<strong>very important</strong>" in display.render_text("This is __very important__.", "markdown")
