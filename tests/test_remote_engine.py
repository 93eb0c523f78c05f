"""The remote backend against a real serving engine: llama.cpp's OpenAI-compatible server
(llama-cpp-python) on the embedded tiny-text, started once per session (tests/conftest_engines.py).

Never skipped in CI: a missing engine fails there (``make engine`` builds it)."""

from __future__ import annotations

import sqlite3
from typing import Any

import openai
import pytest
from conftest import run
from IPython.core.error import UsageError

from genmagic import options as o
from genmagic import text_run
from genmagic.backends.openai_compat import ServerError
from genmagic.engine import Engine
from genmagic.errors import ModelNotFoundError
from genmagic.request import Event, ListSink

STORY = "Tell me a story"


def served(url: str, alias: str = "served", **settings: Any) -> Engine:
    engine = Engine()
    engine.registry.register(alias, f"openai:{url}", settings={"model": "tiny", "server": "llama.cpp", **settings})
    return engine


def generate(engine: Engine, prompt: str = STORY, sink: Any = None, fmt: str = "auto", cache: bool = True,
             model: str = "served", **options: Any) -> Any:
    return text_run.run(engine, prompt, o.TextOptions(**options), o.TextControls(format=fmt, cache=cache),
                        model=model, sink=sink, given=set(options))


def bare(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="none")


class CellSink(ListSink):
    retracts = True  # a notebook cell: gets each token at once (a terminal's view gets text once screened)


def tokens(sink: ListSink) -> list[str]:
    return [e.data for e in sink.events if e.type == "token"]


def test_magic_streams_a_chat_answer_into_the_cell(ip: Any, llama_server: Any) -> None:
    run(ip, f"%genmagic register served openai:{llama_server.url} --model tiny --server llama.cpp")
    run(ip, "%%generate -m served --seed 3 --max-new-tokens 24 --out t_story\nTell me a story")
    result = ip.user_ns["t_story"]
    assert result.ok and result.text.strip()
    assert result.info["identity"]["id"] == "tiny" and result.info["base_url"] == llama_server.url
    # the same request through the bare client (the chat endpoint, same sampling) gives the same text
    answer = bare(llama_server.url).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": STORY}], max_tokens=24, seed=3, temperature=0.8,
        top_p=0.95, extra_body={"top_k": 50, "repeat_penalty": 1.1})
    assert result.text == answer.choices[0].message.content
    assert result.history_id is not None


def test_streamed_and_whole_answers_agree_for_chat_and_completions(llama_server: Any) -> None:
    streaming, whole = served(llama_server.url), served(llama_server.url, stream=False)
    for raw in (False, True):
        sink = CellSink()
        one = generate(streaming, sink=sink, seed=3, max_new_tokens=30, raw=raw, cache=False)
        other = generate(whole, seed=3, max_new_tokens=30, raw=raw, cache=False)
        assert one.text == other.text and one.text.strip()
        assert len(tokens(sink)) > 5 and "".join(tokens(sink)) == one.text  # streamed piece by piece
    completion = bare(llama_server.url).completions.create(
        model="tiny", prompt=STORY, max_tokens=30, seed=3, temperature=0.8, top_p=0.95,
        extra_body={"top_k": 50, "repeat_penalty": 1.1})
    assert one.text == completion.choices[0].text  # --raw: a plain completion of the prompt


def test_samples_use_seed_plus_i_and_options_reach_the_server(llama_server: Any) -> None:
    engine = served(llama_server.url)
    both = generate(engine, seed=20, num=2, max_new_tokens=20, cache=False)
    second = generate(engine, seed=21, max_new_tokens=20, cache=False)
    assert both.texts[1] == second.text  # sample i uses seed + i, so it can be re-run alone
    greedy = generate(engine, temperature=0.0, max_new_tokens=40, cache=False)
    stopped = generate(engine, temperature=0.0, max_new_tokens=40, stop=(greedy.text[10:14],), cache=False)
    assert stopped.text == greedy.text[:10] + greedy.text[10:14].join(greedy.text[10:].split(greedy.text[10:14])[:1])
    short = generate(engine, temperature=0.0, max_new_tokens=3, cache=False)
    assert short.tokens == [3] and greedy.text.startswith(short.text)


def test_seed_reproducible_across_a_server_restart_and_cached_when_honoured(start_engine: Any) -> None:
    server = start_engine()
    engine = served(server.url)
    first = generate(engine, seed=5, max_new_tokens=25)
    again = generate(engine, seed=5, max_new_tokens=25)
    assert again.cached and again.text == first.text  # llama.cpp honours seeds: served from history
    server.stop()
    restarted = start_engine(port=server.port)
    assert restarted.url == server.url
    fresh = generate(engine, seed=5, max_new_tokens=25, cache=False)
    assert not fresh.cached and fresh.text == first.text
    other = generate(engine, seed=6, max_new_tokens=25, cache=False)
    assert other.text != first.text
    # a plain OpenAI API only promises "best effort" seeds: never cached
    plain = served(server.url, alias="plain", server="openai")
    generate(plain, seed=5, max_new_tokens=25, model="plain")
    assert not generate(plain, seed=5, max_new_tokens=25, model="plain").cached


def test_stop_button_closes_the_stream_and_keeps_the_partial_text(llama_server: Any) -> None:
    engine = served(llama_server.url)
    sink = CellSink(cancel_after=4)
    result = generate(engine, sink=sink, seed=1, max_new_tokens=100, cache=False)
    assert result.status == "interrupted" and result.tokens == [4]
    assert result.text == "".join(tokens(sink)) and result.text
    row = engine.history.get(result.history_id)
    assert row.status == "interrupted"
    assert generate(engine, seed=1, max_new_tokens=10, cache=False).ok  # the client stays usable


class InterruptingSink(CellSink):
    """Raises KeyboardInterrupt (a kernel interrupt) while the third token is shown."""

    def emit(self, event: Event) -> None:
        super().emit(event)
        if len(tokens(self)) == 3:
            raise KeyboardInterrupt


def test_keyboard_interrupt_keeps_the_partial_text(llama_server: Any) -> None:
    engine = served(llama_server.url)
    sink = InterruptingSink()
    result = generate(engine, sink=sink, seed=2, max_new_tokens=100, cache=False)
    assert result.status == "interrupted" and result.text == "".join(tokens(sink)) and len(tokens(sink)) == 3


def test_unknown_model_lists_what_the_server_offers(ip: Any, llama_server: Any) -> None:
    engine = served(llama_server.url, alias="wrong", model="no-such-model")
    with pytest.raises(ModelNotFoundError, match=r"no model 'no-such-model'.*it offers: tiny") as caught:
        generate(engine, model="wrong", max_new_tokens=5)
    assert llama_server.url in str(caught.value) and "\n" not in str(caught.value)
    run(ip, f"%genmagic register wrong openai:{llama_server.url} --model nope")
    with pytest.raises(UsageError, match="it offers: tiny"):
        run(ip, "%%generate -m wrong\nhello")


def test_server_killed_mid_stream_keeps_the_partial_text(ip: Any, start_engine: Any) -> None:
    server = start_engine()

    class KillingSink(CellSink):
        def emit(self, event: Event) -> None:
            super().emit(event)
            if len(tokens(self)) == 2:
                server.kill()

    engine = served(server.url)
    sink = KillingSink()
    result = generate(engine, sink=sink, seed=4, max_new_tokens=200, cache=False)
    assert result.status == "error" and server.url in result.error and "partial text is kept" in result.error
    assert result.text == "".join(tokens(sink)) and len(tokens(sink)) >= 2
    row = engine.history.get(result.history_id)
    assert row.status == "error" and row.outputs["texts"] == result.texts
    # a dead server: a clear one-line error naming the URL, in the magic too
    run(ip, f"%genmagic register dead openai:{server.url} --model tiny --setting max_retries=0")
    with pytest.raises(UsageError, match=f"cannot connect to {server.url}.*is the server running"):
        run(ip, "%%generate -m dead\nhello")


def test_json_format_asks_the_server_for_json(ip: Any, llama_server: Any) -> None:
    run(ip, f"%genmagic register served openai:{llama_server.url} --model tiny --server llama.cpp")
    value = run(ip, "%%generate -m served -f json --seed 3 --max-new-tokens 40 --out t_json\nDescribe a cat as JSON")
    assert isinstance(value, (dict, list)) and ip.user_ns["t_json"].ok
    # without response_format this model writes prose: the plain run does not parse
    plain = run(ip, "%%generate -m served --seed 3 --max-new-tokens 40\nDescribe a cat as JSON")
    assert not plain.text.lstrip().startswith(("{", "["))


def test_images_need_a_server_that_has_them(ip: Any, llama_server: Any) -> None:
    run(ip, f"%genmagic register painter openai:{llama_server.url} --model tiny --kind image --server llama.cpp")
    with pytest.raises(UsageError, match="no /v1/images/generations"):
        run(ip, "%%imagine -m painter\na red fox")
    # not known to lack them: the request is made, and the server's 404 says so
    run(ip, f"%genmagic register painter2 openai:{llama_server.url} --model tiny --kind image")
    with pytest.raises(UsageError, match=f"the server at {llama_server.url} has no /v1/images/generations"):
        run(ip, "%%imagine -m painter2\na red fox")


def test_list_the_models_a_server_offers(ip: Any, llama_server: Any, capsys: Any) -> None:
    run(ip, f"%genmagic models --remote {llama_server.url}")
    assert "tiny" in capsys.readouterr().out
    from genmagic.cli import main

    assert main(["models", "--remote", llama_server.url]) == 0
    assert "tiny" in capsys.readouterr().out


def test_api_keys_come_from_the_environment_and_are_never_stored(start_engine: Any, monkeypatch: Any,
                                                                  genmagic_home: Any) -> None:
    key = "sk-genmagic-RECOGNISABLE-4711"
    server = start_engine(extra=("--api_key", key))
    engine = served(server.url, alias="locked", api_key_env="TEAM_KEY")
    monkeypatch.delenv("TEAM_KEY", raising=False)
    with pytest.raises(ServerError, match="environment variable TEAM_KEY, which is not set"):
        generate(engine, model="locked", max_new_tokens=5)
    monkeypatch.setenv("TEAM_KEY", "sk-wrong-key")
    with pytest.raises(ServerError, match=r"refused access \(401\); set the environment variable TEAM_KEY"):
        generate(engine, model="locked", max_new_tokens=5)
    monkeypatch.setenv("TEAM_KEY", key)
    result = generate(engine, model="locked", seed=1, max_new_tokens=8)
    assert result.ok and result.text
    texts = [repr(result), str(result.info), str(result.request.to_dict()), repr(engine.models._items)]
    assert not [t for t in texts if key in t]
    stored = b"".join(p.read_bytes() for p in genmagic_home.rglob("*") if p.is_file())  # the database, WAL, blobs
    assert b"TEAM_KEY" in stored and key.encode() not in stored
    db = sqlite3.connect(genmagic_home / "history.sqlite")
    assert db.execute("SELECT count(*) FROM runs WHERE model = 'locked'").fetchone()[0] == 3  # two failures, one run


def test_a_missing_engine_fails_under_make_test_and_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Any) -> None:
    import conftest_engines

    monkeypatch.setenv("GENMAGIC_ENGINE_CACHE", str(tmp_path))  # no sdist there
    with pytest.raises(conftest_engines.EngineMissing, match="converter is not at"):
        conftest_engines.make_tiny_gguf()
    monkeypatch.delenv("CI", raising=False)
    for variable in ("CI", "GENMAGIC_REQUIRE_ENGINE"):  # CI, and `make test` (which .ci/run runs)
        monkeypatch.setenv(variable, "1")
        with pytest.raises(pytest.fail.Exception, match=f"run `make engine`.*into {tmp_path}"):
            conftest_engines.missing("llama-cpp-python is not installed")
        monkeypatch.delenv(variable)
    with pytest.raises(pytest.skip.Exception, match="run `make engine`"):
        conftest_engines.missing("llama-cpp-python is not installed")
    makefile = (conftest_engines.TINY_TEXT.parents[2] / "Makefile").read_text()
    test_line = next(line for line in makefile.splitlines() if "-m pytest" in line)
    assert "GENMAGIC_REQUIRE_ENGINE=1 " in test_line and test_line.startswith("\t")


def test_the_gguf_is_cached_by_content_and_older_ones_are_removed(tiny_gguf: Any, tmp_path: Any) -> None:
    import os
    import shutil
    import time

    import conftest_engines

    copy = shutil.copytree(conftest_engines.TINY_TEXT, tmp_path / "tiny-text")  # a fresh checkout: new mtimes
    assert tiny_gguf.name == f"tiny-text-{conftest_engines.content_hash(copy)}.gguf"
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    assert conftest_engines.content_hash(copy) != conftest_engines.content_hash(conftest_engines.TINY_TEXT)
    stale, recent = (tiny_gguf.parent / f"tiny-text-{'0' * 15}{i}.gguf" for i in range(2))
    try:
        stale.write_bytes(b"old")
        recent.write_bytes(b"a parallel run's")
        os.utime(stale, (time.time() - 2 * 86400,) * 2)
        assert conftest_engines.make_tiny_gguf() == tiny_gguf
        assert not stale.exists() and recent.exists() and tiny_gguf.exists()
    finally:
        stale.unlink(missing_ok=True)
        recent.unlink(missing_ok=True)


def test_a_seeded_rerun_in_a_new_process_is_served_from_the_cache(llama_server: Any) -> None:
    from genmagic.registry import get_backend

    first = generate(served(llama_server.url), seed=6, max_new_tokens=12)
    assert not first.cached
    get_backend("openai")._identities.clear()  # a fresh process: only GENMAGIC_HOME remembers the identity
    again = generate(served(llama_server.url), seed=6, max_new_tokens=12)
    assert again.cached and again.text == first.text and again.request.fingerprint == first.request.fingerprint
