"""A project genmagic.toml came with a clone: until the user trusts it (``%genmagic trust``,
``genmagic trust PATH``), it may not switch on trust_remote_code/allow_pickle or make such a
model the default. A changed file needs trusting again."""

from __future__ import annotations

import hashlib
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

PROJECT = """
[models.remote]
source = "echo:from the remote-code model"
backend = "echo"
kind = "text"
trust_remote_code = true

[models.plain]
source = "echo:plain answer"
backend = "echo"
kind = "text"
"""


def project_file(text: str = PROJECT) -> Path:
    path = Path.cwd() / "genmagic.toml"  # the test's own working directory (conftest)
    path.write_text(text)
    return path.resolve()


def test_an_untrusted_project_file_may_not_run_model_code(ip: Any) -> None:
    path = project_file()
    assert run(ip, "%generate -m plain hi").text == "plain answer"  # the rest of the file works
    with pytest.raises(UsageError) as err:
        run(ip, "%generate -m remote hi")
    assert str(err.value) == (
        f"model 'remote' sets trust_remote_code in {path}, but that project file is not trusted yet, so it may "
        f"not run model code; if you trust it, run `%genmagic trust {path}`"
    )


def test_trusting_records_the_hash_and_a_change_needs_trusting_again(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project_file()
    ip.run_line_magic("genmagic", "trust")  # the project file found from the working directory
    out = capsys.readouterr().out
    assert f"trusted {path}" in out and "it may now enable remote (trust_remote_code)" in out
    store = json.loads((Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "trusted.json").read_text())
    assert store["files"] == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    assert run(ip, "%generate -m remote hi").text == "from the remote-code model"
    path.write_text(PROJECT.replace("remote-code model", "changed model"))
    with pytest.raises(UsageError, match="that project file has changed since you trusted it"):
        run(ip, "%generate -m remote hi")
    ip.run_line_magic("genmagic", f"trust {path}")
    assert run(ip, "%generate -m remote hi").text == "from the changed model"


def test_an_untrusted_default_may_not_point_at_a_model_that_runs_code(ip: Any) -> None:
    user = Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[models.mine]\nsource = "echo:my pickled model"\nbackend = "echo"\nkind = "text"\nallow_pickle = true\n')
    path = project_file('[defaults]\ntext = "mine"\n')
    with pytest.raises(UsageError, match=re.escape(f"{path} makes 'mine' the default text model, and that model sets allow_pickle")):
        run(ip, "%generate hi")
    assert run(ip, "%generate -m mine hi").text == "my pickled model"  # named by the user: fine
    ip.run_line_magic("genmagic", "use text mine")  # a session default is the user's own choice
    assert run(ip, "%generate hi").text == "my pickled model"


def test_trust_without_a_project_file_says_what_to_pass(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"no genmagic.toml in .* or a folder above it; pass its path: %genmagic trust PATH"):
        ip.run_line_magic("genmagic", "trust")
    with pytest.raises(UsageError, match=r"trust nowhere\.toml: no such file"):
        ip.run_line_magic("genmagic", "trust nowhere.toml")


def test_genmagic_trust_on_the_command_line(tiny_text_dir: Path) -> None:
    path = project_file(f'[models.remote]\nsource = "{tiny_text_dir}"\ntrust_remote_code = true\n')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "genmagic.cli", *args], capture_output=True, text=True,
                              env=os.environ.copy(), timeout=300)

    refused = cli("generate", "-m", "remote", "--max-new-tokens", "2", "hi")
    assert refused.returncode == 2 and f"run `genmagic trust {path}`" in refused.stderr
    assert "%genmagic" not in refused.stderr
    trusted = cli("trust", str(path))
    assert trusted.returncode == 0 and f"trusted {path}" in trusted.stdout
    ran = cli("generate", "-m", "remote", "--max-new-tokens", "2", "hi")
    assert ran.returncode == 0, ran.stderr
    assert cli("trust", "missing.toml").stderr.startswith("genmagic: error: trust missing.toml: no such file")


def test_a_changed_source_folder_needs_trusting_again(ip: Any, tiny_text_dir: Path) -> None:
    import shutil

    model = Path.cwd() / "model"
    shutil.copytree(tiny_text_dir, model)
    path = project_file('[models.remote]\nsource = "./model"\ntrust_remote_code = true\n')
    ip.run_line_magic("genmagic", "trust")
    assert run(ip, "%generate -m remote --max-new-tokens 2 hi").text is not None
    (model / "modeling_custom.py").write_text("print('new code from a git pull')\n")
    with pytest.raises(UsageError) as err:
        run(ip, "%generate -m remote --max-new-tokens 2 hi")
    assert str(err.value) == (
        f"model 'remote' sets trust_remote_code in {path}, and its source folder {model} has changed (code or "
        f"weights) since you trusted that file, so it may not run model code; if you trust the folder as it is "
        f"now, run `%genmagic trust {path}`"
    )
    ip.run_line_magic("genmagic", "trust")
    assert run(ip, "%generate -m remote --max-new-tokens 2 hi").text is not None


@pytest.mark.parametrize("origin", ["project", "user"])
def test_a_string_flag_is_an_error_not_true(ip: Any, origin: str) -> None:
    text = '[models.remote]\nsource = "echo:x"\nbackend = "echo"\nkind = "text"\ntrust_remote_code = "false"\n'
    if origin == "user":
        path = Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    else:
        path = project_file(text)
    with pytest.raises(UsageError) as err:
        run(ip, "%generate -m remote hi")
    assert str(err.value) == (
        f"model 'remote' in {path}: trust_remote_code = 'false' is not a boolean; "
        "write trust_remote_code = true or trust_remote_code = false (no quotes)"
    )


def test_the_trust_check_hashes_the_bytes_that_were_parsed(tmp_path: Path) -> None:
    from genmagic.registry import Registry
    from genmagic.trust import UntrustedFileError, trust_file

    path = project_file()
    config = tmp_path / "config"
    registry = Registry(project_file=path, user_file=config / "config.toml")
    registry.resolve("plain", "text")  # parsed: the untrusted file with its risky entry
    trusted = PROJECT.replace("trust_remote_code = true", "")
    path.write_text(trusted)
    trust_file(path, config)  # the user trusts the harmless version...
    os.utime(path, ns=(path.stat().st_atime_ns, registry._loaded_stamp[1][1]))  # ...same stamp: no re-parse
    with pytest.raises(UntrustedFileError):
        registry.resolve("remote", "text")  # the parsed (risky) bytes are not the trusted ones


def test_a_trust_recorded_without_its_source_folder_needs_trusting_again(ip: Any) -> None:
    model = Path.cwd() / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    path = project_file('[models.remote]\nsource = "./model"\nkind = "text"\nbackend = "echo"\ntrust_remote_code = true\n')
    config = Path(os.environ["GENMAGIC_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (config / "trusted.json").write_text(json.dumps({"version": 1, "files": {str(path): digest}}))  # older store
    with pytest.raises(UsageError, match=re.escape(f"its source folder {model} was not recorded when you trusted")):
        run(ip, "%generate -m remote hi")
