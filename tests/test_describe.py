"""``options.describe``: the plain description option panels (widgets, the lab sidebar) are built from."""

from __future__ import annotations

import pytest

from genmagic import options as opts
from genmagic.cli import build_parser


@pytest.mark.parametrize("cls", [opts.TextOptions, opts.TextControls, opts.ImageOptions, opts.ImageControls])
def test_describe_lists_every_option_with_its_flag_default_and_bounds(cls: type[opts.Options]) -> None:
    described = opts.describe(cls)
    fields = cls.option_fields()
    assert [d["name"] for d in described] == [f.name for f in fields]
    for d, f in zip(described, fields, strict=True):
        spec = f.metadata["spec"]
        assert d["flag"] == "--" + f.name.replace("_", "-")
        assert d["default"] == f.default and d["help"] == spec.help and d["widget"] == spec.widget
        assert (d["min"], d["max"], d["repeat"]) == (spec.min, spec.max, spec.repeat)
        assert d["choices"] == (list(spec.choices) if spec.choices else None)


def test_describe_gives_types_and_values_a_panel_can_use() -> None:
    text = {d["name"]: d for d in opts.describe(opts.TextOptions)}
    assert text["temperature"]["type"] == "float" and (text["temperature"]["min"], text["temperature"]["max"]) == (0.0, 5.0)
    assert text["seed"]["type"] == "int" and text["seed"]["default"] is None  # int | None: the base type
    assert text["stop"]["repeat"] and text["stop"]["default"] == ()
    controls = {d["name"]: d for d in opts.describe(opts.TextControls)}
    assert controls["format"]["choices"] == ["auto", "markdown", "text", "code", "json", "html"]
    assert controls["interpolate"]["widget"] is False  # notebook-only: no panel control


# The command line's own flag of the same name: `genmagic generate --over FILE` takes a table file, the
# magic's --over a notebook variable.
CLI_OWN = {("generate", "--over")}


def test_every_described_flag_but_the_notebook_only_ones_is_an_option_of_the_command_line() -> None:
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for classes, command in (((opts.TextOptions, opts.TextControls), "generate"),
                             ((opts.ImageOptions, opts.ImageControls), "imagine")):
        known = sub.choices[command]._option_string_actions
        for cls in classes:
            for d in opts.describe(cls):
                negated = "--no-" + d["flag"][2:]
                if (command, d["flag"]) in CLI_OWN:
                    continue
                assert (d["flag"] in known or negated in known) is not d["notebook_only"], (command, d["flag"])
