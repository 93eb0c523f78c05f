"""Model routing: built-ins < user file < project file < session; backends via entry points."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import run

import genmagic
from genmagic import registry
from genmagic.errors import ModelNotFoundError
from genmagic.registry import Registry


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_builtins_and_entry_points() -> None:
    reg = Registry()
    aliases = {s.alias: s for s in reg.specs()}
    assert aliases["tiny-text"].backend == "transformers" and aliases["tiny-text"].kind == "text"
    assert aliases["tiny-image"].kind == "image"
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="genmagic.backends")}
    assert {"transformers", "diffusers"} <= names  # built-ins register like a plugin would
    assert "echo" in registry.backend_names()  # registered at run time by the fixture


def test_project_overrides_user_overrides_builtin(tmp_path: Path, tiny_text_dir: Path) -> None:
    user = Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "config.toml"
    write(user, f'[models.tiny-text]\nsource = "{tiny_text_dir}"\n\n[models.mine]\nsource = "echo:user"\n')
    reg = Registry()
    assert reg.resolve("tiny-text", "text").source == str(tiny_text_dir)
    assert reg.resolve("tiny-text", "text").origin == "user"
    assert reg.resolve("mine", "text").backend == "echo"
    write(Path.cwd() / "genmagic.toml", '[models.mine]\nsource = "echo:project"\n\n[defaults]\ntext = "mine"\n')
    reg = Registry()
    assert reg.resolve("mine", "text").source == "echo:project"
    assert reg.default("text") == "mine"
    reg.register("mine", "echo:session")
    assert reg.resolve("mine", "text").source == "echo:session"


def test_project_file_relative_paths(tiny_text_dir: Path) -> None:
    shutil.copytree(tiny_text_dir, Path.cwd() / "models" / "local")
    (Path.cwd() / "sub").mkdir()
    write(Path.cwd() / "genmagic.toml", '[models.local]\nsource = "./models/local"\n')
    reg = Registry(project_file=None)
    os.chdir("sub")  # found in a parent directory
    spec = reg.resolve("local", "text")
    assert spec.source == str((Path.cwd().parent / "models" / "local").resolve())
    assert spec.backend == "transformers"


def test_register_use_and_persist(ip: Any, tiny_text_dir: Path) -> None:
    run(ip, f"%genmagic register saved {tiny_text_dir} --save")
    run(ip, "%genmagic use text saved --save")
    config = (Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "config.toml").read_text()
    assert "[models.saved]" in config and 'text = "saved"' in config
    result = run(ip, "%%generate --seed 1 --max-new-tokens 3\nHi")
    assert result.request.model == "saved"
    fresh = Registry()
    assert fresh.default("text") == "saved" and fresh.resolve("saved", "text").source == str(tiny_text_dir)


def test_traitlet_default_model(ip: Any) -> None:
    genmagic._magics.default_text_model = "echo:from-config"
    assert run(ip, "%%generate\nHi").text == "from-config"
    ip.run_line_magic("config", "GenMagics.default_text_model = 'tiny'")
    assert run(ip, "%%generate --seed 1 --max-new-tokens 2\nHi").request.model == "tiny"


def test_models_table_shows_loaded_and_memory(ip: Any) -> None:
    run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 2\nHi")
    table = run(ip, "%genmagic models")
    row = next(r for r in table.rows if r[0].rstrip("*") == "tiny")
    assert row[1:3] == ["text", "transformers"] and row[5] == "yes" and "MB" in row[6]  # "(2 loads)" when another test loaded it in a second dtype
    run(ip, "%genmagic unload tiny")
    table = run(ip, "%genmagic models")
    assert next(r for r in table.rows if r[0].rstrip("*") == "tiny")[5] == "no"


def test_lru_budget_unloads_least_recent(ip: Any, echo_backend: Any) -> None:
    engine = genmagic._magics.engine
    engine.models.unload()
    genmagic._magics.memory_budget_mb = 0  # every model is over budget: keep only the newest
    try:
        run(ip, "%%generate -m echo:a\nx")
        run(ip, "%%generate -m echo:b\nx")
        assert [m.spec.alias for m in engine.models.loaded()] == ["echo:b"]
    finally:
        genmagic._magics.memory_budget_mb = 8192
    loads = echo_backend.loads
    run(ip, "%%generate -m echo:b --no-cache\nx")
    assert echo_backend.loads == loads  # still loaded: no reload


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    write(Path.cwd() / "genmagic.toml", "[models.x\nsource=1")
    with pytest.raises(ModelNotFoundError, match=r"cannot read .*genmagic\.toml"):
        Registry().resolve("x", "text")


def test_trust_remote_code_is_off_unless_registered() -> None:
    spec = Registry().resolve("tiny-text", "text")
    assert spec.trust_remote_code is False and spec.allow_pickle is False


def test_register_with_lora_adapter(ip: Any, tiny_text_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_text_dir)
    config = LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "lora")
    run(ip, f"%genmagic register tuned {tiny_text_dir} --adapter {tmp_path / 'lora'}")
    plain = run(ip, "%%generate -m tiny --raw --temperature 0 --max-new-tokens 12\nThe fox")
    tuned = run(ip, "%%generate -m tuned --raw --temperature 0 --max-new-tokens 12\nThe fox")
    assert tuned.request.fingerprint != plain.request.fingerprint
    assert tuned.texts != plain.texts
    table = run(ip, "%genmagic models")
    assert any(r[0] == "tuned" and "lora" in r[3] for r in table.rows)
