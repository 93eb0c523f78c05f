"""What a newcomer tripped on: --stop escapes and empty stops, notebook-only flags on the CLI,
%genmagic unload/register mistakes, the CLI's --version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError

from genmagic import options as opts
from genmagic.cli import main


def test_stop_typed_on_a_line_takes_escapes(ip: Any) -> None:
    result = run(ip, r"%%generate -m echo: --seed 1 --stop '\n' --stop 'a\tb' --stop 'c\\n' --stop '\q'" + "\nx")
    assert result.request.options.stop == ("\n", "a\tb", "c\\n", "\\q")


def test_python_api_stop_is_taken_as_given() -> None:
    assert opts.TextOptions(stop=(r"\n",)).stop == (r"\n",)  # only typed text is unescaped


@pytest.mark.parametrize("value", ["", ("x", "")])
def test_an_empty_stop_is_refused(value: Any) -> None:
    with pytest.raises(opts.OptionError, match="--stop needs some text"):
        opts.TextOptions(stop=value)


def test_an_empty_stop_in_the_magic_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError, match="--stop needs some text"):
        run(ip, "%%generate -m echo: --stop ''\nhello")


def test_cli_names_notebook_only_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "hi", "--out", "x"])
    assert exc.value.code == 2
    assert "--out exists only in a notebook (%%generate --out)" in capsys.readouterr().err


def test_cli_version() -> None:
    out = subprocess.run([sys.executable, "-m", "genmagic.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("genmagic ")


def test_unload_an_unknown_alias_is_an_error(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="unload no-such-model: no such model"):
        run(ip, "%genmagic unload no-such-model")
    run(ip, "%genmagic unload tiny")
    capsys.readouterr()
    run(ip, "%genmagic unload tiny")  # a known alias that is not loaded: just says so
    assert "nothing" in capsys.readouterr().out


def test_register_with_a_missing_adapter_folder_is_refused(ip: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-lora"
    with pytest.raises(UsageError, match="no such folder"):
        run(ip, f"%genmagic register mine {tmp_path} --adapter {missing}")


def test_models_table_marks_a_source_that_is_not_there(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    Path("genmagic.toml").write_text('[models.typo]\nsource = "./models/not-copied-yet"\n')
    table = run(ip, "%genmagic models")
    row = next(r for r in table.rows if r[0] == "typo")
    assert row[3].endswith("not-copied-yet (not found)")
    assert main(["models"]) == 0
    assert "not-copied-yet (not found)" in capsys.readouterr().out


def test_no_suggestion_for_an_option_that_resembles_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "hi", "--bogus"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err and "did you mean" not in err
    with pytest.raises(SystemExit):
        main(["generate", "hi", "--temprature", "0.5"])
    assert "did you mean --temperature?" in capsys.readouterr().err


def test_registering_through_the_python_registry_checks_the_adapter_too(tmp_path: Path) -> None:
    from genmagic.registry import Registry

    with pytest.raises(opts.OptionError, match="no such folder"):
        Registry().register("mine", str(tmp_path), adapters=[str(tmp_path / "missing-lora")])
