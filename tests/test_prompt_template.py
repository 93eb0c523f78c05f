"""A plain prompt goes through the tokenizer's chat template as one user turn; ``--raw`` sends
it as plain text to continue; a model folder (``genmagic.json``) or an alias (``params``) can
make raw its default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import run

import genmagic
from genmagic.options import TextOptions


def _prompt_text(alias: str, prompt: str, options: TextOptions, given: tuple[str, ...] = ()) -> str:
    """The text the model is fed for ``prompt`` (the request resolved as the magic does)."""
    engine = genmagic._magics.engine
    backend = genmagic.registry.get_backend("transformers")
    loaded = engine.models.get(engine.registry.resolve(alias, "text"), options)
    request = engine.request("text", prompt, options, model=alias, given=given)
    return str(loaded.model.tokenizer.decode(backend.encode(loaded.model, request)))


def test_plain_prompt_is_a_user_turn_of_the_chat_template(ip: Any) -> None:
    assert _prompt_text("tiny", "What is a psalm?", TextOptions()) == "<user>What is a psalm?\n<assistant>"
    assert _prompt_text("tiny", "Once upon a time", TextOptions(raw=True)) == "Once upon a time"
    # --chat and --system still build the conversation with the template, raw or not
    assert _prompt_text("tiny", "hi", TextOptions(raw=True, system="be brief")) == "<system>be brief\n<user>hi\n<assistant>"


def test_raw_option_on_the_magic_line_and_in_the_cache_key(ip: Any) -> None:
    templated = run(ip, "%%generate -m tiny --seed 4 --max-new-tokens 6\nThe fox")
    raw = run(ip, "%%generate -m tiny --seed 4 --max-new-tokens 6 --raw\nThe fox")
    assert not templated.request.options.raw and raw.request.options.raw
    assert not raw.cached and raw.request.key() != templated.request.key()
    assert run(ip, "%%generate -m tiny --seed 4 --max-new-tokens 6 --raw\nThe fox").cached


def test_tokenizer_without_template_continues_the_text(ip: Any, tmp_path: Path) -> None:
    from genmagic.testing import build_tiny_text_model

    path = build_tiny_text_model(tmp_path / "base", chat_template=False)
    ip.run_line_magic("genmagic", f"register base {path}")
    assert _prompt_text("base", "Once upon a time", TextOptions()) == "Once upon a time"


@pytest.fixture
def base_dir(tiny_text_dir: Path, tmp_path: Path) -> Path:
    """The tiny model (its tokenizer has a chat template) marked as a base model in its own folder."""
    folder = tmp_path / "raw-by-default"
    shutil.copytree(tiny_text_dir, folder)
    (folder / "genmagic.json").write_text(json.dumps({"raw": True}))
    return folder


def test_model_folder_makes_raw_its_default(ip: Any, base_dir: Path) -> None:
    ip.run_line_magic("genmagic", f"register basemodel {base_dir}")
    result = run(ip, "%%generate -m basemodel --seed 1 --max-new-tokens 4\nOnce upon a time")
    assert result.request.options.raw
    assert _prompt_text("basemodel", "Once upon a time", TextOptions(), given=()) == "Once upon a time"


def test_a_model_folder_cannot_choose_the_device(ip: Any, base_dir: Path) -> None:
    (base_dir / "genmagic.json").write_text(json.dumps({"raw": True, "device": "meta"}))
    ip.run_line_magic("genmagic", f"register basemodel {base_dir}")
    result = run(ip, "%%generate -m basemodel --seed 1 --max-new-tokens 4\nOnce upon a time")
    assert result.request.options.raw and result.request.options.device is None and result.request.device == "cpu"


def test_alias_params_make_raw_the_default(ip: Any, tiny_text_dir: Path) -> None:
    (Path.cwd() / "genmagic.toml").write_text(f'[models.rawtiny]\nsource = "{tiny_text_dir}"\nparams = {{ raw = true }}\n')
    result = run(ip, "%%generate -m rawtiny --seed 1 --max-new-tokens 4\nOnce upon a time")
    assert result.request.options.raw
    assert _prompt_text("rawtiny", "Once upon a time", TextOptions(), given=()) == "Once upon a time"
    assert _prompt_text("tiny", "Once upon a time", TextOptions(), given=()) == "<user>Once upon a time\n<assistant>"
