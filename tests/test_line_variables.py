"""``{name}`` on the magic line: the line is split first, then each word is filled, so a
variable is always exactly one value (spaces, quotes and dashes in it never make more words
or options). Run in a real IPython shell, for %%generate and %%imagine."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

VALUES = {
    "spaces": "You are terse.",
    "quote": "don't ramble",
    "options": "--no-cache --out t_hijacked",
    "one_flag": "--chat",
}


@pytest.mark.parametrize("case", sorted(VALUES))
def test_a_variable_is_one_value_for_generate(ip: Any, case: str) -> None:
    ip.user_ns["t_value"] = VALUES[case]
    result = run(ip, "%%generate -m echo: --seed 1 --system {t_value}\nhello")
    options: Any = result.request.options
    assert options.system == VALUES[case]
    assert result.request.prompt == "hello" and not options.chat
    assert "t_hijacked" not in ip.user_ns


def test_a_variable_inside_a_word_is_filled_in_place(ip: Any) -> None:
    ip.user_ns["t_tone"] = "very brief, don't"
    result = run(ip, '%%generate -m echo: --seed 1 --system "Be {t_tone}." --stop={t_tone}\nhello')
    assert result.request.options.system == "Be very brief, don't."
    assert result.request.options.stop == ("very brief, don't",)
    assert run(ip, "%generate -m echo: about {t_tone}").text == "about very brief, don't"


def test_no_interpolate_leaves_the_line_alone(ip: Any) -> None:
    ip.user_ns["t_value"] = "x"
    result = run(ip, "%%generate -m echo: --no-interpolate --system {t_value}\nhello")
    assert result.request.options.system == "{t_value}"


@pytest.mark.parametrize("case", ["spaces", "quote", "options"])
def test_a_variable_is_one_value_for_imagine(img_ip: Any, case: str) -> None:
    img_ip.user_ns["i_value"] = VALUES[case]
    result = run(img_ip, "%%imagine -m tiny-img --steps 2 --seed 1 --negative {i_value}\na red circle")
    assert result.ok and result.request.options.negative == VALUES[case]
    assert result.request.prompt == "a red circle" and "t_hijacked" not in img_ip.user_ns


# Values that would be options if the magic line were split after filling: in the prompt's
# words (where no flag before them asks for a value) they stay words of the prompt.
PROMPT_WORDS = ["--out=t_stolen", "--chat", "-mtiny", "-n4", "--no-cache --out t_stolen", "-y"]


@pytest.mark.parametrize("value", PROMPT_WORDS)
def test_a_variable_in_the_prompt_is_a_word_of_it_for_generate(ip: Any, value: str) -> None:
    ip.user_ns["t_value"] = value
    for cell, prompt in (("%generate -m echo: --seed 1 about {t_value}", f"about {value}"),
                         ("%%generate -m echo: --seed 1 {t_value}\nhello", f"{value}\nhello")):
        result = run(ip, cell)
        options: Any = result.request.options
        assert result.request.prompt == prompt and result.text == prompt
        assert result.request.model == "echo:" and options.num == 1 and not options.chat
        assert "t_stolen" not in ip.user_ns


def test_two_variables_after_a_flag_are_its_value_then_a_prompt_word(ip: Any) -> None:
    ip.user_ns.update(t_a="-x", t_b="-y")
    result = run(ip, "%generate -m echo: --seed 1 --system {t_a} {t_b}")
    assert result.request.options.system == "-x" and result.request.prompt == "-y"


def test_an_unknown_word_in_an_error_is_the_value_not_a_placeholder(ip: Any) -> None:
    ip.user_ns.update(t_a="about", t_b="-y")
    with pytest.raises(UsageError, match=r"unrecognized arguments: -y$"):
        run(ip, "%generate -m echo: {t_a} --seed 1 {t_b}")


@pytest.mark.parametrize("value", ["-n2", "--out=i_stolen", "--steps=9"])
def test_a_variable_in_the_prompt_is_a_word_of_it_for_imagine(img_ip: Any, value: str) -> None:
    img_ip.user_ns["i_value"] = value
    result = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 1 a red {i_value}")
    options: Any = result.request.options
    assert result.ok and result.request.prompt == f"a red {value}"
    assert options.num == 1 and options.steps == 2 and len(result.images) == 1
    assert "i_stolen" not in img_ip.user_ns
