"""Style and tone presets: the prompt and options they change, given options winning, config
files adding and replacing presets, and one-line errors for bad entries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

import genmagic
from genmagic import presets
from genmagic.errors import OptionError
from genmagic.registry import Registry

ECHO = '[models.e]\nsource = "echo:"\nkind = "text"\nbackend = "echo"\nparams = { temperature = 0.9, top_k = 7 }\n'


def _project(text: str) -> Path:
    path = Path("genmagic.toml")  # the tests' working directory: the project file
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_presets_cover_the_documented_names() -> None:
    registry = Registry()
    styles, tones = presets.names("image", registry), presets.names("text", registry)
    assert {"watercolor", "photo", "pixel-art", "line-art", "oil-painting", "sketch", "cinematic"} <= set(styles)
    assert {"formal", "friendly", "concise", "playful", "technical"} <= set(tones)
    assert styles == sorted(styles)
    with pytest.raises(OptionError, match="use 'text' \\(tones\\) or 'image' \\(styles\\)"):
        presets.names("audio", registry)


def test_a_tone_adds_its_system_prompt_and_defaults_and_beats_the_models_defaults() -> None:
    _project(ECHO)
    result = genmagic.generate("hello", model="e", tone="concise", seed=1)
    options = result.request.options
    assert options.system == presets.get("text", "concise").addition
    assert options.temperature == 0.3 and options.max_new_tokens == 80  # the preset's, not the model's 0.9
    assert options.top_k == 7  # the model's default for what the preset does not set
    assert result.info["preset"] == "tone concise"
    plain = genmagic.generate("hello", model="e", seed=1)
    assert plain.request.options.temperature == 0.9 and plain.request.options.system is None


def test_given_options_win_over_the_preset_and_additions_join_the_users_text() -> None:
    _project(ECHO)
    result = genmagic.generate("hello", model="e", tone="concise", temperature=1.5, system="Be kind.", seed=1)
    assert result.request.options.temperature == 1.5
    assert result.request.options.max_new_tokens == 80
    assert result.request.options.system == "Be kind.\n\n" + presets.get("text", "concise").addition


def test_a_project_preset_sets_the_prompt_actually_sent_and_history_keeps_it(ip: Any) -> None:
    _project(ECHO + '[presets.tone.pirate]\ntemplate = "Arr! {prompt} {0} {__class__} {prompt.upper}"\n'
             'options = { max_new_tokens = 40 }\n')
    result = run(ip, "%%generate -m e --tone pirate --seed 1\nhi {x}".replace("{x}", "there"))
    sent = "Arr! hi there {0} {__class__} {prompt.upper}"  # str.replace: nothing but {prompt} is filled
    assert result.request.prompt == sent and result.text == sent[:40]
    shown = run(ip, f"%genmagic show {result.history_id}")
    assert shown.request.prompt == sent and shown.info["preset"] == "tone pirate"
    assert "tone pirate" in shown._repr_mimebundle_()["text/html"] and repr(sent) in repr(shown)


def test_a_style_changes_the_prompt_negative_and_guidance(img_ip: Any) -> None:
    result = run(img_ip, "%%imagine -m tiny-img --style watercolor --steps 1 --seed 3 --negative blurry\na red circle")
    style = presets.get("image", "watercolor")
    assert result.request.prompt == style.template.replace("{prompt}", "a red circle")
    assert result.request.options.negative == "blurry, " + style.addition
    assert result.request.options.guidance == style.options["guidance"]
    assert result.info["preset"] == "style watercolor"
    assert "style watercolor" in result._repr_mimebundle_()["text/html"]  # the footer names it
    assert f"prompt sent={result.request.prompt!r}" in repr(result)
    given = run(img_ip, "%%imagine -m tiny-img --style watercolor --steps 1 --seed 3 --guidance 2\na red circle")
    assert given.request.options.guidance == 2.0


def test_project_presets_replace_user_presets_which_replace_builtins(tmp_path: Path) -> None:
    user = tmp_path / "config" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[presets.style.photo]\ntemplate = "USER {prompt}"\n[presets.style.mine]\ntemplate = "M {prompt}"\n')
    _project('[presets.style.photo]\ntemplate = "PROJECT {prompt}"\n')
    registry = Registry()
    assert presets.get("image", "photo", registry).fill("x") == "PROJECT x"
    assert presets.get("image", "photo", registry).origin == "project"
    assert presets.get("image", "mine", registry).origin == "user"
    assert presets.get("image", "watercolor", registry).origin == "builtin"
    assert "mine" in presets.names("image", registry) and "mine" not in presets.names("text", registry)
    listing = repr(presets.table("image", registry))
    assert "mine" in listing and "PROJECT {prompt}" in listing and "tone" not in listing.split("\n")[2]


@pytest.mark.parametrize(("entry", "message"), [
    ('[presets.style.bad]\ntemplate = "no placeholder"', r"\[presets.style.bad\]: template must be text containing \{prompt\}"),
    ('[presets.style.bad]\ntemplate = "{prompt}"\nsystem = "x"', r"\[presets.style.bad\]: unknown key 'system' \(system belongs to a tone\)"),
    ('[presets.style.bad]\ntemplate = "{prompt}"\nnegativ = "x"', r"unknown key 'negativ'; did you mean negative\?"),
    ('[presets.style.bad]\ntemplate = "{prompt}"\noptions = { guidanse = 3 }', r"options.guidanse is not a image option; did you mean guidance\?"),
    ('[presets.tone.bad]\ntemplate = "{prompt}"\noptions = { temperature = 9 }', r"\[presets.tone.bad\]: options.temperature: --temperature must be between 0 and 5, got 9"),
    ('[presets.tone.bad]\ntemplate = "{prompt}"\noptions = { temperature = "hot" }', r"options.temperature: --temperature must be a number"),
    ('[presets.style.bad]\ntemplate = "{prompt}"\noptions = { device = "cuda" }', r"options.device: a preset may not choose device"),
    ('[presets.style.bad]\ntemplate = 3', r"template must be text containing \{prompt\}, got 3"),
    ('[presets.style]\nbad = "x"', r"\[presets.style.bad\] must be a table"),
    ('[presets.mood.bad]\ntemplate = "{prompt}"', r"unknown preset kind 'mood'"),
])
def test_a_bad_preset_entry_is_one_line_naming_file_preset_and_key(entry: str, message: str) -> None:
    path = _project(entry + "\n")
    with pytest.raises(OptionError, match=message) as err:
        presets.load(Registry())
    assert str(path.resolve()) in str(err.value) or str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_preset_lists_the_others_and_how_to_define_one(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"--style 'watercolour': no such style; did you mean watercolor\? available: .*"
                       r"pixel-art.*define one in genmagic.toml as \[presets.style.watercolour\]"):
        run(ip, "%%imagine --style watercolour\na cat")
    with pytest.raises(OptionError, match="--tone 'posh': no such tone"):
        genmagic.generate("hi", model="echo:", tone="posh")


def test_genmagic_presets_lists_them_in_the_notebook_and_the_cli(ip: Any) -> None:
    table = run(ip, "%genmagic presets text")
    assert [row[0] for row in table.rows] == presets.names("text")
    assert all(row[1] == "tone (text)" for row in table.rows)
    assert "temperature=0.5" in repr(table)
    out = subprocess.run([sys.executable, "-m", "genmagic.cli", "presets", "image"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "watercolor" in out.stdout and "a watercolor painting of {prompt}" in out.stdout and "formal" not in out.stdout
