"""A served model's registry entry: backend settings with a validated place (ModelSpec.settings),
`register` in the magic and the CLI, and no network until a model is loaded."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from fault_server import fault_server
from IPython.core.error import UsageError

from genmagic import options as o
from genmagic import text_run
from genmagic.engine import Engine
from genmagic.errors import ModelNotFoundError
from genmagic.registry import Registry, get_backend

URL = "http://127.0.0.1:9/v1"  # nothing listens there: these tests never connect


def project(text: str) -> Path:
    path = Path.cwd() / "genmagic.toml"
    path.write_text(text)
    return path


def user_file(text: str) -> Path:
    path = Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def entry(**keys: str) -> str:
    body = {"backend": '"openai"', "base_url": f'"{URL}"', "model": '"m"', **keys}
    return "[models.team]\n" + "".join(f"{k} = {v}\n" for k, v in body.items() if v)


def test_an_entry_in_the_issues_shape_resolves() -> None:
    user_file(entry(api_key_env='"TEAM_KEY"', read_timeout="30", server='"vllm"'))
    spec = Registry().resolve("team", "text")
    assert (spec.backend, spec.kind, spec.source) == ("openai", "text", URL)
    assert spec.settings == {"base_url": URL, "model": "m", "api_key_env": "TEAM_KEY", "read_timeout": 30,
                             "server": "vllm"}


@pytest.mark.parametrize(("keys", "message"), [
    ({"api_key": '"sk-live-123"'}, "has api_key = ...: secrets never go in a config file; .* api_key_env"),
    ({"modle": '"x"'}, "unknown key 'modle' for backend 'openai'; did you mean model\\?"),
    ({"base_url": '"ftp://host/v1"'}, "base_url = 'ftp://host/v1' must be an http\\(s\\) URL"),
    ({"base_url": '"http://me:sk-live-123@host/v1"'}, "base_url = 'http://\\*\\*\\*@host/v1' must not hold credentials"),
    ({"base_url": '"http://host/v1?api-key=sk-live-123"'}, "base_url = 'http://host/v1\\?\\*\\*\\*' must not hold "
                                                           "credentials or a query string"),
    ({"api_key_env": '"sk-live-123"'}, "api_key_env \\(the value is not repeated: it may be a key\\) must name an "
                                       "environment variable \\(upper-case"),
    ({"api_key_env": '"hf_live-123"'}, "api_key_env \\(the value is not repeated"),
    ({"api_key_env": '"gsk_live123"'}, "api_key_env \\(the value is not repeated"),
    ({"read_timeout": '"10"'}, "read_timeout = '10' must be number"),
    ({"max_retries": "true"}, "max_retries = True must be number"),
    ({"server": '"tgi"'}, "server = 'tgi' must be one of openai, llama.cpp, vllm"),
    ({"model": ""}, "needs model = ... \\(--model with `%genmagic register`\\)"),
])
def test_bad_settings_are_one_line_errors_naming_alias_key_and_file(keys: dict[str, str], message: str) -> None:
    path = user_file(entry(**keys))
    with pytest.raises(ModelNotFoundError, match=message) as caught:
        Registry().resolve("team", "text")
    text = str(caught.value)
    assert "'team'" in text and str(path) in text and "\n" not in text
    assert not any(secret in text for secret in ("sk-live-123", "live-123", "live123"))  # a pasted key is never repeated


def test_other_backends_keep_ignoring_unknown_keys(tiny_text_dir: Path) -> None:
    project(f'[models.old]\nsource = "{tiny_text_dir}"\ncolour = "red"\n')  # a registry file of before
    assert Registry().resolve("old", "text").backend == "transformers"


def test_no_network_before_a_load(monkeypatch: pytest.MonkeyPatch) -> None:
    user_file(entry())
    engine = Engine()

    def refuse(*args: Any) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    request = engine.request("text", "hi", o.TextOptions(), model="team", given=set())
    assert request.fingerprint == get_backend("openai").fingerprint(request.spec)
    assert request.options.top_k == 0 and request.options.repetition_penalty == 1.0  # neutral: not sent
    assert not engine.cacheable(request)  # a plain OpenAI server: seeds are best effort


def test_the_fingerprint_takes_the_identity_the_load_found() -> None:
    with fault_server() as server:
        engine = Engine()
        engine.registry.register("f", f"openai:{server.url}", settings={"model": "m2", "stream": False})
        before = engine.request("text", "hi", o.TextOptions(), model="f", given=set()).fingerprint
        result = text_run.run(engine, "hi", o.TextOptions(), o.TextControls(), model="f", given=set())
        after = engine.request("text", "hi", o.TextOptions(), model="f", given=set()).fingerprint
    assert before != after == result.request.fingerprint
    assert result.info["identity"] == {"id": "m2", "object": "model", "owned_by": "test"}


def test_register_in_the_magic_saves_the_entry(ip: Any) -> None:
    run(ip, f"%genmagic register team openai:{URL} --model m --api-key-env TEAM_KEY --setting read_timeout=300 --save")
    saved = (Path(os.environ["GENMAGIC_CONFIG_DIR"]) / "config.toml").read_text()
    assert 'base_url = "http://127.0.0.1:9/v1"' in saved and "read_timeout = 300" in saved and "source" not in saved
    spec = Registry().resolve("team", "text")
    assert spec.settings["api_key_env"] == "TEAM_KEY" and spec.backend == "openai"
    listed = repr(run(ip, "%genmagic models"))  # no network: the table shows the URL
    assert "team" in listed and "openai" in listed and URL in listed
    with pytest.raises(UsageError, match=r"'nomodel' .*needs model"):
        run(ip, f"%genmagic register nomodel openai:{URL}")
    with pytest.raises(UsageError, match=r"api_key_env \(the value is not repeated.*must name an environment variable"):
        run(ip, f"%genmagic register k openai:{URL} --model m --api-key-env sk-123-x")
    with pytest.raises(UsageError, match=r"--api-key-env \(the value is not repeated") as listing:
        run(ip, f"%genmagic models --remote {URL} --api-key-env hf_abc123xyz")
    assert "abc123" not in str(listing.value)


def test_register_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic.cli import main

    assert main(["register", "team", f"openai:{URL}", "--model", "m", "--server", "llama.cpp"]) == 0
    assert "registered team: text model via openai" in capsys.readouterr().out
    assert Registry().resolve("team", "text").settings["server"] == "llama.cpp"
    assert main(["register", "bad", f"openai:{URL}", "--model", "m", "--setting", "colour=red"]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err


def test_a_cloned_project_file_may_not_send_prompts_to_a_server_until_trusted(capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic.trust import UntrustedFileError

    path = project(entry(api_key_env='"OPENAI_API_KEY"') + '\n[defaults]\ntext = "team"\n')
    with pytest.raises(UntrustedFileError, match=f"sets base_url = {URL} in {path}.*or send prompts to a server"):
        Registry().resolve("team", "text")
    with pytest.raises(UntrustedFileError, match="model 'team' sets base_url"):
        Registry().resolve(None, "text")  # the project's default too
    from genmagic.cli import main

    assert main(["trust", str(path)]) == 0
    assert Registry().resolve(None, "text").alias == "team"
    path.write_text(path.read_text().replace(URL, "http://127.0.0.1:10/v1"))  # changed: trust again
    with pytest.raises(UntrustedFileError, match="has changed since you trusted it"):
        Registry().resolve("team", "text")
