"""Every user mistake is a one-line UsageError naming the option, the value and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError


def usage_error(ip: Any, cell: str) -> str:
    with pytest.raises(UsageError) as info:
        run(ip, cell)
    assert type(info.value) is UsageError  # the plain class: IPython then shows one line
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--temperature 9", "--temperature: must be between 0 and 5, got 9; e.g. --temperature 0.7"),
        ("--temperature hot", "--temperature: expected a number between 0 and 5, got 'hot'"),
        ("--top-p 1.5", "--top-p: must be between 0 and 1, got 1.5"),
        ("--max-new-tokens 0", "--max-new-tokens: must be between 1"),
        ("--max-new-tokens 2.5", "--max-new-tokens: expected a whole number"),
        ("-n 0", "--num: must be between 1 and 16, got 0"),
        ("--seed -1", "--seed: must be between 0"),
        ("-f yaml", "invalid choice: 'yaml'"),
        ("--bogus 1", "unrecognized arguments: --bogus"),
        ("--out 1x", "--out needs a Python variable name, got '1x'"),
    ],
)
def test_bad_options(ip: Any, line: str, expected: str) -> None:
    assert expected in usage_error(ip, f"%%generate -m tiny {line}\nHi")


def test_unknown_model_suggests_close_names(ip: Any) -> None:
    message = usage_error(ip, "%%generate -m tinny\nHi")
    assert "unknown model 'tinny'" in message and "did you mean tiny" in message


def test_image_model_for_text_is_an_error(ip: Any) -> None:
    assert "is a image model, not a text model" in usage_error(ip, "%%generate -m tiny-image\nHi").replace(
        "an image", "a image"
    )


def test_hub_id_not_cached_says_how_to_fetch(ip: Any) -> None:
    message = usage_error(ip, "%%generate -m someorg/some-model\nHi")
    assert "not in the local Hugging Face cache" in message and "hf download someorg/some-model" in message


def test_unknown_variable(ip: Any) -> None:
    assert "unknown variable 't_missing'" in usage_error(ip, "%%generate -m tiny\nabout {t_missing}")


def test_bad_placeholder(ip: Any) -> None:
    ip.user_ns["t_num"] = 3
    assert "cannot fill {t_num:zz}" in usage_error(ip, "%%generate -m tiny\n{t_num:zz}")


def test_empty_prompt(ip: Any) -> None:
    assert "the prompt is empty" in usage_error(ip, "%%generate -m tiny\n   ")


def test_folder_without_weights(ip: Any, tiny_text_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "noweights"
    shutil.copytree(tiny_text_dir, empty)
    (empty / "model.safetensors").unlink()
    message = usage_error(ip, f"%%generate -m {empty}\nHi")
    assert "has no model weights (*.safetensors)" in message


def test_pickle_weights_need_opt_in(ip: Any, tiny_text_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_text_dir, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    message = usage_error(ip, f"%%generate -m {pickled}\nHi")
    assert "only pickle weights (pytorch_model.bin)" in message and "allow_pickle" in message
    run(ip, f"%genmagic register trusted {pickled} --allow-pickle")
    assert run(ip, "%%generate -m trusted --seed 1 --max-new-tokens 3\nHi").ok


def test_folder_that_is_no_model(ip: Any, tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    assert "holds no text model" in usage_error(ip, f"%%generate -m {tmp_path / 'junk'}\nHi")


def test_prompt_longer_than_context(ip: Any) -> None:
    ip.user_ns["t_long"] = "the fox " * 200
    message = usage_error(ip, "%%generate -m tiny --max-new-tokens 8\n{t_long}")
    assert "has room for 120" in message and "--truncate" in message
    result = run(ip, "%%generate -m tiny --max-new-tokens 8 --truncate --seed 1\n{t_long}")
    assert result.ok and result.timings["prompt_tokens"] == 120


def test_max_new_tokens_beyond_context(ip: Any) -> None:
    assert "does not fit tiny's context of 128 tokens" in usage_error(ip, "%%generate -m tiny --max-new-tokens 500\nHi")


def test_invalid_json_output_names_position(ip: Any) -> None:
    message = usage_error(ip, "%%generate -m echo: -f json --out t_bad\n{\"a\": 1,, }")
    assert "not valid JSON" in message and "line 1 column 9 (char 8" in message
    assert ip.user_ns["t_bad"].text == '{"a": 1,, }'  # the raw result is kept


def test_errors_are_recorded_in_history(ip: Any) -> None:
    import genmagic

    usage_error(ip, "%%generate -m tiny --max-new-tokens 500\nHi")
    rec = genmagic._magics.engine.history.list(1)[0]
    assert rec.status == "error" and "does not fit" in rec.error


def test_genmagic_bad_subcommand(ip: Any) -> None:
    assert "%genmagic" in usage_error(ip, "%genmagic frobnicate")
    assert "unknown model" in usage_error(ip, "%genmagic use text nothing-here")


def test_unclosed_quote_in_the_line(ip: Any) -> None:
    assert "close every quote" in usage_error(ip, '%%generate -m tiny --system "unclosed\nHi')
    assert "close every quote" in usage_error(ip, "%%generate -m tiny --stop \\\nHi")
