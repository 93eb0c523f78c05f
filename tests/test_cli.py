"""The command line, run as a user would: a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genmagic.cli", *args],
        capture_output=True, text=True, input=stdin, env=os.environ.copy(), timeout=300,
    )


def test_generate_streams_and_records(tiny_text_dir: Path) -> None:
    first = cli("generate", "-m", str(tiny_text_dir), "--seed", "2", "--max-new-tokens", "8", "Once upon")
    assert first.returncode == 0, first.stderr
    again = cli("generate", "-m", str(tiny_text_dir), "--seed", "2", "--max-new-tokens", "8", "Once upon")
    assert again.stdout == first.stdout and first.stdout.strip()
    hist = cli("history", "--json")
    records = json.loads(hist.stdout)
    assert [r["cached"] for r in records] == [True, False]
    assert records[1]["prompt"] == "Once upon"
    table = cli("history", "-n", "1")
    assert "Once upon" in table.stdout and "(cached)" in table.stdout
    shown = cli("show", str(records[1]["id"]))
    assert shown.stdout.strip() == first.stdout.strip()


def test_prompt_from_stdin(tiny_text_dir: Path) -> None:
    out = cli("generate", "-m", str(tiny_text_dir), "--temperature", "0", "--max-new-tokens", "4", "-", stdin="The fox")
    assert out.returncode == 0
    assert json.loads(cli("history", "--json").stdout)[0]["prompt"] == "The fox"


def test_errors_exit_2_with_one_line() -> None:
    out = cli("generate", "-m", "no-such-model", "hi")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown model 'no-such-model'" in out.stderr
    bad = cli("generate", "--temperature", "-1", "hi")
    assert bad.returncode == 2 and "--temperature: must be between 0 and 5, got -1" in bad.stderr


def test_models_lists_builtins() -> None:
    out = cli("models")
    assert "tiny-text" in out.stdout and "tiny-image" in out.stdout


def test_hub_id_from_the_local_cache(tiny_text_dir: Path, tmp_path: Path) -> None:
    """A hub id resolves offline when its files are in the HF cache (laid out as huggingface_hub does)."""
    import shutil

    cache = tmp_path / "hf"
    repo = cache / "models--someorg--tiny-model"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_text_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "genmagic.cli", "generate", "-m", "someorg/tiny-model", "--seed", "1",
         "--max-new-tokens", "5", "Hi"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(subprocess.run([sys.executable, "-m", "genmagic.cli", "history", "--json"],
                                       capture_output=True, text=True, env=env).stdout)[0]
    assert record["model"] == "someorg/tiny-model" and record["status"] == "ok"


def test_help_leaves_out_the_notebook_only_options() -> None:
    for command in ("generate", "imagine"):
        shown = cli(command, "--help")
        assert shown.returncode == 0 and "--no-cache" in shown.stdout
        for notebook_only in (r"--out\b(?!put)", "--no-interpolate", "notebook's variables", "--chat"):
            assert not re.search(notebook_only, shown.stdout), (command, notebook_only)
    refused = cli("generate", "--out", "story", "hi")
    assert refused.returncode == 2 and "--out" in refused.stderr


def test_errors_name_the_command_line_commands(ip: Any) -> None:
    unknown = cli("generate", "-m", "no-such-model", "hi")
    assert "(see `genmagic models`, or add the alias to genmagic.toml)" in unknown.stderr
    wrong_kind = cli("imagine", "-m", "tiny-text", "a circle")
    assert wrong_kind.returncode == 2 and "model from `genmagic models`" in wrong_kind.stderr
    missing = cli("show", "999")
    assert missing.returncode == 2 and missing.stderr.rstrip().endswith("see `genmagic history`")
    for shown in (unknown, wrong_kind, missing):
        assert "%genmagic" not in shown.stderr
    # the magics keep naming their own commands
    with pytest.raises(UsageError, match=r"see `%genmagic models`, or `%genmagic register ALIAS PATH`"):
        run(ip, "%generate -m no-such-model hi")
    with pytest.raises(UsageError, match="see `%genmagic history`"):
        run(ip, "%genmagic show 999")


def test_an_unknown_option_names_the_closest_one(ip: Any) -> None:
    typo = cli("generate", "--temprature", "0.5", "hi")
    assert typo.returncode == 2
    assert typo.stderr.splitlines()[-1] == (
        "genmagic generate: error: unrecognized arguments: --temprature; did you mean --temperature?"
    )
    assert "did you mean --steps?" in cli("imagine", "--stepz", "3", "a circle").stderr
    assert "did you mean --search?" in cli("history", "--serach", "x").stderr
    # the magics, with the same parsers
    with pytest.raises(UsageError, match=r"^unrecognized arguments: --temprature; did you mean --temperature\?$"):
        run(ip, "%%generate -m tiny --temprature 0.5\nhi")
    with pytest.raises(UsageError, match=r"did you mean --steps\?"):
        run(ip, "%imagine --stepz 3 a circle")
    with pytest.raises(UsageError, match=r"--serach x; did you mean --search\? \(see %genmagic -h\)$"):
        run(ip, "%genmagic history --serach x")
    import genmagic

    with pytest.raises(genmagic.OptionError, match=r"unknown option 'temprature'; did you mean temperature\?"):
        genmagic.generate("hi", model="echo:", temprature=0.5)


def test_a_piped_prompt_is_the_same_request_as_the_words(tiny_text_dir: Path) -> None:
    args = ("generate", "-m", str(tiny_text_dir), "--seed", "3", "--max-new-tokens", "4")
    piped = cli(*args, "-", stdin="The fox\n")
    typed = cli(*args, "The fox")
    assert piped.returncode == typed.returncode == 0, piped.stderr + typed.stderr
    typed_row, piped_row = json.loads(cli("history", "--json").stdout)
    assert piped_row["prompt"] == "The fox" and typed_row["key"] == piped_row["key"]
    assert typed_row["cached"] and typed.stdout == piped.stdout
    # inner newlines stay: only the end of the input is trimmed
    cli(*args, "-", stdin="line one\nline two\n\n")
    assert json.loads(cli("history", "--json", "-n", "1").stdout)[0]["prompt"] == "line one\nline two"
