"""Per-model option defaults: the model's generation_config.json, then the registry's params,
then what the user types (which always wins)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

import genmagic


@pytest.fixture
def tuned_dir(tiny_text_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model whose generation config recommends its own sampling."""
    folder = tmp_path / "tuned"
    shutil.copytree(tiny_text_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.3, top_p=0.7, top_k=7, max_new_tokens=4, max_length=999)
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder


def test_generation_config_supplies_what_the_user_left_out(ip: Any, tuned_dir: Path) -> None:
    ip.run_line_magic("genmagic", f"register tuned {tuned_dir}")
    result = run(ip, "%%generate -m tuned --seed 3 --top-p 0.5\nOnce upon a time")
    options = result.request.options
    assert (options.temperature, options.top_k, options.max_new_tokens) == (0.3, 7, 4)
    assert options.top_p == 0.5  # typed on the magic line: the user wins
    assert options.seed == 3
    assert result.tokens[0] <= 4
    stored = genmagic._magics.engine.history.get(result.history_id).request["options"]
    assert stored["temperature"] == 0.3 and stored["top_p"] == 0.5


def test_do_sample_false_means_greedy_and_cacheable_without_seed(ip: Any, tuned_dir: Path) -> None:
    path = tuned_dir / "generation_config.json"
    config = json.loads(path.read_text())
    config["do_sample"] = False
    path.write_text(json.dumps(config))
    ip.run_line_magic("genmagic", f"register greedy {tuned_dir}")
    first = run(ip, "%%generate -m greedy\nThe fox")
    assert first.request.options.temperature == 0 and first.request.options.seed is None
    again = run(ip, "%%generate -m greedy\nThe fox")
    assert again.cached and again.texts == first.texts
    sampled = run(ip, "%%generate -m greedy --temperature 0.9\nThe fox")
    assert sampled.request.options.temperature == 0.9 and not sampled.cached


def test_registry_params_override_generation_config(ip: Any, tuned_dir: Path, tmp_path: Path) -> None:
    (Path.cwd() / "genmagic.toml").write_text(
        f'[models.house]\nsource = "{tuned_dir}"\nparams = {{ temperature = 1.2, stop = ["\\n"] }}\n'
    )
    result = run(ip, "%%generate -m house --seed 1\nOnce")
    assert result.request.options.temperature == 1.2  # params beat the generation config
    assert result.request.options.stop == ("\n",)
    assert result.request.options.max_new_tokens == 4  # still from the generation config
    explicit = run(ip, "%%generate -m house --seed 1 --temperature 0.5\nOnce")
    assert explicit.request.options.temperature == 0.5


def test_bad_params_name_the_model_key_and_fix(ip: Any, tuned_dir: Path) -> None:
    (Path.cwd() / "genmagic.toml").write_text(
        f'[models.hot]\nsource = "{tuned_dir}"\nparams = {{ temperature = 9 }}\n'
        f'[models.typo]\nsource = "{tuned_dir}"\nparams = {{ temprature = 0.2 }}\n'
    )
    with pytest.raises(UsageError, match=r"'hot'.*params\.temperature.*9"):
        run(ip, "%%generate -m hot\nOnce")
    with pytest.raises(UsageError, match=r"'typo'.*params\.temprature.*valid: .*temperature"):
        run(ip, "%%generate -m typo\nOnce")


def test_python_api_and_cli_apply_the_same_defaults(tuned_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic import cli
    from genmagic.engine import default_engine

    result = genmagic.generate("Once", model=str(tuned_dir), seed=1, temperature=0.6)
    assert result.request.options.temperature == 0.6 and result.request.options.max_new_tokens == 4
    assert cli.main(["generate", "-m", str(tuned_dir), "--seed", "1", "--no-stream", "Once"]) == 0
    capsys.readouterr()
    options = default_engine().history.list(1)[0].request["options"]
    assert options["temperature"] == 0.3 and options["max_new_tokens"] == 4


def test_given_none_means_every_option_was_given(tmp_path: Path) -> None:
    """Defaults fill only what the caller says was left out (None: nothing, as for --from)."""
    from genmagic.engine import Engine
    from genmagic.options import TextOptions

    engine = Engine(tmp_path / "h")
    spec = engine.registry.resolve("tiny-text", "text")
    own = engine.model_defaults(spec, TextOptions)
    assert own["temperature"][0] == 0.7 and "generation config" in own["temperature"][1]
    options = TextOptions(temperature=0.8)
    assert engine.request("text", "x", options, model="tiny-text").options.temperature == 0.8
    assert engine.request("text", "x", options, model="tiny-text", given=()).options.temperature == 0.7
    assert engine.request("text", "x", options, model="tiny-text", given={"temperature"}).options.temperature == 0.8


def test_image_params_apply_to_new_runs_not_to_reproductions(ip: Any, tiny_image_dir: Path, tmp_path: Path) -> None:
    (Path.cwd() / "genmagic.toml").write_text(
        f'[models.quick]\nsource = "{tiny_image_dir}"\nparams = {{ steps = 2, guidance = 3.0 }}\n'
    )
    result = run(ip, "%%imagine -m quick --seed 4\na red circle")
    assert (result.request.options.steps, result.request.options.guidance) == (2, 3.0)
    out = tmp_path / "pics"
    run(ip, f"%%imagine -m quick --seed 4 --steps 3 --save {out}\na red circle")
    png = next(out.iterdir())
    again = run(ip, f"%imagine --from {png}")
    assert (again.request.options.steps, again.request.options.guidance) == (3, 3.0)
