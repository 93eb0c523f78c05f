"""The cell that reproduces a run parses back, with the magics' own parser, to the same run."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genmagic import options as opts
from genmagic.magic_line import cell_for_request, magic_cell, unreproducible


def parse(ip: Any, cell: str) -> tuple[Any, Any, str]:
    """Options, controls and prompt of a cell, as %%generate / %%imagine would read them."""
    import genmagic

    first, _, body = cell.partition("\n")
    magic_name, _, line = first[2:].partition(" ")
    magics = genmagic._magics
    magic = getattr(magics, magic_name)
    classes = (opts.TextOptions, opts.TextControls) if magic_name == "generate" else (opts.ImageOptions, opts.ImageControls)
    options, controls, prompt, _ = magics._parse(magic, line, body, *classes)
    return options, controls, prompt


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=1, max_size=20).filter(
    lambda s: s != "--")  # argparse reads a lone -- as the end of the options: see test_values_starting_with_a_dash


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    temperature=st.floats(0, 5, allow_nan=False),
    seed=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    stop=st.lists(st.text(min_size=1, max_size=6).filter(lambda s: "\x00" not in s), max_size=2),
    # free text (a panel's Textarea): any character, line breaks too
    system=st.one_of(st.none(), st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s and s != "--")),
    raw=st.booleans(),
    prompt=texts.filter(lambda s: s.strip("\n").strip() != ""),
)
def test_text_cell_round_trip(ip: Any, temperature: float, seed: int | None, stop: list[str], system: str | None,
                              raw: bool, prompt: str) -> None:
    ip.user_ns["item"] = "FILLED"  # a brace in the prompt must never be filled on the re-run
    options = opts.TextOptions(temperature=temperature, seed=seed, stop=tuple(stop), system=system, raw=raw)
    cell = magic_cell("text", prompt, model="tiny", options=options.to_dict(), controls={"safety": "warn"})
    parsed, controls, parsed_prompt = parse(ip, cell)
    assert parsed == options
    assert controls.model == "tiny" and controls.safety == "warn"
    assert parsed_prompt == prompt.strip("\n")


def test_defaults_leave_out_what_the_run_gets_anyway(ip: Any) -> None:
    values = opts.TextOptions(temperature=0.3, top_k=50).to_dict()
    cell = magic_cell("text", "hi", options=values, defaults={"temperature": 0.3})
    assert cell == "%%generate\nhi"  # top_k 50 is the options' default; temperature the model's
    full = magic_cell("text", "hi", options=values)  # no defaults: every value is written
    assert "--temperature 0.3" in full and "--top-k 50" in full


def test_image_request_round_trip(ip: Any, tiny_text_dir: Any) -> None:
    options = opts.ImageOptions(steps=7, guidance=3.5, negative="blurry, 'ugly'", seed=3, lora=("a b.safetensors:0.5",))
    data = {"kind": "image", "prompt": "a {red} circle", "model": "tiny-image", "options": options.to_dict(),
            "inputs": {}, "messages": []}
    cell = cell_for_request(data)
    assert cell.splitlines()[0].endswith("--no-interpolate")
    parsed, controls, prompt = parse(ip, cell)
    assert parsed == options and prompt == "a {red} circle" and controls.model == "tiny-image"


def test_json_requests_and_what_a_cell_cannot_carry() -> None:
    data = {"kind": "text", "prompt": "p", "model": "m", "options": {"seed": 1},
            "inputs": {"response_format": "json"}, "messages": [["user", "a"]]}
    assert cell_for_request(data).startswith("%%generate -m m --seed 1 -f json")
    assert unreproducible(data) == ["messages"]
    with pytest.raises(opts.OptionError, match="unknown text option"):
        magic_cell("text", "p", options={"steps": 3})


def test_values_starting_with_a_dash_stay_values(ip: Any) -> None:
    """Found by the round trip above: ``--system -:`` read ``-:`` as an option ("expected one argument")."""
    options = opts.TextOptions(system="-:", stop=("-x", "ok"), seed=1)
    cell = magic_cell("text", "hi", model="tiny", options=options.to_dict())
    assert "--system=-:" in cell and "--stop=-x" in cell
    parsed, _, _ = parse(ip, cell)
    assert parsed == options
    with pytest.raises(opts.OptionError, match="--system '--' cannot be written on a magic line"):
        magic_cell("text", "hi", options={"system": "--"})
