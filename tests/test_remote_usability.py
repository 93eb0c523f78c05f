"""A new user's findings with served models: options the server cannot honour, seeded runs cached
across processes (the identity recorded under GENMAGIC_HOME), and error wording on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer

from genmagic import options as o
from genmagic import text_run
from genmagic.engine import Engine
from genmagic.errors import ModelNotFoundError, OptionError, on_command_line
from genmagic.register_args import remote_models
from genmagic.registry import Registry, get_backend


def served(url: str, alias: str = "f", **settings: Any) -> Engine:
    engine = Engine()
    engine.registry.register(alias, f"openai:{url}", settings={"model": "m1", "stream": False, **settings})
    return engine


def generate(engine: Engine, model: str = "f", **options: Any) -> Any:
    return text_run.run(engine, "hi", o.TextOptions(**options), o.TextControls(), model=model, given=set(options))


IDENTITIES_FILE = "served-models.json"  # under GENMAGIC_HOME


def new_process() -> None:
    """What a fresh process knows: nothing loaded, nothing remembered in memory."""
    get_backend("openai")._identities.clear()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genmagic.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


@pytest.mark.parametrize(("given", "flag"), [({"system": "Be terse."}, "--system"), ({"chat": True}, "--chat")])
def test_raw_with_a_system_prompt_or_a_conversation_is_an_error(server: FaultServer, given: dict[str, Any],
                                                                 flag: str) -> None:
    with pytest.raises(OptionError, match=rf"^--raw with {flag}: --raw sends plain text to .*/completions, which has "
                                          rf"no system prompt or conversation; leave --raw out or drop {flag}$"):
        generate(served(server.url, server="llama.cpp"), raw=True, **given)
    assert server.seen == [] and server.gets == []  # refused before any request


def test_truncate_says_the_server_decides(server: FaultServer) -> None:
    with pytest.raises(OptionError, match=r"^--truncate cannot be used with 'f', a served model: the server decides "
                                          r"how long a prompt may be; leave --truncate out$"):
        generate(served(server.url), truncate=True)


def test_a_seeded_run_is_cached_in_the_next_process(server: FaultServer, genmagic_home: Path) -> None:
    first = generate(served(server.url, server="llama.cpp"), seed=3)
    assert not first.cached and len(server.gets) == 1
    assert json.loads((genmagic_home / IDENTITIES_FILE).read_text())  # recorded for the next process
    new_process()
    again = generate(served(server.url, server="llama.cpp"), seed=3)
    assert again.cached and again.text == first.text
    assert len(server.seen) == 1 and len(server.gets) == 1  # no load and no generation: nothing on the network


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 1}', "\x00" * 10, "{}" + " " * (1 << 20),
                                     "[" * 100_000])
def test_a_bad_identities_file_is_ignored_and_replaced(server: FaultServer, genmagic_home: Path, content: str) -> None:
    genmagic_home.mkdir(parents=True, exist_ok=True)
    (genmagic_home / IDENTITIES_FILE).write_text(content)
    assert not generate(served(server.url, server="llama.cpp"), seed=3).cached
    new_process()
    assert generate(served(server.url, server="llama.cpp"), seed=3).cached  # the load wrote a good file


def test_a_recorded_identity_of_another_server_or_model_does_not_count(server: FaultServer) -> None:
    generate(served(server.url, server="llama.cpp"), seed=3)
    new_process()
    other = served(server.url, server="llama.cpp", model="m2")  # a second model of the same server
    assert not generate(other, seed=3).cached


def test_the_command_line_serves_a_seeded_rerun_from_the_cache(server: FaultServer) -> None:
    assert cli("register", "f", f"openai:{server.url}", "--model", "m1", "--server", "llama.cpp",
               "--setting", "stream=false").returncode == 0
    first = cli("generate", "-m", "f", "--seed", "3", "hi")
    assert first.returncode == 0, first.stderr
    again = cli("generate", "-m", "f", "--seed", "3", "hi")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and len(server.seen) == 1
    records = json.loads(cli("history", "--json").stdout)
    assert [r["cached"] for r in records] == [True, False]


def test_models_remote_without_a_key_names_the_flag(server: FaultServer) -> None:
    server.models = (401, "application/json", b'{"error": {"message": "no key"}}')
    with pytest.raises(Exception, match=r"refused access \(401\); put the key in a variable \(%env VAR=\.\.\.\) and "
                                        r"add --api-key-env VAR to models --remote$"):
        remote_models(server.url)
    with on_command_line(), pytest.raises(Exception, match=r"\(export VAR=\.\.\.\) and add --api-key-env VAR"):
        remote_models(server.url)


def test_models_remote_on_a_dead_url_says_check_the_url() -> None:
    with pytest.raises(Exception, match=r"cannot connect to http://127\.0\.0\.1:9/v1 .*is the server running\? "
                                        r"check the URL$"):
        remote_models("http://127.0.0.1:9/v1")


def test_a_missing_key_variable_is_set_with_export_on_the_command_line(server: FaultServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    engine = served(server.url, api_key_env="NO_SUCH_KEY")
    with pytest.raises(Exception, match=r"set it \(%env NO_SUCH_KEY=\.\.\.\)"):
        generate(engine)
    with on_command_line(), pytest.raises(Exception, match=r"set it \(export NO_SUCH_KEY=\.\.\.\)"):
        generate(engine)


def test_a_number_setting_says_number_once() -> None:
    with pytest.raises(ModelNotFoundError, match=r"read_timeout = 'abc' must be number$"):
        Registry().register("x", "openai:http://127.0.0.1:9/v1", settings={"model": "m", "read_timeout": "abc"})


def test_a_persisted_entry_names_the_file_it_goes_to() -> None:
    registry = Registry()
    with pytest.raises(ModelNotFoundError, match=r"model 'x' \(for .*config\.toml\): read_timeout"):
        registry.register("x", "openai:http://127.0.0.1:9/v1", settings={"model": "m", "read_timeout": "abc"},
                          persist=True)


def test_a_url_without_a_scheme_says_so() -> None:
    with pytest.raises(OptionError, match=r"^'openai:127\.0\.0\.1:18411/v1': the server's URL needs http:// or "
                                          r"https://, e\.g\. openai:http://127\.0\.0\.1:18411/v1$"):
        Registry().register("x", "openai:127.0.0.1:18411/v1", settings={"model": "m"})
